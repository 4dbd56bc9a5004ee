"""Train the track classifier and export the composite cloud (torch; training only).

    python -m models.training.cloud_pose.train --data data/pose320/train --cache data/posecache/train \
        --out out/zoo-pose/cloud.onnx [--heldout data/pose320/heldout \
        --heldout-cache data/posecache/heldout]

Inputs: a labelled clip folder and its pose cache (`models.training.cloud_pose.cache`, made
with the pose file given by `--pose`), the tracker defaults (`models.runtime.pose.TrackerConfig`).
Steps: `folder_tracks` (with mirrored copies) → split clips (seeded; `val_fraction`
for validation) → `train_classifier`: AdamW, class-balanced BCE on the window logit
(multiple-instance: max over tracks), mirror and camera-distance augmentation (optional), best epoch by validation
window ROC AUC, then the decision threshold with the best validation clip F1 folded
into `fall_bias` → `export_pose_cloud`: the classifier ONNX (input `tracks`, outputs
`probs`, `track_p_fall`) with `fallwatch.*` metadata naming the pose file relative to
the output (copied beside it under `pose/` with its licences when it is elsewhere) and
its sha256, checked against PyTorch by `models.training.export`.
Outputs: the .onnx file; printed validation (and optionally cached held-out) figures.
Guarantees: deterministic for a seed (1 torch thread). Failure modes: `TrainingError`.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.evaluation.metrics import best_clip_threshold, clip_f1_at, roc_auc
from models.runtime.cloud_pose.features import FEATURE_NAMES
from models.runtime.cloud_pose.pipeline import PIPELINE_KEY, PosePipelineSpec
from models.runtime.errors import TrainingError
from models.runtime.metadata import InputSpec, ModelMeta
from models.runtime.pose.multipose import MultiPoseModel
from models.runtime.pose.tracker import TrackerConfig
from models.runtime.windows import WINDOW_FPS, WINDOW_FRAMES
from models.training.cloud_pose.cache import DEFAULT_MIN_SCORE, PoseCacheKey
from models.training.cloud_pose.dataset import TrackSet, folder_tracks
from models.training.cloud_pose.net import TrackClassifier
from models.training.export import _export_bytes, _finish  # the project's export + agreement check
from models.training.nets import count_macs

__all__ = ["TrainConfig", "TrainResult", "export_pose_cloud", "main", "train_classifier"]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 40
    batch: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    width: int = 64
    hidden: int = 64
    val_fraction: float = 0.15
    seed: int = 0
    drop_features: tuple[str, ...] = ()  # columns the classifier ignores


@dataclass
class TrainResult:
    net: TrackClassifier
    threshold: float  # on P(fall) before the bias was folded in
    val_auc: float
    val_clip_f1: float
    best_epoch: int
    seconds: float


def _standardiser(x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    present = (x[..., 1] + x[..., 2]) > 0  # seen or held
    rows = x[present] if present.any() else x.reshape(-1, x.shape[-1])
    mean, std = rows.mean(0), rows.std(0)
    mean[0], std[0] = 0.0, 1.0  # track_valid stays 0/1
    return torch.from_numpy(mean), torch.from_numpy(std)


def _scores(net: TrackClassifier, x: np.ndarray, batch: int = 512) -> np.ndarray:
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(torch.sigmoid(net.window_logits(torch.from_numpy(x[i : i + batch]))))
    return torch.cat(out).numpy()


def _split(ts: TrackSet, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    clips = np.unique(ts.clip)
    rng = np.random.default_rng(seed)
    val_clips = rng.choice(clips, size=max(1, round(fraction * len(clips))), replace=False)
    is_val = np.isin(ts.clip, val_clips)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def train_classifier(ts: TrackSet, cfg: TrainConfig, *, progress: bool = True) -> TrainResult:
    """Fit a `TrackClassifier` on `ts` (see the module docstring)."""
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(1)
    fit, val = _split(ts, cfg.val_fraction, cfg.seed)
    y = ts.y[fit].astype(np.float32)
    if y.min() == y.max():
        raise TrainingError("training windows hold a single class")
    mean, std = _standardiser(ts.x[fit])
    unknown = set(cfg.drop_features) - set(FEATURE_NAMES)
    if unknown:
        raise TrainingError(f"unknown features to drop: {sorted(unknown)}")
    keep = torch.tensor([0.0 if n in cfg.drop_features else 1.0 for n in FEATURE_NAMES])
    net = TrackClassifier(mean, std, width=cfg.width, hidden=cfg.hidden, keep=keep)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil(len(fit) / cfg.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    pos_weight = torch.tensor(float((1 - y).sum() / max(y.sum(), 1.0)))
    rng = np.random.default_rng(cfg.seed)
    x_fit = torch.from_numpy(ts.x[fit])
    views = [torch.from_numpy(v[fit]) for v in (ts.x_mirror, ts.x_rescaled) if v is not None]
    y_fit = torch.from_numpy(y)
    best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, -1, {})
    for epoch in range(cfg.epochs):
        net.train()
        order = torch.from_numpy(rng.permutation(len(fit)))
        total = 0.0
        for i in range(0, len(fit), cfg.batch):
            idx = order[i : i + cfg.batch]
            xb = x_fit[idx]
            pick = rng.integers(0, len(views) + 1, size=len(idx))  # 0 = as filmed
            for v, view in enumerate(views, start=1):
                chosen = torch.from_numpy(pick == v)[:, None, None, None]
                xb = torch.where(chosen, view[idx], xb)
            loss = F.binary_cross_entropy_with_logits(net.window_logits(xb), y_fit[idx],
                                                      pos_weight=pos_weight)  # fmt: skip
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]  # torch's stub is untyped here
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        auc = roc_auc(_scores(net, ts.x[val]), ts.y[val] == 1)
        if auc > best[0]:
            best = (auc, epoch, {k: v.clone() for k, v in net.state_dict().items()})
        if progress and (epoch % 5 == 4 or epoch == cfg.epochs - 1):
            print(f"[track classifier] epoch {epoch + 1}/{cfg.epochs} loss "
                  f"{total / len(fit):.4f} val window AUC {auc:.4f}", flush=True)  # fmt: skip
    net.load_state_dict(best[2])
    p_val = _scores(net, ts.x[val])
    threshold = best_clip_threshold(p_val, ts.clip[val], ts.clip_label[val])
    f1 = clip_f1_at(p_val, ts.clip[val], ts.clip_label[val], threshold)
    net.get_buffer("fall_bias").fill_(-math.log(threshold / (1.0 - threshold)))
    net.eval()
    return TrainResult(net, threshold, best[0], f1, best[1], time.perf_counter() - t0)


def export_pose_cloud(
    net: TrackClassifier, out: Path, pose_path: Path, pose_sha256: str, *,
    long_side: int, min_score: float, tracker: TrackerConfig, extra: dict[str, str],
    seed: int, version: str = "0.2.0",
) -> ModelMeta:  # fmt: skip
    """Write the classifier ONNX with its pipeline metadata; the pose file must sit under
    `out`'s folder (it is copied to `<out dir>/pose/` with its licences otherwise)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        rel = pose_path.resolve().relative_to(out.parent.resolve())
    except ValueError:
        target = out.parent / "pose" / pose_path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(pose_path, target)
        licences = pose_path.parent / "licences"
        if licences.is_dir():
            shutil.copytree(licences, target.parent / "licences", dirs_exist_ok=True)
        rel = target.relative_to(out.parent)
    spec = PosePipelineSpec(
        pose_file=rel.as_posix(), pose_sha256=pose_sha256, long_side=long_side,
        min_score=min_score, max_tracks=tracker.max_tracks, tracker=asdict(tracker),
    )  # fmt: skip
    shape = (1, tracker.max_tracks, WINDOW_FRAMES, len(FEATURE_NAMES))
    example = torch.zeros(shape)
    meta = ModelMeta(
        role="cloud", name="fallwatch-cloud-pose", version=version,
        input=InputSpec(frames=WINDOW_FRAMES, height=240, width=320, color="rgb",
                        fps=WINDOW_FPS),
        seed=seed, trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        flops=count_macs(net, example), extra={PIPELINE_KEY: spec.to_json(), **extra},
    )  # fmt: skip
    data = _export_bytes(net, example, "tracks", ["probs", "track_p_fall"])
    return _finish(data, meta, out, net, shape, "tracks")


