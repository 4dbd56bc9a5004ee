"""The composite cloud model: pose ONNX per frame → tracker → track classifier ONNX.

    cloud = CloudModel.load("models/zoo/cloud.onnx")   # a PoseCloudModel when the file
    cloud.predict(windows).probs                        # names a pose pipeline: [N, 2]

Inputs: windows, RGB uint8 `[T, H, W, 3]`, any frame size (the pose stage resizes;
features are in frame units) and any T (resampled to the file's `frames`, 16).
Files: the classifier ONNX (role `cloud`, input `tracks [N, K, T, F]`, output `probs`)
whose `fallwatch.pose_pipeline` metadata (JSON, `PosePipelineSpec`) names the pose model
file (path relative to the classifier file, and its `fallwatch.sha256`), the pose
settings (long side, minimum person score), the tracker settings, K and the feature
names. `fallwatch.input` says what a window is expected to be (16 frames at 8 fps,
320x240); a window of another size still works.
With `fusion` in the pipeline metadata, `predict` also runs the pixel cloud file named
there (sha256 checked) and returns the fused probabilities (`models.training.cloud_pose.fusion`).
Stages (`predict`): `preprocess` = pose per distinct frame of the batch (frames shared
by overlapping windows of one batch are estimated once), `models.runtime.pose.track_window`
per window, `models.runtime.cloud_pose.features.window_features`; `infer` = the classifier.
Guarantees: onnxruntime, numpy, PIL only (no torch); `load` checks the classifier's
sha256, its role, the pose file's own sha256 AND that it is the one the classifier was
trained with, then warms both up.
Failure modes: `ModelLoadError` (pipeline metadata missing or malformed, pose file
missing or another file than recorded, a feature list this code does not compute),
`WindowError` (bad window: poison input), `InferenceError` (onnxruntime failure).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from models.runtime.cloud_pose.features import FEATURE_NAMES, window_features
from models.runtime.errors import ModelLoadError
from models.runtime.metadata import ModelMeta
from models.runtime.onnx_models import POSE_PIPELINE_KEY, CloudModel, CloudOutput
from models.runtime.pose.multipose import MultiPoseModel
from models.runtime.pose.results import FramePoses
from models.runtime.pose.tracker import TrackerConfig, track_window
from models.runtime.preprocess import check_window, temporal_indices

__all__ = ["PIPELINE_KEY", "PoseCloudModel", "PosePipelineSpec", "is_pose_pipeline", "logit"]

PIPELINE_KEY = POSE_PIPELINE_KEY


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), p clipped to [1e-6, 1 - 1e-6]."""
    q = np.clip(p.astype(np.float64), 1e-6, 1 - 1e-6)
    out: np.ndarray = np.log(q / (1 - q))
    return out


def is_pose_pipeline(meta: ModelMeta) -> bool:
    """True when a cloud file is the classifier of a pose pipeline."""
    return PIPELINE_KEY in meta.extra


