"""Pose tracks → the classifier's per-track, per-frame features (numpy only).

Inputs: a `models.runtime.pose.results.WindowTracks` (tracks of one window, T frames, coordinates
in source pixels of a `width` x `height` frame).
Outputs: `window_features(tracks, max_tracks)` → float32 `[K, T, F]` with
`F = len(FEATURE_NAMES)`; row k is track k (most frames present first, at most
`max_tracks`), rows past the window's tracks are all zero (their `track_valid` column is
0, which the classifier reads as "no track here"). `batch_features` stacks windows.
Per frame and track (all zero on frames where the track is neither seen nor held):
- `track_valid` (1 on every frame of a real track), `seen`, `held`, `person_score`;
- the box in frame units: centre, width, height, bottom edge, log aspect (w / h);
- every keypoint relative to the box centre in units of the box's longer side, with its
  score (17 x 3);
- head, shoulder and hip height in frame units (score-weighted left/right means);
- the body axis (hip midpoint → shoulder midpoint): sin and cos of its angle from
  upright (upright: 0, 1; lying: ±1, 0) and its length in box units;
- velocities: frame-to-frame differences of box centre y, box height, bottom edge, hip
  and shoulder height and axis cos (0 where either frame is absent).
Guarantees: pure functions of the tracks; no NaN/inf for any input (degenerate boxes
are clamped to 1 px); left/right keypoint order is COCO's, so `mirror_tracks` (used
for training augmentation) gives the features of the mirrored window.
Failure modes: `ValueError` for `max_tracks < 1`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.runtime.pose.results import F32, PoseTrack, WindowTracks

__all__ = [
    "FEATURE_NAMES",
    "KEYPOINT_FEATURES",
    "batch_features",
    "mirror_tracks",
    "rescale_tracks",
    "track_features",
    "window_features",
]

_N_KP = 17
_NOSE, _L_SH, _R_SH, _L_HIP, _R_HIP = 0, 5, 6, 11, 12
# COCO pairs swapped by a horizontal mirror: eyes, ears, shoulders, ... ankles.
_MIRROR = np.array([0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15])

KEYPOINT_FEATURES: tuple[str, ...] = tuple(
    f"kp{k}_{c}" for k in range(_N_KP) for c in ("x", "y", "score")
)
_HEAD = (
    "track_valid", "seen", "held", "person_score",
    "box_cx", "box_cy", "box_w", "box_h", "box_bottom", "box_log_aspect",
)  # fmt: skip
_TAIL = (
    "head_y", "shoulder_y", "hip_y", "axis_sin", "axis_cos", "axis_len",
    "d_box_cy", "d_box_h", "d_box_bottom", "d_hip_y", "d_shoulder_y", "d_axis_cos",
)  # fmt: skip
FEATURE_NAMES: tuple[str, ...] = (*_HEAD, *KEYPOINT_FEATURES, *_TAIL)
_EPS = 1e-3


def _weighted_xy(kp: F32, idx: Sequence[int]) -> tuple[F32, F32]:
    """Score-weighted mean (x, y) of some keypoints per frame (plain mean if all score 0)."""
    pts = kp[:, list(idx)]  # [T,k,3]
    w = pts[..., 2] + _EPS
    x = (pts[..., 0] * w).sum(1) / w.sum(1)
    y = (pts[..., 1] * w).sum(1) / w.sum(1)
    return x.astype(np.float32), y.astype(np.float32)


def _diff(v: F32, present: np.ndarray) -> F32:
    out = np.zeros_like(v)
    both = present[1:] & present[:-1]
    out[1:] = np.where(both, v[1:] - v[:-1], 0.0)
    return out


def track_features(track: PoseTrack, width: int, height: int) -> F32:
    """One track → `[T, len(FEATURE_NAMES)]` float32 (see the module docstring)."""
    w, h = float(max(width, 1)), float(max(height, 1))
    present = track.present
    kp = track.keypoints.astype(np.float32)
    box = track.boxes.astype(np.float32)
    bw_px = np.maximum(box[:, 2] - box[:, 0], 1.0)
    bh_px = np.maximum(box[:, 3] - box[:, 1], 1.0)
    cx_px = 0.5 * (box[:, 0] + box[:, 2])
    cy_px = 0.5 * (box[:, 1] + box[:, 3])
    size = np.maximum(bw_px, bh_px)
    rel = np.empty((kp.shape[0], _N_KP, 3), np.float32)
    rel[..., 0] = (kp[..., 0] - cx_px[:, None]) / size[:, None]
    rel[..., 1] = (kp[..., 1] - cy_px[:, None]) / size[:, None]
    rel[..., 2] = kp[..., 2]
    _, head_y = _weighted_xy(kp, [_NOSE])
    sh_x, sh_y = _weighted_xy(kp, [_L_SH, _R_SH])
    hip_x, hip_y = _weighted_xy(kp, [_L_HIP, _R_HIP])
    ax, ay = sh_x - hip_x, sh_y - hip_y  # image y grows downwards: upright → ay < 0
    length = np.sqrt(ax * ax + ay * ay)
    safe = np.maximum(length, _EPS)
    axis_sin, axis_cos = ax / safe, -ay / safe
    axis_sin = np.where(length > _EPS, axis_sin, 0.0)
    axis_cos = np.where(length > _EPS, axis_cos, 0.0)
    cy, bh, bottom = cy_px / h, bh_px / h, box[:, 3] / h
    cols = [
        np.ones_like(cy), track.seen.astype(np.float32), track.held.astype(np.float32),
        track.person_scores.astype(np.float32),
        cx_px / w, cy, bw_px / w, bh, bottom, np.log(bw_px / bh_px),
    ]  # fmt: skip
    tail = [
        head_y / h, sh_y / h, hip_y / h, axis_sin, axis_cos, length / size,
        _diff(cy, present), _diff(bh, present), _diff(bottom, present),
        _diff(hip_y / h, present), _diff(sh_y / h, present), _diff(axis_cos, present),
    ]  # fmt: skip
    out = np.concatenate(
        [np.stack(cols, 1), rel.reshape(-1, _N_KP * 3), np.stack(tail, 1)], axis=1
    ).astype(np.float32)
    out[~present] = 0.0
    out[:, 0] = 1.0  # track_valid: on every frame of a real track, present or not
    out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
    return out


def window_features(tracks: WindowTracks, max_tracks: int) -> F32:
    """A window's tracks → `[max_tracks, T, F]`: most present frames first, zero padded."""
    if max_tracks < 1:
        raise ValueError(f"max_tracks must be >= 1, got {max_tracks}")
    out = np.zeros((max_tracks, tracks.frames, len(FEATURE_NAMES)), np.float32)
    order = sorted(tracks.tracks, key=lambda t: (-int(t.present.sum()), -int(t.seen.sum())))
    for k, track in enumerate(order[:max_tracks]):
        out[k] = track_features(track, tracks.width, tracks.height)
    return out


