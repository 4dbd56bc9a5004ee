"""Window → model tensor, driven only by a model's `fallwatch.input` spec.

Input: canonical windows, uint8 `[T,H,W,3]` RGB (T is normally 16 frames at 8 fps
covering 2.0 s; any T >= 1, any H, W >= 2 are accepted).
Steps, in order:
1. temporal resample to `spec.frames` frames evenly spread over the whole window
   (nearest frame, index floor((i + 0.5) * T / frames)); so an 8-frame edge model
   sees the full 2 s at 4 fps and `spec.fps` is informational (= frames / 2 s);
2. grey conversion (ITU-R 601-2 luma, PIL "L") when `spec.color == "gray"`;
3. resize to `spec.height` x `spec.width` with the spec's filter (`resample`:
   "box" = area average, antialiased; "nearest" = cheapest, used by the edge;
   "bilinear"), all PIL;
4. layout `[C,T,H,W]` and division by `spec.scale` (float32) in `to_model_input`.
Also `frame_stats`: cheap per-window statistics (brightness, contrast, motion
energy, where and when motion happens) computed in numpy from the edge model's
own input, for the switcher.
Failure modes: `WindowError` for a non-uint8, wrong-rank, wrong-channel or empty
window (poison input for the caller).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from models.runtime.errors import WindowError
from models.runtime.metadata import InputSpec

__all__ = [
    "STAT_NAMES",
    "check_window",
    "frame_stats",
    "temporal_indices",
    "to_model_input",
    "to_model_uint8",
]

# Order matters: it is the column order of `frame_stats` and of switcher features.
STAT_NAMES: tuple[str, ...] = (
    "brightness_mean",
    "contrast",
    "motion_mean",
    "motion_max",
    "motion_peak_time",
    "moving_fraction",
    "motion_centroid_dy",
)
_MOVING_LEVEL = 0.08  # |frame difference| (0..1 scale) counted as "moving"


def check_window(window: object) -> np.ndarray:
    """Return `window` as a uint8 `[T,H,W,3]` array or raise WindowError."""
    if not isinstance(window, np.ndarray):
        raise WindowError(f"window must be a numpy array, got {type(window).__name__}")
    if window.dtype != np.uint8:
        raise WindowError(f"window dtype must be uint8, got {window.dtype}")
    if window.ndim != 4 or window.shape[-1] != 3:
        raise WindowError(f"window must be [T,H,W,3], got shape {window.shape}")
    t, h, w, _ = window.shape
    if t < 1 or h < 2 or w < 2:
        raise WindowError(f"window too small: shape {window.shape}")
    return window


def temporal_indices(n_in: int, n_out: int) -> np.ndarray:
    """Nearest-frame indices spreading `n_out` samples evenly over `n_in` frames."""
    idx = np.floor((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.int64)
    return np.clip(idx, 0, n_in - 1)


_PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
}
_pil_cache_ready = False


def _ensure_pil_block_cache() -> None:
    """Let PIL reuse image memory blocks between calls.

    Without it every window allocates and page-faults fresh image memory, which
    on our VMs costs more than the resize itself. Done on first use, not import.
    """
    global _pil_cache_ready
    if not _pil_cache_ready:
        Image.core.set_blocks_max(256)  # type: ignore[attr-defined]  # PIL's C core is untyped
        _pil_cache_ready = True


def to_model_uint8(window: np.ndarray, spec: InputSpec) -> np.ndarray:
    """One window → uint8 `[C,T,H,W]` at the model's size (no scaling yet).

    Kept in uint8 so training sets of thousands of windows stay small in memory.
    The selected frames are resized as one tall image (frames stacked
    vertically): for "nearest" and "box" filters every output row draws only on
    rows of its own frame (no bleeding between frames; tested), close to per-frame
    resizing (PIL may round a filter window to a neighbouring row) at a fraction
    of the per-call overhead. "bilinear" would bleed across frames and is done per frame.
    """
    window = check_window(window)
    _ensure_pil_block_cache()
    t_out, h_out, w_out = spec.frames, spec.height, spec.width
    sel = np.ascontiguousarray(window[temporal_indices(window.shape[0], t_out)])
    _, h, w, _ = sel.shape
    filt = _PIL_FILTERS.get(spec.resample)
    if filt is None:
        raise WindowError(f"unknown resample filter {spec.resample!r}")
    gray = spec.channels == 1
    if spec.resample == "bilinear":
        frames = []
        for f in sel:
            img = Image.fromarray(f, mode="RGB")
            img = img.convert("L") if gray else img
            frames.append(np.asarray(img.resize((w_out, h_out), filt)))
        arr = np.stack(frames)
    else:
        img = Image.frombuffer("RGB", (w, h * t_out), sel, "raw", "RGB", 0, 1)
        if gray and spec.resample != "nearest":
            img = img.convert("L")  # area filters: fewer channels to average
        if (w, h) != (w_out, h_out):
            img = img.resize((w_out, h_out * t_out), filt)
        if gray and img.mode != "L":
            img = img.convert("L")  # nearest: convert the small image, cheaper
        arr = np.asarray(img).reshape((t_out, h_out, w_out) if gray else (t_out, h_out, w_out, 3))
    if gray:
        return arr[None]
    return np.ascontiguousarray(arr.transpose(3, 0, 1, 2))


def to_model_input(windows: Sequence[np.ndarray], spec: InputSpec) -> np.ndarray:
    """Windows → float32 `[N,C,T,H,W]` scaled by `1/spec.scale`, ready for the model."""
    if len(windows) == 0:
        raise WindowError("no windows given")
    batch = np.stack([to_model_uint8(w, spec) for w in windows])
    return scale_uint8(batch, spec)


def scale_uint8(batch: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 `[N,C,T,H,W]` → float32 divided by `spec.scale`."""
    return batch.astype(np.float32) * np.float32(1.0 / spec.scale)


