"""BlazePose (full) under onnxruntime: person detector + 33-landmark model with crop tracking.

    model = BlazePoseModel.load(zoo_pose_path("blazepose_detector"),
                                zoo_pose_path("blazepose_landmark_full"), threads=1)
    poses = model.detect(frames)     # one window's frames in order; FramePoses as MultiPose

Inputs: RGB uint8 frames of any size, in time order (crop tracking carries the person's
region from one frame to the next). Outputs: one `FramePoses` per frame with at most
`max_people` people (default 1): the 17 COCO keypoints picked from BlazePose's 33
landmarks (x, y source pixels, score = sigmoid(visibility)), the box around them, and
the person score = the landmark model's pose flag.
How (as MediaPipe's pose graph): the detector (224x224, input in [-1, 1], letterboxed)
scores 2254 SSD anchors; boxes above `min_detection` go through greedy NMS (IoU 0.3;
MediaPipe blends overlapping boxes instead); each detection's hip centre and scale
point give a rotated square region 2.5x their distance wide; the region is cut out
(bilinear affine warp, PIL) at 256x256 in [0, 1] for the landmark model, whose
landmarks 33/34 give the next frame's region, so the detector runs again only when the
pose flag falls under `track_flag` 0.5 (tracking mode, `track=True`). People are
reported down to a pose flag of `min_flag` 0.1: on our renders the flag of a correctly
placed skeleton is often 0.1-0.4 (MediaPipe's own cut is 0.5).
Guarantees: numpy, PIL, onnx and onnxruntime only; both files are checked (role `pose`,
kind, sha256, input/output names) and warmed up at load. The graphs have a fixed batch
of 1, so regions run one per `session.run`.
Failure modes: `ModelLoadError`, `WindowError` (bad frame), `InferenceError`, as
`models.runtime.pose.multipose`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
import onnxruntime as ort
from PIL import Image

from models.runtime.errors import InferenceError, ModelLoadError
from models.runtime.metadata import parse_model, verify_sha256
from models.runtime.onnx_models import make_session
from models.runtime.pose.metadata import PoseModelMeta, read_pose_metadata
from models.runtime.pose.preprocess import check_frame, input_geometry, letterbox
from models.runtime.pose.results import F32, FramePoses, PoseTimings

__all__ = ["BLAZE_TO_COCO", "BlazePoseModel", "Region", "ssd_anchors"]

log = logging.getLogger(__name__)

DETECTOR_KIND, LANDMARKS_KIND = "blazepose_detector", "blazepose_landmarks"
INPUT_NAME = "image"
DETECTOR_OUTPUTS = ("boxes", "scores")
LANDMARK_OUTPUTS = ("landmarks", "pose_flag")
# BlazePose landmark index of each COCO keypoint (nose, eyes, ears, shoulders, ...).
BLAZE_TO_COCO = np.array([0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])
_DET, _CROP = 224, 256


def ssd_anchors() -> F32:
    """The detector's 2254 anchor centres `[N,2]` (x, y in [0, 1]): MediaPipe's SSD options
    (5 layers, strides 8/16/32/32/32, 2 anchors per layer, fixed size), merged by stride."""
    strides = [8, 16, 32, 32, 32]
    out: list[tuple[float, float]] = []
    layer = 0
    while layer < len(strides):
        same = 0
        while layer + same < len(strides) and strides[layer + same] == strides[layer]:
            same += 1
        size = math.ceil(_DET / strides[layer])
        for y in range(size):
            for x in range(size):
                out.extend([((x + 0.5) / size, (y + 0.5) / size)] * (2 * same))
        layer += same
    return np.array(out, np.float32)


@dataclass(frozen=True)
class Region:
    """A rotated square region of a frame: centre (px), side (px), rotation (radians)."""

    cx: float
    cy: float
    size: float
    rotation: float

    @classmethod
    def from_points(cls, centre: np.ndarray, scale_point: np.ndarray) -> Region:
        """MediaPipe's alignment: hip centre and the full-body scale point, 90 degrees up,
        side 2 x their distance, then enlarged 1.25x."""
        dx, dy = float(scale_point[0] - centre[0]), float(scale_point[1] - centre[1])
        rot = math.pi / 2 - math.atan2(-dy, dx)
        rot = rot - 2 * math.pi * math.floor((rot + math.pi) / (2 * math.pi))
        return cls(float(centre[0]), float(centre[1]), 2.5 * math.hypot(dx, dy), rot)

    def to_source(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Crop coordinates in [0, 1] → source pixels."""
        du, dv = (u - 0.5) * self.size, (v - 0.5) * self.size
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        return self.cx + du * c - dv * s, self.cy + du * s + dv * c

    def crop(self, frame: np.ndarray, size: int = _CROP) -> np.ndarray:
        """The region warped to `size`x`size`, float32 `[1,size,size,3]` in [0, 1]."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        k = self.size / size
        # PIL AFFINE maps each output pixel (u, v) to the input (a u + b v + c, d u + e v + f).
        x0, y0 = self.to_source(np.array(0.0), np.array(0.0))
        coeffs = (k * c, -k * s, float(x0), k * s, k * c, float(y0))
        img = Image.fromarray(frame).transform((size, size), Image.Transform.AFFINE, coeffs,
                                               Image.Resampling.BILINEAR)  # fmt: skip
        return (np.asarray(img, np.float32) * (1.0 / 255.0))[None]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))
    return out


def _nms(boxes: F32, scores: F32, iou: float, keep: int) -> list[int]:
    order = list(np.argsort(-scores))
    chosen: list[int] = []
    while order and len(chosen) < keep:
        i = order.pop(0)
        chosen.append(i)
        b = boxes[i]
        rest = []
        for j in order:
            o = boxes[j]
            iw = max(0.0, min(b[2], o[2]) - max(b[0], o[0]))
            ih = max(0.0, min(b[3], o[3]) - max(b[1], o[1]))
            inter = iw * ih
            union = (b[2] - b[0]) * (b[3] - b[1]) + (o[2] - o[0]) * (o[3] - o[1]) - inter
            if inter / max(union, 1e-9) <= iou:
                rest.append(j)
        order = rest
    return chosen


def _load_part(path: str | Path, kind: str, outputs: tuple[str, ...], threads: int
               ) -> tuple[ort.InferenceSession, PoseModelMeta]:  # fmt: skip
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"cannot read pose model {path}: {exc}") from exc
    proto = parse_model(data)
    verify_sha256(proto)
    meta = read_pose_metadata(proto)
    if meta.kind != kind:
        raise ModelLoadError(f"{path}: expected a {kind} model, file says {meta.kind}")
    try:
        session = make_session(data, threads)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelLoadError(f"{path}: onnxruntime cannot load it: {exc}") from exc
    names = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
    if names != ([INPUT_NAME], list(outputs)):
        raise ModelLoadError(f"{path}: inputs/outputs {names}, expected {outputs}")
    return session, meta


class BlazePoseModel:
    """BlazePose full: single-person landmarks on regions found by the pose detector."""

    def __init__(
        self, detector: ort.InferenceSession, landmarks: ort.InferenceSession,
        metas: tuple[PoseModelMeta, PoseModelMeta], *, max_people: int = 1,
        min_detection: float = 0.5, min_flag: float = 0.1, track_flag: float = 0.5,
        track: bool = True,
    ) -> None:  # fmt: skip
        self.detector, self.landmarks, self.metas = detector, landmarks, metas
        self.max_people, self.min_detection, self.min_flag = max_people, min_detection, min_flag
        self.track, self.track_flag = track, track_flag
        self._anchors = ssd_anchors()

    @classmethod
    def load(
        cls, detector_path: str | Path, landmark_path: str | Path, threads: int = 1,
        **options: float | bool | int,
    ) -> Self:  # fmt: skip
        """Load, verify and warm up both files; ModelLoadError on any problem."""
        det, det_meta = _load_part(detector_path, DETECTOR_KIND, DETECTOR_OUTPUTS, threads)
        lmk, lmk_meta = _load_part(landmark_path, LANDMARKS_KIND, LANDMARK_OUTPUTS, threads)
        model = cls(det, lmk, (det_meta, lmk_meta), **options)  # type: ignore[arg-type]
        try:
            model.detect([np.zeros((48, 64, 3), np.uint8)])
            model._landmarks(np.zeros((48, 64, 3), np.uint8), Region(32, 24, 40, 0.0))
        except Exception as exc:
            raise ModelLoadError(f"{detector_path}: warm-up inference failed: {exc}") from exc
        log.info("pose_model_loaded", extra={"model_name": "blazepose_full", "threads": threads,
                 "sha256": [det_meta.sha256, lmk_meta.sha256]})  # fmt: skip
        return model

    def _run(self, session: ort.InferenceSession, x: np.ndarray) -> list[np.ndarray]:
        try:
            out: list[np.ndarray] = session.run(None, {INPUT_NAME: x})
        except Exception as exc:
            raise InferenceError(f"pose inference failed on {x.shape}: {exc}") from exc
        return out

    def find_people(self, frame: np.ndarray) -> list[Region]:
        """Regions of the people the detector finds (best first, at most `max_people`)."""
        h, w = frame.shape[:2]
        geom = input_geometry(w, h, _DET, _DET)
        x = letterbox(frame, geom).astype(np.float32) * (1.0 / 127.5) - 1.0
        raw, logits = self._run(self.detector, x)
        scores = _sigmoid(logits[0, :, 0])
        idx = np.flatnonzero(scores >= self.min_detection)
        if not len(idx):
            return []
        r = raw[0, idx] / _DET
        a = self._anchors[idx]
        cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
        boxes = np.stack(
            [cx - r[:, 2] / 2, cy - r[:, 3] / 2, cx + r[:, 2] / 2, cy + r[:, 3] / 2], 1
        )
        regions = []
        for k in _nms(boxes, scores[idx], 0.3, self.max_people):
            pts = r[k, 4:8].reshape(2, 2) + a[k]  # hip centre, scale point (input-normalised)
            px, py = geom.to_pixels(pts[:, 1], pts[:, 0])
            regions.append(Region.from_points(np.array([px[0], py[0]]), np.array([px[1], py[1]])))
        return regions

    def _landmarks(self, frame: np.ndarray, region: Region) -> tuple[F32, float]:
        """39 landmarks `[39,3]` (x, y source px, visibility score) and the pose flag."""
        raw, flag = self._run(self.landmarks, region.crop(frame))
        lm = raw.reshape(39, 5)
        x, y = region.to_source(lm[:, 0] / _CROP, lm[:, 1] / _CROP)
        out = np.stack([x, y, _sigmoid(lm[:, 3])], axis=1).astype(np.float32)
        return out, float(np.asarray(flag).reshape(-1)[0])

    def detect_timed(
        self, frames: Sequence[np.ndarray] | np.ndarray
    ) -> tuple[list[FramePoses], PoseTimings]:
        """`detect`, plus seconds per stage (detector and regions count as preprocessing)."""
        pre = inf = post = 0.0
        results: list[FramePoses] = []
        regions: list[Region] = []
        for frame in frames:
            t0 = time.perf_counter()
            check_frame(frame)
            h, w = frame.shape[:2]
            if not regions or not self.track:
                regions = self.find_people(frame)
            t1 = time.perf_counter()
            people = [self._landmarks(frame, r) for r in regions]
            t2 = time.perf_counter()
            kept = [(lm, flag) for lm, flag in people if flag >= self.min_flag]
            regions = [Region.from_points(lm[33, :2], lm[34, :2])
                       for lm, flag in people if flag >= self.track_flag]  # fmt: skip
            results.append(_to_poses(kept, w, h))
            t3 = time.perf_counter()
            pre, inf, post = pre + t1 - t0, inf + t2 - t1, post + t3 - t2
        return results, PoseTimings(pre, inf, post, len(results))

    def detect(self, frames: Sequence[np.ndarray] | np.ndarray) -> list[FramePoses]:
        """People per frame (pose flag >= `min_flag`), best first."""
        return self.detect_timed(frames)[0]


def _to_poses(people: list[tuple[F32, float]], w: int, h: int) -> FramePoses:
    if not people:
        return FramePoses.empty(w, h)
    people = sorted(people, key=lambda p: -p[1])
    kps = np.stack([lm[BLAZE_TO_COCO] for lm, _ in people])
    kps[..., 0] = np.clip(kps[..., 0], 0, w)
    kps[..., 1] = np.clip(kps[..., 1], 0, h)
    body = np.stack([lm[:33] for lm, _ in people])
    boxes = np.stack(
        [
            np.clip(body[..., 0].min(1), 0, w),
            np.clip(body[..., 1].min(1), 0, h),
            np.clip(body[..., 0].max(1), 0, w),
            np.clip(body[..., 1].max(1), 0, h),
        ],
        1,
    )
    scores = np.array([flag for _, flag in people], np.float32)
    return FramePoses(kps.astype(np.float32), boxes.astype(np.float32), scores, w, h)