def batch_features(windows: Sequence[WindowTracks], max_tracks: int) -> F32:
    """`[N, max_tracks, T, F]` for N windows."""
    return np.stack([window_features(w, max_tracks) for w in windows])


def mirror_tracks(tracks: WindowTracks) -> WindowTracks:
    """The same window seen in a mirror: x → width - x, left and right keypoints swapped."""
    width = float(tracks.width)
    mirrored = []
    for t in tracks.tracks:
        kp = t.keypoints[:, _MIRROR].copy()
        kp[..., 0] = np.where(t.present[:, None], width - kp[..., 0], 0.0)
        box = t.boxes.copy()
        box[:, 0] = np.where(t.present, width - t.boxes[:, 2], 0.0)
        box[:, 2] = np.where(t.present, width - t.boxes[:, 0], 0.0)
        mirrored.append(PoseTrack(t.track_id, kp, box, t.person_scores, t.seen, t.held))
    return WindowTracks(tuple(mirrored), tracks.frames, tracks.width, tracks.height)


def rescale_tracks(tracks: WindowTracks, scale: float, dx: float, dy: float) -> WindowTracks:
    """The same window filmed from further or closer: every point moved to
    `(p - centre) * scale + centre + (dx, dy) * frame size`. Training augmentation for
    cameras the renders did not cover (other person sizes and places in the frame)."""
    cx, cy = 0.5 * tracks.width, 0.5 * tracks.height
    ox, oy = cx + dx * tracks.width, cy + dy * tracks.height
    out = []
    for t in tracks.tracks:
        kp = t.keypoints.copy()
        kp[..., 0] = np.where(t.present[:, None], (kp[..., 0] - cx) * scale + ox, 0.0)
        kp[..., 1] = np.where(t.present[:, None], (kp[..., 1] - cy) * scale + oy, 0.0)
        box = t.boxes.copy()
        box[:, 0::2] = np.where(t.present[:, None], (box[:, 0::2] - cx) * scale + ox, 0.0)
        box[:, 1::2] = np.where(t.present[:, None], (box[:, 1::2] - cy) * scale + oy, 0.0)
        out.append(PoseTrack(t.track_id, kp, box, t.person_scores, t.seen, t.held))
    return WindowTracks(tuple(out), tracks.frames, tracks.width, tracks.height)
