"""MoveNet MultiPose Lightning under onnxruntime: frames in, people with 17 keypoints out.

    model = MultiPoseModel.load(zoo_pose_path("movenet_multipose_lightning"), threads=1)
    poses = model.detect(frames)              # frames: uint8 [H,W,3] each, any size
    poses[t].keypoints [P,17,3] (x, y px, score), .boxes [P,4] (x0,y0,x1,y1 px), .scores [P]
    poses, timings = model.detect_timed(frames); timings.ms_per_frame

Inputs: RGB uint8 frames of any size (a `[T,H,W,3]` array or a sequence of `[H,W,3]`).
Outputs: one `FramePoses` per frame (coordinates in source pixels, clipped to the frame)
with every person whose person score is at least
`min_score` (default 0.1, below MoveNet's usual 0.2-0.3 on purpose: people lying on the
floor score 0.1-0.2 and the tracker decides what to keep), best first, at most 6.
Guarantees: only numpy, PIL, onnx and onnxruntime are imported; `load` checks role
(`pose`), kind (`movenet_multipose`), the file's sha256, the input/output names and
runs one warm-up inference. Frames are preprocessed by `models.runtime.pose.preprocess`
(long side `long_side`, default from the file's metadata: 256). The converted graph has
a fixed batch of 1 (the TFLite original does), so frames run one per `session.run`;
preprocess, inference and postprocess are timed separately (`PoseTimings`).
Failure modes: `ModelLoadError` (unreadable file, sha256 mismatch, not a MultiPose model,
onnxruntime cannot load it), `WindowError` (a frame that is not uint8 `[H,W,3]`: poison
input), `InferenceError` (onnxruntime fails on a well-formed frame).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import numpy as np
import onnxruntime as ort

from models.runtime.errors import InferenceError, ModelLoadError
from models.runtime.metadata import parse_model, verify_sha256
from models.runtime.onnx_models import make_session
from models.runtime.pose.metadata import PoseModelMeta, read_pose_metadata
from models.runtime.pose.preprocess import InputGeometry, check_frame, input_geometry, letterbox
from models.runtime.pose.results import FramePoses, PoseTimings

__all__ = ["INPUT_NAME", "KIND", "OUTPUT_NAME", "MultiPoseModel", "decode_multipose"]

log = logging.getLogger(__name__)

KIND = "movenet_multipose"
INPUT_NAME = "image"  # uint8 [1, H, W, 3], H and W multiples of 32
OUTPUT_NAME = "poses"  # float32 [1, 6, 56]: 17 x (y, x, score), box (y0, x0, y1, x1), score


def decode_multipose(raw: np.ndarray, geom: InputGeometry, min_score: float) -> FramePoses:
    """One frame's `[6, 56]` MultiPose output → `FramePoses` in source pixels."""
    raw = raw.reshape(-1, 56)
    order = np.argsort(-raw[:, 55], kind="stable")
    raw = raw[order[raw[order, 55] >= min_score]]
    kp = raw[:, :51].reshape(-1, 17, 3)
    x, y = geom.to_pixels(kp[..., 0], kp[..., 1])
    # Points the model puts in the padding are clipped onto the frame's edge.
    w, h = float(geom.width), float(geom.height)
    keypoints = np.stack([np.clip(x, 0, w), np.clip(y, 0, h), kp[..., 2]], axis=-1)
    x0, y0 = geom.to_pixels(raw[:, 51], raw[:, 52])
    x1, y1 = geom.to_pixels(raw[:, 53], raw[:, 54])
    boxes = np.stack([np.clip(x0, 0, w), np.clip(y0, 0, h), np.clip(x1, 0, w), np.clip(y1, 0, h)],
                     axis=-1)  # fmt: skip
    return FramePoses(keypoints.astype(np.float32), boxes.astype(np.float32),
                      raw[:, 55].astype(np.float32), geom.width, geom.height)  # fmt: skip


