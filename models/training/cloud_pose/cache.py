"""Pose outputs of a clip folder, computed once per clip frame and cached as .npz.

    python -m models.training.cloud_pose.cache --data data/pose320/train --out data/posecache/train \
        [--pose models/zoo/pose/movenet_multipose_lightning.onnx] [--shard 0 --shards 2]

Inputs: a clip folder (`models.runtime.clips.ClipFolder`; its labels are not read here) and the
pose model file. Each clip is decoded, resampled to the window rate (8 fps, exactly as
`models.runtime.windows.cut_windows` does) and every resampled frame goes through the SAME pose
runtime the composite cloud runs (`models.runtime.pose.multipose.MultiPoseModel.detect`, same
long side and minimum person score), once: overlapping windows share their frames.
Outputs: `<out>/<clip stem>.npz` per clip with `keypoints [F,P,17,3]`, `boxes [F,P,4]`,
`scores [F,P]`, `count [F]` (people found per frame, the first `count` of P rows are
real), `width`, `height`, and what produced it (`pose_sha256`, `long_side`,
`min_score`); `load_clip_poses` reads one back as `FramePoses` per frame.
Guarantees: resumable (a clip whose file exists and was made by the same model and
settings is skipped); each file is written atomically (temp + rename); `--shard i
--shards n` takes clips i, i+n, ... so n processes split a folder without overlap.
Failure modes: `ClipReadError`/`ClipFolderError` from `models.runtime.clips`; `ModelLoadError`
for the pose file; a corrupt cache file is recomputed.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.runtime.clips import ClipFolder, read_clip
from models.runtime.pose.multipose import MultiPoseModel
from models.runtime.pose.results import FramePoses
from models.runtime.windows import resample_frames

__all__ = ["DEFAULT_MIN_SCORE", "PoseCacheKey", "cache_folder", "clip_cache_path",
           "load_clip_poses", "pack_poses", "unpack_poses"]  # fmt: skip

log = logging.getLogger(__name__)
DEFAULT_MIN_SCORE = 0.1  # = MultiPoseModel.detect's default: lying people score 0.1-0.2
_MAX_PEOPLE = 6


@dataclass(frozen=True)
class PoseCacheKey:
    """What a cache file must have been made with to be reused."""

    pose_sha256: str
    long_side: int
    min_score: float


def pack_poses(poses: list[FramePoses]) -> dict[str, np.ndarray]:
    """Per-frame people → fixed-size arrays (`count` says how many rows are real)."""
    f = len(poses)
    kp = np.zeros((f, _MAX_PEOPLE, 17, 3), np.float32)
    boxes = np.zeros((f, _MAX_PEOPLE, 4), np.float32)
    scores = np.zeros((f, _MAX_PEOPLE), np.float32)
    count = np.zeros((f,), np.int64)
    for i, p in enumerate(poses):
        n = min(len(p), _MAX_PEOPLE)
        kp[i, :n], boxes[i, :n], scores[i, :n], count[i] = p.keypoints[:n], p.boxes[:n], \
            p.scores[:n], n  # fmt: skip
    return {"keypoints": kp, "boxes": boxes, "scores": scores, "count": count}


def unpack_poses(arrays: dict[str, np.ndarray], width: int, height: int) -> list[FramePoses]:
    """Inverse of `pack_poses`; coordinates clipped onto the frame as `decode_multipose`
    does (a no-op for its output; files cached before it clipped read the same)."""
    kp = arrays["keypoints"].copy()
    kp[..., 0] = np.clip(kp[..., 0], 0.0, float(width))
    kp[..., 1] = np.clip(kp[..., 1], 0.0, float(height))
    boxes = arrays["boxes"].copy()
    boxes[..., 0::2] = np.clip(boxes[..., 0::2], 0.0, float(width))
    boxes[..., 1::2] = np.clip(boxes[..., 1::2], 0.0, float(height))
    out = []
    for i, n in enumerate(arrays["count"].tolist()):
        out.append(FramePoses(kp[i, :n], boxes[i, :n], arrays["scores"][i, :n], width, height))
    return out


def clip_cache_path(out_dir: Path, clip_file: str) -> Path:
    """Cache file of a clip (its path in the folder, slashes flattened)."""
    stem = Path(clip_file).with_suffix("").as_posix().replace("/", "__")
    return out_dir / f"{stem}.npz"


def load_clip_poses(path: Path, key: PoseCacheKey | None = None) -> list[FramePoses] | None:
    """The cached per-frame poses of a clip; None when absent, unreadable or made otherwise."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError):
        return None
    if key is not None and (
        str(arrays["pose_sha256"]) != key.pose_sha256
        or int(arrays["long_side"]) != key.long_side
        or abs(float(arrays["min_score"]) - key.min_score) > 1e-9
    ):
        return None
    return unpack_poses(arrays, int(arrays["width"]), int(arrays["height"]))


def _write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stub wants **ArrayLike
    os.replace(tmp, path)


def cache_folder(
    data: Path, out_dir: Path, model: MultiPoseModel, *, min_score: float = DEFAULT_MIN_SCORE,
    shard: int = 0, shards: int = 1,
) -> tuple[int, int]:  # fmt: skip
    """Cache every clip of `data` (this shard's share); returns (computed, skipped)."""
    folder = ClipFolder(data)
    key = PoseCacheKey(model.meta.sha256, model.long_side, min_score)
    done = skipped = 0
    t0 = time.perf_counter()
    records = list(folder)[shard::shards]
    for i, rec in enumerate(records):
        path = clip_cache_path(out_dir, rec.file)
        if load_clip_poses(path, key) is not None:
            skipped += 1
            continue
        frames, fps = read_clip(rec.path)
        frames = resample_frames(frames, fps)
        poses = model.detect(frames, min_score=min_score)
        arrays = pack_poses(poses)
        arrays.update(
            width=np.array(frames.shape[2]), height=np.array(frames.shape[1]),
            pose_sha256=np.array(key.pose_sha256), long_side=np.array(key.long_side),
            min_score=np.array(key.min_score),
        )  # fmt: skip
        _write(path, arrays)
        done += 1
        if done % 20 == 0:
            rate = (time.perf_counter() - t0) / done
            print(f"[pose cache] {out_dir.name}: {i + 1}/{len(records)} clips "
                  f"({rate:.1f} s/clip)", flush=True)  # fmt: skip
    return done, skipped


def main(argv: list[str] | None = None) -> int:
    from models.runtime.pose import zoo_pose_path

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="clip folder (labels.csv)")
    p.add_argument("--out", type=Path, required=True, help="cache folder to write")
    p.add_argument("--pose", type=Path, default=zoo_pose_path())
    p.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE)
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--shards", type=int, default=1)
    args = p.parse_args(argv)
    model = MultiPoseModel.load(args.pose, threads=1)
    t0 = time.perf_counter()
    done, skipped = cache_folder(args.data, args.out, model, min_score=args.min_score,
                                 shard=args.shard, shards=args.shards)  # fmt: skip
    print(f"[pose cache] {args.data} shard {args.shard}/{args.shards}: {done} clips computed, "
          f"{skipped} cached, {time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
