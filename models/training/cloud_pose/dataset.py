"""Labelled track features of a clip folder, from its pose cache (numpy only).

Inputs: a labelled clip folder (`models.runtime.clips.ClipFolder`) and its pose cache
(`models.training.cloud_pose.cache`, made by the same pose model and settings), a tracker
config and K. Output: a `TrackSet`: for every canonical window of every clip (16 frames
at 8 fps, stride 1 s: the windows `models.runtime.clips.iter_windows` cuts, the same frames)
the track features `[K, T, F]` exactly as `PoseCloudModel.preprocess` computes them on
those frames, optionally those of the mirrored window, and the window's label
(`models.runtime.windows.window_label`), clip id and clip label.
Failure modes: `TrainingError` when a clip's cache is missing or made otherwise (run
`python -m models.training.cloud_pose.cache` first), or the folder has no windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from models.runtime.clips import ClipFolder
from models.runtime.cloud_pose.features import mirror_tracks, rescale_tracks, window_features
from models.runtime.errors import TrainingError
from models.runtime.pose.tracker import TrackerConfig, track_window
from models.runtime.windows import WINDOW_FPS, WINDOW_S, window_indices, window_label
from models.training.cloud_pose.cache import PoseCacheKey, clip_cache_path, load_clip_poses

__all__ = ["TrackSet", "folder_tracks"]


@dataclass
class TrackSet:
    """Track features and labels of N windows."""

    x: NDArray[np.float32]  # [N,K,T,F]
    x_mirror: NDArray[np.float32] | None  # [N,K,T,F] of the mirrored windows
    y: NDArray[np.int64]  # [N] window labels
    clip: NDArray[np.int64]  # [N]
    clip_label: NDArray[np.int64]  # [N]
    start_s: NDArray[np.float64]  # [N]
    # [N,K,T,F]: the windows as if filmed from another distance, mirrored at random
    x_rescaled: NDArray[np.float32] | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, idx: NDArray[np.int64]) -> TrackSet:
        xm = None if self.x_mirror is None else self.x_mirror[idx]
        xr = None if self.x_rescaled is None else self.x_rescaled[idx]
        return TrackSet(self.x[idx], xm, self.y[idx], self.clip[idx], self.clip_label[idx],
                        self.start_s[idx], xr)  # fmt: skip


def folder_tracks(
    data: Path, cache_dir: Path, key: PoseCacheKey, tracker: TrackerConfig, max_tracks: int,
    *, mirror: bool = False, rescale: tuple[float, float] | None = None, seed: int = 0,
) -> TrackSet:  # fmt: skip
    """Every window of a labelled folder as track features (see the module docstring).

    With `rescale=(lo, hi)` each window also gets one copy as if filmed at a random
    scale in [lo, hi] (log-uniform) shifted by up to 15 % of the frame, mirrored with
    probability 1/2 (`x_rescaled`; seeded).
    """
    folder = ClipFolder(data)
    rng = np.random.default_rng(seed)
    xs: list[np.ndarray] = []
    xms: list[np.ndarray] = []
    xrs: list[np.ndarray] = []
    ys, clips, clip_labels, starts = [], [], [], []
    for index, rec in enumerate(folder):
        poses = load_clip_poses(clip_cache_path(cache_dir, rec.file), key)
        if poses is None:
            raise TrainingError(f"no pose cache for {rec.file} in {cache_dir} (made with "
                                f"{key}); run python -m models.training.cloud_pose.cache")  # fmt: skip
        for start_s, idx in window_indices(len(poses), WINDOW_FPS):
            tracks = track_window([poses[i] for i in idx], tracker)
            xs.append(window_features(tracks, max_tracks))
            if mirror:
                xms.append(window_features(mirror_tracks(tracks), max_tracks))
            if rescale is not None:
                scale = float(np.exp(rng.uniform(np.log(rescale[0]), np.log(rescale[1]))))
                dx, dy = rng.uniform(-0.15, 0.15, size=2)
                moved = rescale_tracks(tracks, scale, float(dx), float(dy))
                moved = mirror_tracks(moved) if rng.random() < 0.5 else moved
                xrs.append(window_features(moved, max_tracks))
            if rec.label == "no_fall" or rec.fall_start_s is None:
                label = 0
            else:
                label = window_label(start_s, start_s + WINDOW_S, rec.fall_start_s,
                                     rec.fall_end_s)  # fmt: skip
            ys.append(label)
            clips.append(index)
            clip_labels.append(int(rec.label == "fall"))
            starts.append(start_s)
    if not xs:
        raise TrainingError(f"{data}: no windows")
    return TrackSet(
        np.stack(xs), np.stack(xms) if mirror else None, np.array(ys, np.int64),
        np.array(clips, np.int64), np.array(clip_labels, np.int64), np.array(starts),
        np.stack(xrs) if rescale is not None else None,
    )  # fmt: skip