@dataclass(frozen=True)
class PosePipelineSpec:
    """What the classifier file says about the stages in front of it."""

    pose_file: str  # relative to the classifier file
    pose_sha256: str
    long_side: int
    min_score: float
    max_tracks: int
    features: tuple[str, ...] = FEATURE_NAMES
    tracker: dict[str, Any] = field(default_factory=lambda: asdict(TrackerConfig()))
    # Late fusion with a pixel cloud (models.training.cloud_pose.fusion): pixel_file (relative),
    # pixel_sha256, pose_weight, pixel_weight, bias; None = the pose cloud alone.
    fusion: dict[str, Any] | None = None

    def to_json(self) -> str:
        raw: dict[str, Any] = {
            "pose_file": self.pose_file, "pose_sha256": self.pose_sha256,
            "long_side": self.long_side, "min_score": self.min_score,
            "max_tracks": self.max_tracks, "features": list(self.features),
            "tracker": self.tracker, "aggregate": "max over tracks",
        }  # fmt: skip
        if self.fusion is not None:
            raw["fusion"] = self.fusion
        return json.dumps(raw, sort_keys=True)

    @classmethod
    def from_meta(cls, meta: ModelMeta, source: str) -> PosePipelineSpec:
        text = meta.extra.get(PIPELINE_KEY)
        if text is None:
            raise ModelLoadError(f"{source}: no {PIPELINE_KEY} metadata: not a pose cloud")
        try:
            raw = json.loads(text)
            spec = cls(
                pose_file=str(raw["pose_file"]), pose_sha256=str(raw["pose_sha256"]),
                long_side=int(raw["long_side"]), min_score=float(raw["min_score"]),
                max_tracks=int(raw["max_tracks"]), features=tuple(raw["features"]),
                tracker=dict(raw["tracker"]),
                fusion=None if raw.get("fusion") is None else dict(raw["fusion"]),
            )  # fmt: skip
            TrackerConfig(**spec.tracker)
            if spec.fusion is not None:
                for name in ("pose_weight", "pixel_weight", "bias"):
                    float(spec.fusion[name])
                str(spec.fusion["pixel_file"]), str(spec.fusion["pixel_sha256"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{source}: bad {PIPELINE_KEY} {text!r}: {exc}") from exc
        if spec.features != FEATURE_NAMES:
            raise ModelLoadError(f"{source}: trained on features this code does not compute "
                                 f"({len(spec.features)} vs {len(FEATURE_NAMES)} names)")  # fmt: skip
        files = [spec.pose_file] + ([] if spec.fusion is None else [spec.fusion["pixel_file"]])
        for name in files:
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise ModelLoadError(f"{source}: {name!r} must be a relative path, inside")
        return spec


class PoseCloudModel(CloudModel):
    """The cloud as a pose pipeline; same `predict`/`CloudOutput` contract as `CloudModel`."""

    input_name = "tracks"

    def __init__(self, session: ort.InferenceSession, meta: ModelMeta, source: str) -> None:
        super().__init__(session, meta, source)
        self.pipeline = PosePipelineSpec.from_meta(meta, source)
        self.tracker = TrackerConfig(**self.pipeline.tracker)
        pose_path = Path(source).parent / self.pipeline.pose_file
        threads = session.get_session_options().intra_op_num_threads
        self.pose = MultiPoseModel.load(pose_path, threads=max(1, threads),
                                        long_side=self.pipeline.long_side)  # fmt: skip
        if self.pose.meta.sha256 != self.pipeline.pose_sha256:
            raise ModelLoadError(
                f"{source}: pose model {pose_path} is sha256 {self.pose.meta.sha256[:12]}, the "
                f"classifier was trained on {self.pipeline.pose_sha256[:12]}; rebuild or retrain"
            )
        self.pixel: CloudModel | None = None
        fusion = self.pipeline.fusion
        if fusion is not None:
            pixel_path = Path(source).parent / str(fusion["pixel_file"])
            pixel = CloudModel.load(pixel_path, threads=max(1, threads))
            if isinstance(pixel, PoseCloudModel) or pixel.meta.sha256 != fusion["pixel_sha256"]:
                raise ModelLoadError(f"{source}: pixel cloud {pixel_path} is not the file the "
                                     "fusion was fitted with")  # fmt: skip
            self.pixel = pixel

    def frame_poses(self, windows: Sequence[np.ndarray]) -> list[list[FramePoses]]:
        """Pose per frame of each window (T resampled to the spec), each distinct frame once."""
        memo: dict[bytes, FramePoses] = {}
        out: list[list[FramePoses]] = []
        for window in windows:
            w = check_window(window)
            w = w[temporal_indices(w.shape[0], self.spec.frames)]
            keys: list[bytes] = []
            todo: list[tuple[bytes, np.ndarray]] = []
            for frame in w:
                frame = np.ascontiguousarray(frame)
                key = hashlib.blake2b(frame.data, digest_size=16).digest()
                keys.append(key)
                if key not in memo and all(k != key for k, _ in todo):
                    todo.append((key, frame))
            for (key, _), poses in zip(todo, self.pose.detect([f for _, f in todo],
                                       min_score=self.pipeline.min_score), strict=True):  # fmt: skip
                memo[key] = poses
            out.append([memo[k] for k in keys])
        return out

    def preprocess(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """Windows → float32 `[N, K, T, F]` track features (pose, tracking, features)."""
        return np.stack([
            window_features(track_window(poses, self.tracker), self.pipeline.max_tracks)
            for poses in self.frame_poses(windows)
        ])  # fmt: skip

    def infer(self, x: np.ndarray) -> CloudOutput:
        return CloudOutput(probs=self._run(x.astype(np.float32))["probs"].astype(np.float32))

    def fuse(self, pose: CloudOutput, pixel: CloudOutput) -> CloudOutput:
        """The fused probabilities (see `models.training.cloud_pose.fusion`)."""
        f = self.pipeline.fusion
        assert f is not None
        z = (float(f["pose_weight"]) * logit(pose.p_fall)
             + float(f["pixel_weight"]) * logit(pixel.p_fall) + float(f["bias"]))  # fmt: skip
        p = 1.0 / (1.0 + np.exp(-z))
        return CloudOutput(probs=np.stack([1.0 - p, p], axis=1).astype(np.float32))

    def predict(self, windows: Sequence[np.ndarray]) -> CloudOutput:
        out = self.infer(self.preprocess(windows))
        if self.pixel is None:
            return out
        return self.fuse(out, self.pixel.predict(windows))

    def warmup(self) -> None:
        k, t, f = self.pipeline.max_tracks, self.spec.frames, len(self.pipeline.features)
        self._run(np.zeros((1, k, t, f), dtype=np.float32))
