"""Typed results of the pose stage: people per frame, tracks per window.

All coordinates are in source-image pixels (x right, y down, of the frame passed in,
before any resize); all scores are in [0, 1]. Arrays are float32 unless stated.
Keypoint order is `models.runtime.pose.metadata.COCO_KEYPOINTS` (17 COCO keypoints).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["F32", "FramePoses", "PoseTimings", "PoseTrack", "WindowTracks"]

F32 = NDArray[np.float32]


@dataclass(frozen=True)
class FramePoses:
    """The people the model found in one frame, best person score first.

    keypoints `[P,17,3]` (x, y, score), boxes `[P,4]` (x0, y0, x1, y1), scores `[P]`
    (the model's person score). P may be 0. `width`/`height` are the source frame's.
    """

    keypoints: F32
    boxes: F32
    scores: F32
    width: int
    height: int

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls, width: int, height: int, n_keypoints: int = 17) -> FramePoses:
        return cls(
            np.zeros((0, n_keypoints, 3), np.float32), np.zeros((0, 4), np.float32),
            np.zeros((0,), np.float32), width, height,
        )  # fmt: skip

    def above(self, min_score: float) -> FramePoses:
        """Only the people whose person score is at least `min_score`."""
        keep = self.scores >= min_score
        return FramePoses(self.keypoints[keep], self.boxes[keep], self.scores[keep],
                          self.width, self.height)  # fmt: skip

    def normalised_keypoints(self) -> F32:
        """keypoints with x / width and y / height (scores unchanged), `[P,17,3]`."""
        out = self.keypoints.copy()
        out[..., 0] /= self.width
        out[..., 1] /= self.height
        return out


@dataclass(frozen=True)
class PoseTimings:
    """Seconds spent per stage over one `detect` call, and how many frames it covered."""

    preprocess_s: float
    inference_s: float
    postprocess_s: float
    frames: int

    @property
    def ms_per_frame(self) -> float:
        total = self.preprocess_s + self.inference_s + self.postprocess_s
        return 1000.0 * total / max(1, self.frames)


@dataclass(frozen=True)
class PoseTrack:
    """One person followed through a window of T frames.

    keypoints `[T,17,3]`, boxes `[T,4]`, person_scores `[T]`: the matched detection per
    frame. `seen[t]` is True where a detection was matched at frame t. Where it is
    False the row is either zeros (before the track starts, after it ends) or, when
    `held[t]` is True, the last seen pose carried forward with its keypoint scores and
    person score set to 0: the person vanished near the floor and is kept (see
    `models.runtime.pose.tracker`). `track_id` is unique within the window.
    """

    track_id: int
    keypoints: F32
    boxes: F32
    person_scores: F32
    seen: NDArray[np.bool_]
    held: NDArray[np.bool_]

    @property
    def first(self) -> int:
        """Index of the first frame the person was seen."""
        return int(np.argmax(self.seen))

    @property
    def last(self) -> int:
        """Index of the last frame the person was seen."""
        return int(len(self.seen) - 1 - np.argmax(self.seen[::-1]))

    @property
    def present(self) -> NDArray[np.bool_]:
        """seen or held, `[T]` bool."""
        out: NDArray[np.bool_] = self.seen | self.held
        return out


@dataclass(frozen=True)
class WindowTracks:
    """Every track of one window (most frames seen first), with the window's frame size.

    `frames` is T; a window where nobody was found has no tracks.
    """

    tracks: tuple[PoseTrack, ...]
    frames: int
    width: int
    height: int

    def __len__(self) -> int:
        return len(self.tracks)
