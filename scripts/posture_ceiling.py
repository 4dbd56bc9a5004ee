"""How separable is the task when posture is perceived perfectly?

``.venv/bin/python scripts/posture_ceiling.py [--train-clips 1000] [--heldout-clips 320]``

A diagnostic for ML engineers, not part of the product. It takes the generator's TRUE
posture track of the main person (``models.synth.clip.posture``: head height over standing
height and trunk uprightness, per frame) for the same clips, windows and window labels
``make models`` trains and evaluates on (train seeds from ``TRAIN_BASE``, held-out seeds and
preset as ``data/heldout``), fits a small MLP on the training windows' tracks (16 frames x 2
values plus their differences), picks the decision threshold for clip-level F1 on the
training clips, and prints window ROC AUC and clip-level precision / recall / F1 on the
held-out clips, with the share of clips flagged per action.

What it tells: the gap between this number and a video model's F1 is what perception (seeing
the posture in pixels) costs; the gap between it and 1.0 is what the labels and the window
length leave ambiguous. Needs the ``train`` extra (torch). Simulates motion only (no
rendering): about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from multiprocessing import Pool

import numpy as np
import torch

from models.build_zoo import HELDOUT_SEED, TRAIN_BASE
from models.metrics import best_clip_threshold, clip_f1_at, clip_level, prf, roc_auc
from models.synth import clip_seed
from models.synth.clip import posture, simulate_clip
from models.windows import WINDOW_S, window_indices, window_label

Rows = list[tuple[np.ndarray, int, bool, str]]


def _clip_rows(job: tuple[int, str]) -> Rows:
    seed, preset = job
    motion, _ = simulate_clip(seed, preset=preset)
    track = posture(motion)
    fall = motion.plan.fall
    start, end = (None, None) if fall is None else fall
    return [
        (track[idx], window_label(s, s + WINDOW_S, start, end), motion.plan.label == "fall",
         motion.plan.action)
        for s, idx in window_indices(len(track), 8.0)
    ]  # fmt: skip


def _windows(base: int, n: int, preset: str) -> tuple[np.ndarray, ...]:
    with Pool(2) as pool:
        clips = pool.map(_clip_rows, [(clip_seed(base, i), preset) for i in range(n)])
    x, y, clip, clip_label, action = [], [], [], [], []
    for cid, rows in enumerate(clips):
        for track, label, is_fall, act in rows:
            x.append(track)
            y.append(label)
            clip.append(cid)
            clip_label.append(int(is_fall))
            action.append(act)
    return np.array(x), np.array(y), np.array(clip), np.array(clip_label), np.array(action)


def _features(x: np.ndarray) -> torch.Tensor:
    flat = np.concatenate([x.reshape(len(x), -1), 4.0 * np.diff(x, axis=1).reshape(len(x), -1)], 1)
    return torch.from_numpy(flat.astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-clips", type=int, default=1000)
    parser.add_argument("--heldout-clips", type=int, default=320)
    args = parser.parse_args()
    xt, yt, ct, clt, _ = _windows(TRAIN_BASE, args.train_clips, "train")
    xh, yh, ch, clh, acth = _windows(HELDOUT_SEED, args.heldout_clips, "heldout")
    torch.manual_seed(0)
    ft, fh = _features(xt), _features(xh)
    net = torch.nn.Sequential(torch.nn.Linear(ft.shape[1], 64), torch.nn.ReLU(),
                              torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-4)
    target = torch.from_numpy(yt.astype(np.float32))
    for _ in range(300):  # full-batch steps
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            net(ft)[:, 0], target, pos_weight=torch.tensor(3.0)
        )
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    with torch.no_grad():
        pt = torch.sigmoid(net(ft)[:, 0]).numpy()
        ph = torch.sigmoid(net(fh)[:, 0]).numpy()
    thr = best_clip_threshold(pt, ct, clt)
    print(f"train:    {len(np.unique(ct))} clips, {len(yt)} windows, window AUC "
          f"{roc_auc(pt, yt == 1):.3f}, clip F1 {clip_f1_at(pt, ct, clt, thr):.3f} "
          f"(threshold {thr:.3f})")  # fmt: skip
    pred, truth = clip_level((ph >= thr).astype(np.int64), ch, clh)
    p, r, f1 = prf(pred, truth)
    print(f"held-out: {len(np.unique(ch))} clips, {len(yh)} windows, window AUC "
          f"{roc_auc(ph, yh == 1):.3f}, clip precision {p:.3f} recall {r:.3f} F1 {f1:.3f}")  # fmt: skip
    flagged: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for cid in np.unique(ch):
        m = ch == cid
        flagged[str(acth[m][0])][0] += 1
        flagged[str(acth[m][0])][1] += int((ph[m] >= thr).any())
    for act, (n, k) in sorted(flagged.items()):
        print(f"  {act:22s} clips={n:3d} flagged={k / n:.2f}")


if __name__ == "__main__":
    main()
