"""Static (render-time) augmentation in numpy, for model inputs that are too
expensive to augment on every training step (the cloud's 16 x 112 x 112 RGB).

Inputs: a canonical window uint8 `[T,H,W,3]` (geometric jitter) or a model input
uint8 `[C,T,H,W]` (photometric jitter) and a seeded `numpy.random.Generator`.
Outputs: arrays of the same dtype and shape. The same change is applied to all
frames of a window (a camera does not move between frames).
What it simulates: other camera placements (zoom 0.8-1.25x, shift), exposure and
white balance (gain, contrast, tint), night-mode grey, sensor noise, blur.
Deterministic for a generator state; never modifies its input.
"""

from __future__ import annotations

import numpy as np

__all__ = ["camera_jitter", "photometric_jitter"]


def camera_jitter(window: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random zoom (0.8x-1.25x) and shift of the whole window, same frame size out.

    Zoom-in stays mild so a person near the border is rarely cropped out of a
    window whose label says they fall.
    """
    _, h, w, _ = window.shape
    zoom = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
    if zoom >= 1.0:
        ch, cw = max(2, round(h / zoom)), max(2, round(w / zoom))
        y0 = int(rng.integers(0, h - ch + 1))
        x0 = int(rng.integers(0, w - cw + 1))
        # Preprocessing resizes whatever size it gets, so a crop is a zoom-in.
        return np.ascontiguousarray(window[:, y0 : y0 + ch, x0 : x0 + cw])
    ph, pw = round(h * (1 / zoom - 1) / 2), round(w * (1 / zoom - 1) / 2)
    top, left = int(rng.integers(0, 2 * ph + 1)), int(rng.integers(0, 2 * pw + 1))
    return np.pad(window, ((0, 0), (top, 2 * ph - top), (left, 2 * pw - left), (0, 0)), mode="edge")


def photometric_jitter(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gain/contrast/tint, grey (35 %), blur (30 %) and noise on uint8 `[C,T,H,W]`."""
    f = x.astype(np.float32) * np.float32(1 / 255)
    c = f.shape[0]
    if c == 3:
        f = f * rng.uniform(0.85, 1.15, size=(3, 1, 1, 1)).astype(np.float32)
        if rng.random() < 0.35:
            f = np.broadcast_to(f.mean(axis=0, keepdims=True), f.shape).copy()
    mean = f.mean()
    f = (mean + (f - mean) * np.float32(rng.uniform(0.65, 1.3))) * np.float32(
        np.exp(rng.uniform(-0.6, 0.35))
    )
    if rng.random() < 0.3:
        # 3-tap box blur along both image axes.
        f = (f + np.roll(f, 1, axis=2) + np.roll(f, -1, axis=2)) / 3
        f = (f + np.roll(f, 1, axis=3) + np.roll(f, -1, axis=3)) / 3
    sigma = rng.uniform(0.0, 0.05)
    if sigma > 0.005:
        f = f + rng.standard_normal(f.shape, dtype=np.float32) * np.float32(sigma)
    out: np.ndarray = (np.clip(f, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    return out
