"""How well would the cloud's temporal stage do if its per-frame perception were perfect?

``.venv/bin/python scripts/perception_ceiling.py [--train-clips 1000] [--heldout-clips 320]``

A diagnostic for ML engineers, not part of the product. It renders the clips ``make models``
trains and evaluates on (train seeds from ``TRAIN_BASE``; held-out seeds and preset as
``data/heldout``) with the generator's per-frame truth (the main person's silhouette and the
image positions of ``models.dataset.KEYPOINTS``), turns that truth into the maps the cloud's
segmenter would ideally output, computes the same per-frame geometry
(``SilhouetteNet.frame_features``), fits the same temporal head the same way
(``models.silhouette.fit_temporal_head``), and prints held-out window ROC AUC and clip-level
F1 at the validation threshold and at the best threshold for the held-out set itself.

What it tells: the gap between this number and the shipped cloud's F1 is what the learned
per-frame stage costs; compare ``scripts/posture_ceiling.py`` (the 3D posture, which no camera
sees directly). Needs the ``train`` extra (torch); renders every clip: a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from models.build_zoo import HELDOUT_SEED, TRAIN_BASE
from models.dataset import ClipFrames, clip_seeds, synth_clipframes
from models.metrics import best_clip_threshold, clip_f1_at, roc_auc
from models.silhouette import (
    TARGET_STRIDE,
    FeatureBanks,
    SilhouetteConfig,
    SilhouetteNet,
    fit_temporal_head,
    head_scores,
    silhouette_spec,
    window_stack,
)


def perfect_bank(frames: ClipFrames, batch: int = 512) -> np.ndarray:
    """Per-frame features from the truth maps: the silhouette as a sharp logit, each joint's
    Gaussian as log-probabilities (its soft-argmax is the joint's position)."""
    out = []
    for i in range(0, len(frames.target), batch):
        t = torch.from_numpy(frames.target[i : i + batch]).float() / 255.0
        maps = torch.cat([12.0 * (t[:, :1] - 0.5), torch.log(t[:, 1:] + 1e-3)], dim=1)
        out.append(SilhouetteNet.frame_features(maps).numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-clips", type=int, default=1000)
    parser.add_argument("--heldout-clips", type=int, default=320)
    args = parser.parse_args()
    spec = silhouette_spec()

    def render(base: int, n: int, preset: str) -> ClipFrames:
        return synth_clipframes(clip_seeds(base, n), preset, spec, target_stride=TARGET_STRIDE)

    train, held = render(TRAIN_BASE, args.train_clips, "train"), render(
        HELDOUT_SEED, args.heldout_clips, "heldout"
    )
    torch.manual_seed(0)
    net = SilhouetteNet()
    bank = perfect_bank(train)
    cfg = SilhouetteConfig(progress=False)
    gen, rng = torch.Generator().manual_seed(0), np.random.default_rng(0)
    banks = FeatureBanks(bank, bank)  # the truth has no camera to re-film
    (thr,), val_f1, _, val_auc, _ = fit_temporal_head(net, train, banks, spec, cfg, gen, rng)
    # The validation threshold is folded into the net: p >= 0.5 is its decision.
    p = head_scores(net, window_stack(perfect_bank(held), held.first, spec))
    best = best_clip_threshold(p, held.clip, held.clip_label)
    print(f"validation (train preset): window AUC {val_auc:.3f}, clip F1 {val_f1:.3f} "
          f"(threshold {thr:.3f})")  # fmt: skip
    print(f"held-out: {len(np.unique(held.clip))} clips, window AUC {roc_auc(p, held.y == 1):.3f}, "
          f"clip F1 {clip_f1_at(p, held.clip, held.clip_label, 0.5):.3f} at the validation "
          f"threshold, {clip_f1_at(p, held.clip, held.clip_label, best):.3f} at its own best "
          f"(folded p {best:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