def frame_stats(x: np.ndarray) -> np.ndarray:
    """Cheap statistics of model inputs `x` float32 `[N,C,T,H,W]` (0..1) → `[N, len(STAT_NAMES)]`.

    Colour is averaged to grey first. Motion is |difference of consecutive frames|;
    `motion_peak_time` is when the largest motion happens (0 = start, 1 = end);
    `motion_centroid_dy` is how far the motion's vertical centre moves down
    (positive = downward, in image heights) from the first to the second half of
    the window — a fall moves motion downwards.
    """
    if x.ndim != 5:
        raise WindowError(f"frame_stats expects [N,C,T,H,W], got {x.shape}")
    grey = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    if grey.shape[2] >= 32 and grey.shape[3] >= 32:
        # Statistics of a 2x-subsampled frame are as informative and 4x cheaper.
        grey = grey[:, :, ::2, ::2]
    n, t, h, _ = grey.shape
    out = np.zeros((n, len(STAT_NAMES)), dtype=np.float32)
    out[:, 0] = grey.mean(axis=(1, 2, 3))
    out[:, 1] = grey.std(axis=(1, 2, 3))
    if t < 2:
        return out
    diff = np.abs(np.diff(grey, axis=1))  # [N,T-1,H,W]
    energy = diff.mean(axis=(2, 3))  # [N,T-1]
    out[:, 2] = energy.mean(axis=1)
    out[:, 3] = energy.max(axis=1)
    out[:, 4] = energy.argmax(axis=1) / max(t - 2, 1)
    out[:, 5] = (diff > _MOVING_LEVEL).mean(axis=(1, 2, 3))
    if t <= 2:
        return out  # one difference has no first and second half: centroid shift 0
    rows = (np.arange(h, dtype=np.float32) + 0.5) / h
    row_mass = diff.sum(axis=3)  # [N,T-1,H]
    mass = row_mass.sum(axis=2) + 1e-6  # [N,T-1]
    centroid = (row_mass * rows).sum(axis=2) / mass  # [N,T-1]
    half = (t - 1) // 2
    first = (centroid[:, :half] * mass[:, :half]).sum(1) / mass[:, :half].sum(1)
    second = (centroid[:, half:] * mass[:, half:]).sum(1) / mass[:, half:].sum(1)
    out[:, 6] = second - first
    return out
