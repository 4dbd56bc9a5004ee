"""Late fusion of the pose cloud with the pixel cloud (the single-ONNX cloud of before).

    python -m models.training.cloud_pose.fusion --cloud out/zoo-pose/cloud.onnx \
        --pixel out/zoo-pose/pixel_cloud.onnx --data DEV_FOLDER --cache DEV_CACHE \
        --out out/zoo-pose-fused/cloud.onnx

The two models err on different windows (pose: people the pose model misses; pixels:
cameras unlike the renders), so the fused fall logit is
`pose_weight * logit(p_pose) + pixel_weight * logit(p_pixel) + bias`, three numbers
fitted by logistic regression on a labelled folder's windows, the bias then moved so
that the clip-level F1 on that folder is best. The folder must be neither the
evaluation folder nor clips the pixel cloud was trained on (its scores there are
over-confident): use a separate render.
Output: a copy of the classifier file whose `fallwatch.pose_pipeline` gains `fusion`
(the pixel file, relative to the output, its sha256 and the three numbers), re-stamped;
the pixel file is copied beside it. `PoseCloudModel` then runs both and fuses.
Failure modes: `TrainingError` for a folder with one class; load errors of the files.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx

from models.evaluation.metrics import best_clip_threshold, clip_f1_at
from models.runtime.clips import iter_windows
from models.runtime.cloud_pose.pipeline import PIPELINE_KEY, PoseCloudModel, logit
from models.runtime.errors import TrainingError
from models.runtime.metadata import read_metadata, stamp_metadata
from models.runtime.onnx_models import CloudModel
from models.training.cloud_pose.cache import PoseCacheKey
from models.training.cloud_pose.dataset import folder_tracks
from models.training.export import write_model_atomic

__all__ = ["fit_fusion", "main"]


def fit_fusion(
    z: np.ndarray, y: np.ndarray, clip: np.ndarray, clip_label: np.ndarray,
    *, l2: float = 1e-3, steps: int = 500,
) -> tuple[np.ndarray, float, float]:  # fmt: skip
    """Logistic regression of window labels on the logits `z [N, 2]` (Newton steps), then the
    bias shift with the best clip F1. Returns (weights [2], bias, clip F1)."""
    if y.min() == y.max():
        raise TrainingError("fusion needs fall and no-fall windows")
    x = np.concatenate([z, np.ones((len(z), 1))], axis=1)
    w = np.zeros(3)
    pos = y.mean()
    sw = np.where(y == 1, 0.5 / pos, 0.5 / (1 - pos))  # class-balanced
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x @ w))
        grad = x.T @ (sw * (p - y)) + l2 * np.r_[w[:2], 0.0]
        hess = (x * (sw * p * (1 - p))[:, None]).T @ x + l2 * np.eye(3)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    p = 1 / (1 + np.exp(-x @ w))
    t = best_clip_threshold(p, clip, clip_label)
    f1 = clip_f1_at(p, clip, clip_label, t)
    return w[:2], float(w[2] - np.log(t / (1 - t))), f1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cloud", type=Path, required=True, help="pose cloud classifier file")
    ap.add_argument("--pixel", type=Path, required=True, help="single-ONNX pixel cloud")
    ap.add_argument("--data", type=Path, required=True, help="labelled fitting folder")
    ap.add_argument("--cache", type=Path, required=True, help="its pose cache")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    pose_cloud = CloudModel.load(args.cloud)
    pixel = CloudModel.load(args.pixel)
    if not isinstance(pose_cloud, PoseCloudModel) or isinstance(pixel, PoseCloudModel):
        raise SystemExit("fusion: --cloud must be a pose cloud and --pixel a pixel cloud")
    spec = pose_cloud.pipeline
    key = PoseCacheKey(pose_cloud.pose.meta.sha256, pose_cloud.pose.long_side, spec.min_score)
    ts = folder_tracks(args.data, args.cache, key, pose_cloud.tracker, spec.max_tracks)
    p_pose = np.concatenate([pose_cloud.infer(ts.x[i : i + 256]).probs[:, 1]
                             for i in range(0, len(ts), 256)])  # fmt: skip
    wins = [w for _, _, w, _ in iter_windows(args.data)]
    p_pixel = np.concatenate([pixel.predict(wins[i : i + 16]).probs[:, 1]
                              for i in range(0, len(wins), 16)])  # fmt: skip
    z = np.stack([logit(p_pose), logit(p_pixel)], axis=1)
    w, bias, f1 = fit_fusion(z, ts.y.astype(np.float64), ts.clip, ts.clip_label)
    print(
        f"[fusion] {len(ts)} windows of {len(np.unique(ts.clip))} clips: weights pose "
        f"{w[0]:.3f} pixel {w[1]:.3f} bias {bias:.3f}; clip F1 on the fitting folder {f1:.3f}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pixel_target = args.out.parent / "pixel_cloud.onnx"
    shutil.copy2(args.pixel, pixel_target)
    pose_src = args.cloud.parent / spec.pose_file
    pose_dst = args.out.parent / spec.pose_file
    if pose_src.resolve() != pose_dst.resolve():
        shutil.copytree(pose_src.parent, pose_dst.parent, dirs_exist_ok=True)
    fusion = {"pixel_file": pixel_target.name, "pixel_sha256": pixel.meta.sha256,
              "pose_weight": float(w[0]), "pixel_weight": float(w[1]), "bias": bias,
              "fitted_on": str(args.data), "fit_clip_f1": f1}  # fmt: skip
    model = onnx.load(str(args.cloud))
    meta = read_metadata(model)
    extra = dict(meta.extra)
    extra[PIPELINE_KEY] = replace(spec, fusion=fusion).to_json()
    stamp_metadata(model, replace(meta, extra=extra, sha256=""))
    write_model_atomic(model, args.out)
    print(f"[fusion] wrote {args.out}: {json.dumps(fusion)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