class MultiPoseModel:
    """MoveNet MultiPose Lightning: up to 6 people per frame, 17 COCO keypoints each."""

    def __init__(
        self, session: ort.InferenceSession, meta: PoseModelMeta, source: str,
        long_side: int | None = None,
    ) -> None:  # fmt: skip
        self.session = session
        self.meta = meta
        self.source = source
        self.long_side = int(long_side or meta.input.long_side)
        if self.long_side < meta.input.multiple:
            raise ValueError(f"long_side {self.long_side} < {meta.input.multiple}")
        self._geoms: dict[tuple[int, int], InputGeometry] = {}

    @classmethod
    def load(cls, path: str | Path, threads: int = 1, long_side: int | None = None) -> Self:
        """Load, verify and warm up a pose model file; ModelLoadError on any problem."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"cannot read pose model {path}: {exc}") from exc
        return cls.from_bytes(data, threads=threads, source=str(path), long_side=long_side)

    @classmethod
    def from_bytes(
        cls, data: bytes, threads: int = 1, source: str = "<bytes>", long_side: int | None = None
    ) -> Self:
        proto = parse_model(data)
        verify_sha256(proto)
        meta = read_pose_metadata(proto)
        if meta.kind != KIND:
            raise ModelLoadError(f"{source}: expected a {KIND} model, file says {meta.kind}")
        try:
            session = make_session(data, threads)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelLoadError(f"{source}: onnxruntime cannot load it: {exc}") from exc
        inputs = [i.name for i in session.get_inputs()]
        outputs = [o.name for o in session.get_outputs()]
        if inputs != [INPUT_NAME] or outputs != [OUTPUT_NAME]:
            raise ModelLoadError(f"{source}: inputs {inputs} / outputs {outputs}, expected "
                                 f"[{INPUT_NAME!r}] / [{OUTPUT_NAME!r}]")  # fmt: skip
        model = cls(session, meta, source, long_side)
        try:
            model.detect([np.zeros((48, 64, 3), np.uint8)])
        except Exception as exc:
            raise ModelLoadError(f"{source}: warm-up inference failed: {exc}") from exc
        log.info(
            "pose_model_loaded",
            extra={"model_name": meta.name, "version": meta.version, "sha256": meta.sha256,
                   "threads": threads, "long_side": model.long_side, "source": source},
        )  # fmt: skip
        return model

    def geometry(self, width: int, height: int) -> InputGeometry:
        """The input layout used for frames of `width`x`height` (cached per size)."""
        key = (width, height)
        geom = self._geoms.get(key)
        if geom is None:
            geom = input_geometry(width, height, self.long_side, self.meta.input.multiple)
            self._geoms[key] = geom
        return geom

    def _run(self, x: np.ndarray) -> np.ndarray:
        try:
            out: np.ndarray = self.session.run(None, {INPUT_NAME: x})[0]
        except Exception as exc:
            raise InferenceError(f"pose inference failed on {x.shape}: {exc}") from exc
        return out

    def detect_timed(
        self, frames: Sequence[np.ndarray] | np.ndarray, min_score: float = 0.1
    ) -> tuple[list[FramePoses], PoseTimings]:
        """`detect`, plus the seconds spent in each stage."""
        pre = inf = post = 0.0
        results: list[FramePoses] = []
        for frame in frames:
            t0 = time.perf_counter()
            check_frame(frame)
            geom = self.geometry(frame.shape[1], frame.shape[0])
            x = letterbox(frame, geom)
            t1 = time.perf_counter()
            raw = self._run(x)
            t2 = time.perf_counter()
            results.append(decode_multipose(raw[0], geom, min_score))
            t3 = time.perf_counter()
            pre, inf, post = pre + t1 - t0, inf + t2 - t1, post + t3 - t2
        return results, PoseTimings(pre, inf, post, len(results))

    def detect(
        self, frames: Sequence[np.ndarray] | np.ndarray, min_score: float = 0.1
    ) -> list[FramePoses]:
        """People per frame (person score >= `min_score`), best first."""
        return self.detect_timed(frames, min_score)[0]
