"""Frames of any size → the pose model's input tensor, and model coordinates → pixels.

Inputs: RGB uint8 frames `[H, W, 3]` of any size. Outputs: a `uint8 [1, h, w, 3]`
tensor whose long side is about `long_side` pixels (aspect kept, PIL bilinear, which
antialiases when it shrinks), zero-padded at the bottom and right up to a multiple of
`multiple` (MultiPose accepts only multiples of 32), and the `InputGeometry` that maps
the model's normalised coordinates back to source pixels.
Guarantees: padding is only bottom/right, so a point's source position is its input
position divided by the per-axis resize scale; a 4:3 frame at long side 256 becomes
256x192 with no padding at all.
Failure modes: `WindowError` for anything but a non-empty uint8 `[H, W, 3]` array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from models.runtime.errors import WindowError

__all__ = ["InputGeometry", "check_frame", "input_geometry", "letterbox"]


@dataclass(frozen=True)
class InputGeometry:
    """Where a source frame of `width`x`height` sits inside the model input."""

    width: int  # source
    height: int
    resized_w: int  # content inside the input
    resized_h: int
    input_w: int  # input tensor (content + padding)
    input_h: int

    def to_pixels(self, y_norm: np.ndarray, x_norm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Model coordinates (normalised to the input tensor) → source pixels (x, y)."""
        x = x_norm * (self.input_w * self.width / self.resized_w)
        y = y_norm * (self.input_h * self.height / self.resized_h)
        return x.astype(np.float32), y.astype(np.float32)


def input_geometry(width: int, height: int, long_side: int, multiple: int = 32) -> InputGeometry:
    """The input layout for a `width`x`height` frame resized to `long_side`."""
    if width < 1 or height < 1 or long_side < 1 or multiple < 1:
        raise ValueError(f"bad sizes: frame {width}x{height}, long side {long_side}")
    scale = long_side / max(width, height)
    rw = max(1, round(width * scale))
    rh = max(1, round(height * scale))
    return InputGeometry(
        width, height, rw, rh,
        multiple * math.ceil(rw / multiple), multiple * math.ceil(rh / multiple),
    )  # fmt: skip


def check_frame(frame: np.ndarray) -> None:
    """WindowError unless `frame` is a non-empty uint8 `[H, W, 3]` array."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise WindowError(f"a frame must be a uint8 array, got {getattr(frame, 'dtype', frame)}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise WindowError(f"a frame must be [H, W, 3], got shape {frame.shape}")


def letterbox(frame: np.ndarray, geom: InputGeometry) -> np.ndarray:
    """`uint8 [1, input_h, input_w, 3]`: the frame resized into the top-left corner."""
    check_frame(frame)
    if frame.shape[:2] != (geom.height, geom.width):
        raise WindowError(f"frame {frame.shape[:2]} does not match geometry {geom}")
    out = np.zeros((1, geom.input_h, geom.input_w, 3), dtype=np.uint8)
    if (geom.resized_w, geom.resized_h) == (geom.width, geom.height):
        out[0, : geom.height, : geom.width] = frame
        return out
    img = Image.fromarray(np.ascontiguousarray(frame))
    small = img.resize((geom.resized_w, geom.resized_h), Image.Resampling.BILINEAR)
    out[0, : geom.resized_h, : geom.resized_w] = np.asarray(small)
    return out