def _cached_eval(net: TrackClassifier, ts: TrackSet) -> str:
    p = _scores(net, ts.x)
    bias = float(net.get_buffer("fall_bias"))
    decided = p >= 1.0 / (1.0 + math.exp(bias))
    f1 = clip_f1_at(decided.astype(np.float32), ts.clip, ts.clip_label, 0.5)
    return (f"{len(np.unique(ts.clip))} clips, {len(ts)} windows: clip F1 {f1:.3f}, "
            f"window AUC {roc_auc(p, ts.y == 1):.4f}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from models.runtime.pose import zoo_pose_path

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--pose", type=Path, default=zoo_pose_path())
    p.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE)
    p.add_argument("--heldout", type=Path, default=None)
    p.add_argument("--heldout-cache", type=Path, default=None)
    p.add_argument(
        "--dev",
        type=Path,
        default=None,
        help="labelled folder for model selection across recipes (printed only)",
    )
    p.add_argument("--dev-cache", type=Path, default=None)
    p.add_argument(
        "--rescale",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="also train on a copy of every window at a random camera distance",
    )
    p.add_argument("--drop", nargs="*", default=[], help="feature columns to ignore")
    p.add_argument("--weight-decay", type=float, default=TrainConfig.weight_decay)
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    pose = MultiPoseModel.load(args.pose, threads=1)
    key = PoseCacheKey(pose.meta.sha256, pose.long_side, args.min_score)
    tracker = TrackerConfig()
    t0 = time.perf_counter()
    rescale = None if args.rescale is None else (float(args.rescale[0]), float(args.rescale[1]))
    ts = folder_tracks(args.data, args.cache, key, tracker, tracker.max_tracks, mirror=True,
                       rescale=rescale, seed=args.seed)  # fmt: skip
    t_data = time.perf_counter() - t0
    print(f"[track classifier] {len(ts)} windows ({int(ts.y.sum())} fall) of "
          f"{len(np.unique(ts.clip))} clips, tracked in {t_data:.0f} s", flush=True)  # fmt: skip
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed, drop_features=tuple(args.drop),
                      weight_decay=args.weight_decay)  # fmt: skip
    res = train_classifier(ts, cfg)
    print(f"[track classifier] trained in {res.seconds:.0f} s; best epoch {res.best_epoch + 1}, "
          f"val window AUC {res.val_auc:.4f}, val clip F1 {res.val_clip_f1:.3f} at "
          f"P(fall) >= {res.threshold:.3f}", flush=True)  # fmt: skip
    decision = {"val_threshold": res.threshold, "val_clip_f1": res.val_clip_f1,
                "val_window_auc": res.val_auc, "best_epoch": res.best_epoch + 1}  # fmt: skip
    training = {"data": str(args.data), "windows": len(ts), "fall_windows": int(ts.y.sum()),
                "clips": len(np.unique(ts.clip)), "config": asdict(cfg), "rescale": rescale,
                "train_seconds": round(res.seconds, 1), "track_seconds": round(t_data, 1)}  # fmt: skip
    stamped = export_pose_cloud(
        res.net, args.out, args.pose, pose.meta.sha256, long_side=pose.long_side,
        min_score=args.min_score, tracker=tracker, seed=args.seed,
        extra={"fallwatch.decision": json.dumps(decision),
               "fallwatch.training": json.dumps(training)},
    )  # fmt: skip
    print(f"[track classifier] wrote {args.out} (sha256 {stamped.sha256[:12]}, "
          f"{stamped.flops} multiply-adds/window in the classifier)")  # fmt: skip
    if args.dev is not None and args.dev_cache is not None:
        dev = folder_tracks(args.dev, args.dev_cache, key, tracker, tracker.max_tracks)
        print(f"[track classifier] dev from the cache: {_cached_eval(res.net, dev)}")
    if args.heldout is not None and args.heldout_cache is not None:
        held = folder_tracks(args.heldout, args.heldout_cache, key, tracker, tracker.max_tracks)
        print(f"[track classifier] held-out from the cache: {_cached_eval(res.net, held)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
