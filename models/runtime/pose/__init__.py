"""The pose stage of the cloud model: pretrained person/pose models under onnxruntime.

Public API (numpy, PIL, onnx and onnxruntime only; no TensorFlow, no TFLite runtime):
- ``MultiPoseModel.load(path, threads=1, long_side=None)``; ``.detect(frames)`` ->
  ``list[FramePoses]`` (people with 17 COCO keypoints, boxes, person scores, source pixels)
- ``BlazePoseModel.load(detector_path, landmark_path, threads=1)``: the same ``detect``
  contract, one person per region, crop tracking from frame to frame
- ``track_window(poses, config)`` -> ``WindowTracks`` (per-person ``[T,17,3]`` keypoints,
  ``[T,4]`` boxes, ``seen``/``held`` masks), ``TrackerConfig``
- ``zoo_pose_path(name)``: where ``make pose-models`` writes a model
- ``COCO_KEYPOINTS``, ``read_pose_metadata``; the build (``models.training.pose.convert``) and the
  render measurement (``models.evaluation.pose_measure``) are not imported here.

Importing this package does no work.
"""

from __future__ import annotations

from pathlib import Path

from models import ZOO_DIR
from models.runtime.pose.blazepose import BlazePoseModel
from models.runtime.pose.metadata import (
    COCO_KEYPOINTS,
    PoseInputSpec,
    PoseModelMeta,
    read_pose_metadata,
)
from models.runtime.pose.multipose import MultiPoseModel
from models.runtime.pose.results import FramePoses, PoseTimings, PoseTrack, WindowTracks
from models.runtime.pose.tracker import TrackerConfig, track_window

__all__ = [
    "COCO_KEYPOINTS",
    "DEFAULT_POSE_MODEL",
    "POSE_ZOO_DIR",
    "BlazePoseModel",
    "FramePoses",
    "MultiPoseModel",
    "PoseInputSpec",
    "PoseModelMeta",
    "PoseTimings",
    "PoseTrack",
    "TrackerConfig",
    "WindowTracks",
    "read_pose_metadata",
    "track_window",
    "zoo_pose_path",
]

POSE_ZOO_DIR = ZOO_DIR / "pose"
DEFAULT_POSE_MODEL = "movenet_multipose_lightning"


def zoo_pose_path(name: str = DEFAULT_POSE_MODEL, zoo_dir: Path | None = None) -> Path:
    """Path of the pose model `name` written by `make pose-models` (not checked to exist)."""
    return (zoo_dir if zoo_dir is not None else POSE_ZOO_DIR) / f"{name}.onnx"
