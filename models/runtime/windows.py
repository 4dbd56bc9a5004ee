"""The canonical window: how a video stream is cut into model inputs and labelled.

Inputs: a clip as an RGB uint8 array ``[T, H, W, 3]`` at any frame rate.
Outputs: windows of ``WINDOW_FRAMES`` frames at ``WINDOW_FPS`` (2.0 s), cut every
``STRIDE_S`` (1.0 s), each paired with its start second; and the one labelling rule
(``window_label``) that the gateway's ground truth, training and evaluation share.

Guarantees: time is resampled by nearest source frame (no blending, so pixel values are
never invented); windows are read-only views or copies of the input, never modified in
place; a clip shorter than one window yields no windows. Failure modes: ``ValueError`` on
a malformed array or a non-positive rate.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "LABELS",
    "STRIDE_S",
    "WINDOW_FPS",
    "WINDOW_FRAMES",
    "WINDOW_S",
    "cut_windows",
    "resample_frames",
    "window_indices",
    "window_label",
]

WINDOW_FPS = 8.0
WINDOW_FRAMES = 16
WINDOW_S = 2.0
STRIDE_S = 1.0
LABELS = ("no_fall", "fall")

# Times are floats; a tolerance keeps e.g. 3 * (1/3 s) from rounding a frame away.
_EPS = 1e-6


def _check_frames(frames: NDArray[np.uint8], fps: float) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T,H,W,3], got shape {frames.shape}")
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")


def _source_index(n_src: int, fps: float, out_fps: float) -> NDArray[np.int64]:
    """For each output frame ``k`` (time ``k / out_fps``), the nearest source frame."""
    n_out = math.floor(n_src / fps * out_fps + _EPS)
    times = np.arange(n_out, dtype=np.float64) / out_fps
    return np.minimum(np.floor(times * fps + 0.5).astype(np.int64), n_src - 1)


def _window_spans(
    n_frames: int, window_s: float, stride_s: float, out_fps: float
) -> list[tuple[float, int, int]]:
    """``(start_s, first, stop)`` of each window in a clip of ``n_frames`` at ``out_fps``."""
    if window_s <= 0 or stride_s <= 0:
        raise ValueError("window_s and stride_s must be positive")
    n_win = round(window_s * out_fps)
    spans: list[tuple[float, int, int]] = []
    k = 0
    while True:
        first = math.floor(k * stride_s * out_fps + _EPS)
        if first + n_win > n_frames:
            return spans
        spans.append((k * stride_s, first, first + n_win))
        k += 1


def resample_frames(
    frames: NDArray[np.uint8], fps: float, out_fps: float = WINDOW_FPS
) -> NDArray[np.uint8]:
    """Resample a clip in time to ``out_fps`` by nearest source frame.

    Output frame k shows time ``k / out_fps``; the clip lasts ``T / fps`` seconds, so the
    output has ``floor(T / fps * out_fps)`` frames. When ``fps == out_fps`` the frames are
    returned unchanged (same object).
    """
    _check_frames(frames, fps)
    if not math.isfinite(out_fps) or out_fps <= 0:
        raise ValueError(f"out_fps must be positive, got {out_fps}")
    if abs(fps - out_fps) < _EPS:
        return frames
    out: NDArray[np.uint8] = frames[_source_index(frames.shape[0], fps, out_fps)]
    return out


def cut_windows(
    frames: NDArray[np.uint8],
    fps: float,
    *,
    window_s: float = WINDOW_S,
    stride_s: float = STRIDE_S,
    out_fps: float = WINDOW_FPS,
) -> list[tuple[float, NDArray[np.uint8]]]:
    """Cut a clip into overlapping windows.

    Returns ``[(start_s, window)]`` with ``window`` of shape
    ``[round(window_s * out_fps), H, W, 3]`` covering ``[start_s, start_s + window_s)``;
    starts are ``0, stride_s, 2 * stride_s, ...`` while the window fits in the clip.
    Windows are slices of the resampled clip (views when no resampling was needed).
    """
    resampled = resample_frames(frames, fps, out_fps)
    spans = _window_spans(resampled.shape[0], window_s, stride_s, out_fps)
    return [(start_s, resampled[first:stop]) for start_s, first, stop in spans]


def window_indices(
    n_frames: int,
    fps: float,
    *,
    window_s: float = WINDOW_S,
    stride_s: float = STRIDE_S,
    out_fps: float = WINDOW_FPS,
) -> list[tuple[float, NDArray[np.int64]]]:
    """Source-frame indices of each window ``cut_windows`` cuts from an ``n_frames`` clip.

    ``frames[idx]`` equals that window; used to cut per-frame values (for example the
    generator's posture track) exactly like the frames they describe.
    """
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if abs(fps - out_fps) < _EPS:
        src = np.arange(n_frames, dtype=np.int64)
    else:
        src = _source_index(n_frames, fps, out_fps)
    spans = _window_spans(src.shape[0], window_s, stride_s, out_fps)
    return [(start_s, src[first:stop]) for start_s, first, stop in spans]


def window_label(
    start_s: float,
    end_s: float,
    fall_start_s: float | None,
    fall_end_s: float | None,
) -> int:
    """1 when ``[start_s, end_s)`` overlaps at least half of the fall's descent, else 0.

    The descent is ``[fall_start_s, fall_end_s]`` (onset to impact). A clip without a fall
    (``fall_start_s is None``) gives 0. When only the onset is known the contract's default
    descent of 1.0 s is used. A zero-length descent counts when its instant lies inside the
    window.
    """
    if fall_start_s is None:
        return 0
    fall_end = fall_start_s + 1.0 if fall_end_s is None else fall_end_s
    if fall_end < fall_start_s:
        raise ValueError(f"fall_end_s {fall_end} before fall_start_s {fall_start_s}")
    descent = fall_end - fall_start_s
    if descent <= _EPS:
        return int(start_s - _EPS <= fall_start_s < end_s)
    overlap = min(end_s, fall_end) - max(start_s, fall_start_s)
    return int(overlap >= 0.5 * descent - _EPS)
