"""Hand-made pose inputs for the pose-cloud tests: tracks, frame poses and a fake pose ONNX.

- `standing_then_lying_track`: one person upright for the first half of a window, lying
  on the floor for the second (keypoints and box in pixels of a 320x240 frame).
- `standing_track`: a second person upright all window long.
- `fake_pose_model(path, person_score)`: an ONNX file that passes `MultiPoseModel.load`
  (role pose, kind movenet_multipose, sha256 stamped) and reports, for any frame, the
  same single upright person (its person score = `person_score`, so two files with
  different scores have different sha256s).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from models.runtime.pose.metadata import PoseInputSpec, PoseModelMeta, stamp_pose_metadata
from models.runtime.pose.results import FramePoses, PoseTrack, WindowTracks

W, H, T = 320, 240, 16


def _upright(cx: float, top: float, height: float) -> np.ndarray:
    """17 COCO keypoints of an upright person (x, y, score), head at `top`."""
    ys = top + height * np.array([0.05, 0.04, 0.04, 0.05, 0.05, 0.2, 0.2, 0.35, 0.35, 0.5,
                                  0.5, 0.52, 0.52, 0.75, 0.75, 0.97, 0.97])  # fmt: skip
    dx = height * np.array([0, -0.02, 0.02, -0.04, 0.04, -0.1, 0.1, -0.12, 0.12, -0.12, 0.12,
                            -0.06, 0.06, -0.06, 0.06, -0.06, 0.06])  # fmt: skip
    return np.stack([cx + dx, ys, np.full(17, 0.9)], axis=1).astype(np.float32)


def _lying(left: float, floor: float, length: float) -> np.ndarray:
    """The same person rotated to lie along the floor, head to the left."""
    up = _upright(0.0, 0.0, length)
    return np.stack([left + up[:, 1], floor - 0.1 * length + up[:, 0] * 0.5, up[:, 2]],
                    axis=1).astype(np.float32)  # fmt: skip


def _box(kp: np.ndarray) -> np.ndarray:
    return np.array([kp[:, 0].min(), kp[:, 1].min(), kp[:, 0].max(), kp[:, 1].max()],
                    np.float32)  # fmt: skip


def standing_then_lying_track(track_id: int = 0) -> PoseTrack:
    kps = [_upright(150.0, 40.0, 160.0) if t < T // 2 else _lying(80.0, 220.0, 160.0)
           for t in range(T)]  # fmt: skip
    kp = np.stack(kps)
    boxes = np.stack([_box(k) for k in kps])
    return PoseTrack(track_id, kp, boxes, np.full(T, 0.6, np.float32), np.ones(T, bool),
                     np.zeros(T, bool))  # fmt: skip


def standing_track(track_id: int = 1) -> PoseTrack:
    kp = np.stack([_upright(260.0, 30.0, 170.0) for _ in range(T)])
    boxes = np.stack([_box(k) for k in kp])
    return PoseTrack(track_id, kp, boxes, np.full(T, 0.8, np.float32), np.ones(T, bool),
                     np.zeros(T, bool))  # fmt: skip


def window(*tracks: PoseTrack) -> WindowTracks:
    return WindowTracks(tuple(tracks), T, W, H)


def frame_poses_of(tracks: WindowTracks) -> list[FramePoses]:
    """The per-frame detections a pose model would give for these tracks."""
    out = []
    for t in range(tracks.frames):
        rows = [tr for tr in tracks.tracks if tr.seen[t]]
        out.append(FramePoses(
            np.stack([r.keypoints[t] for r in rows]) if rows else np.zeros((0, 17, 3), np.float32),
            np.stack([r.boxes[t] for r in rows]) if rows else np.zeros((0, 4), np.float32),
            np.array([r.person_scores[t] for r in rows], np.float32), tracks.width, tracks.height,
        ))  # fmt: skip
    return out


def fake_pose_model(path: Path, person_score: float = 0.8) -> Path:
    """A MultiPose-shaped ONNX reporting one upright person in every frame."""
    raw = np.zeros((1, 6, 56), np.float32)
    kp = _upright(0.5, 0.15, 0.7)  # normalised: x, y in 0..1
    raw[0, 0, :51] = np.stack([kp[:, 1], kp[:, 0], kp[:, 2]], axis=1).reshape(-1)
    raw[0, 0, 51:55] = [0.12, 0.38, 0.88, 0.62]  # y0, x0, y1, x1
    raw[0, 0, 55] = person_score
    image = helper.make_tensor_value_info("image", TensorProto.UINT8, [1, "H", "W", 3])
    poses = helper.make_tensor_value_info("poses", TensorProto.FLOAT, [1, 6, 56])
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["z", "person"], ["poses"]),
    ]
    inits = [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
             helper.make_tensor("person", TensorProto.FLOAT, [1, 6, 56], raw.reshape(-1))]  # fmt: skip
    graph = helper.make_graph(nodes, "fake_multipose", [image], [poses], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    meta = PoseModelMeta(name="fake-multipose", kind="movenet_multipose", version="test",
                         input=PoseInputSpec(long_side=64))  # fmt: skip
    stamp_pose_metadata(model, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path
