"""Window payload codec: `[T,H,W,3]` uint8 RGB frames <-> the `payload` bytes of a frame window.

Codecs (the `codec` field of `frame_window`):
- `h264`: raw Annex-B bytestream from libx264 (yuv420p, preset ultrafast, tune
  zerolatency, all frames in one GOP, no B-frames, one thread), so a decoder emits each
  frame as soon as its packet arrives. Width and height must be even. Lossy.
- `mjpeg`: concatenated baseline JPEG frames (PyAV's mjpeg codec, yuvj420p). Lossy.
- `raw-gray8`: `T*H*W` bytes of ITU-R BT.601 luma; decoded back to RGB by repeating the
  grey channel. Lossless in grey.

Guarantees of `decode_window` (it faces untrusted bytes):
- Declared width/height/frame count are checked against the caps (`max_frames`,
  `max_pixels`, and `max_decoded_bytes` for frame_count*width*height*3) BEFORE any
  decoding, so a hostile header cannot make it allocate or decode unbounded data (a 7.5 kB
  H.264 payload of 64 flat 1920x1080 frames is 398 MB decoded); decoding stops as soon as
  more frames than declared appear.
- Whatever the bitstream itself claims: FFmpeg's decoder gets `max_pixels` = the declared
  width*height, padded as FFmpeg pads its buffers (AVCodecContext.max_pixels), so it
  refuses a larger frame (say 8192x8192 in a window declared 160x120) before allocating
  its picture buffers.
- Every failure (garbage, truncation, wrong dimensions or count, unknown codec) raises
  `WindowDecodeError` (or its subclass `WindowDimensionsError` for impossible headers);
  no other exception type leaves the function.
- Output is a fresh C-contiguous `[frame_count, height, width, 3]` uint8 RGB array.

`encode_window` is used by the gateway and by tests; it raises `ValueError` for frames
that cannot be encoded (wrong dtype/shape, odd size for h264, unknown codec).
`snapshot_jpeg` is the one JPEG snapshot encoder (edge and cloud results of a fall): the
middle frame, quality then size lowered until it fits the cap; None when it cannot.
All are CPU-bound and synchronous: async callers run them in an executor.

Where: used by the edge (decode, snapshot), the cloud (decode, snapshot) and the gateway
(encode), so it lives in `streams.core`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from fractions import Fraction
from typing import Any, Final

import av
import numpy as np
import numpy.typing as npt

from models.runtime.clips import SWS_THREADS
from schemas.records import CODECS, MAX_DIMENSION
from streams.core.errors import MessageTooLargeError, WindowDecodeError, WindowDimensionsError

__all__ = [
    "CODECS",
    "MAX_DIMENSION",
    "WindowDecodeError",
    "WindowDimensionsError",
    "decode_window",
    "encode_window",
    "snapshot_jpeg",
]

logger = logging.getLogger(__name__)

_DEFAULT_MAX_FRAMES: Final[int] = 64
_DEFAULT_MAX_PIXELS: Final[int] = 1920 * 1080
_DEFAULT_MAX_DECODED_BYTES: Final[int] = 64 * 1024 * 1024
_MJPEG_QUALITY_QSCALE: Final[int] = 4  # ffmpeg -q:v scale (2 best .. 31 worst)
_LUMA_WEIGHTS: Final = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_JPEG_QUALITIES: Final[tuple[int, ...]] = (80, 65, 50, 35)

Frames = npt.NDArray[np.uint8]


def _check_frames(frames: Any, codec: str) -> Frames:
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; expected one of {CODECS}")
    array = np.asarray(frames)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[3] != 3:
        raise ValueError(f"frames must be uint8 [T,H,W,3], got {array.dtype} {array.shape}")
    count, height, width = array.shape[:3]
    if count < 1 or height < 1 or width < 1:
        raise ValueError(f"frames must be non-empty, got shape {array.shape}")
    if codec == "h264" and (height % 2 or width % 2):
        raise ValueError(f"h264 needs even width and height, got {width}x{height}")
    return np.ascontiguousarray(array)


def _frame_rate(fps: float) -> Fraction:
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def encode_window(frames: Frames, fps: float, codec: str = "h264") -> bytes:
    """Encode `frames` (uint8 RGB `[T,H,W,3]`) captured at `fps` into a window payload.

    Raises `ValueError` for unusable input (see module docstring).
    """
    array = _check_frames(frames, codec)
    if codec == "raw-gray8":
        grey = np.rint(array.astype(np.float32) @ _LUMA_WEIGHTS)
        return bytes(np.clip(grey, 0, 255).astype(np.uint8).tobytes())
    rate = _frame_rate(fps)
    count, height, width = array.shape[:3]
    if codec == "h264":
        ctx: Any = av.CodecContext.create("libx264", "w")
        ctx.pix_fmt = "yuv420p"
        ctx.gop_size = count
        ctx.max_b_frames = 0
        ctx.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "threads": "1",
            "x264-params": f"keyint={count}:min-keyint={count}:scenecut=0:bframes=0",
        }
    else:
        ctx = av.CodecContext.create("mjpeg", "w")
        ctx.pix_fmt = "yuvj420p"
        # Fixed quantiser (ffmpeg -q:v): global_quality is in lambda units (FF_QP2LAMBDA).
        ctx.qscale = True
        ctx.global_quality = _MJPEG_QUALITY_QSCALE * 118
    ctx.width = width
    ctx.height = height
    ctx.time_base = 1 / rate
    ctx.framerate = rate
    out = bytearray()
    for index, image in enumerate(array):
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(
            format=ctx.pix_fmt, threads=SWS_THREADS
        )
        frame.pts = index
        for packet in ctx.encode(frame):
            out += bytes(packet)
    for packet in ctx.encode(None):
        out += bytes(packet)
    return bytes(out)


def _check_header(
    payload: Any,
    codec: Any,
    width: Any,
    height: Any,
    frame_count: Any,
    max_frames: int,
    max_pixels: int,
    max_decoded_bytes: int,
) -> None:
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise WindowDecodeError(f"payload must be bytes, got {type(payload).__name__}")
    if codec not in CODECS:
        raise WindowDecodeError(f"unsupported codec {codec!r}")
    for name, value in (("width", width), ("height", height), ("frame_count", frame_count)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise WindowDimensionsError(f"{name} must be a positive integer, got {value!r}")
    if frame_count > max_frames:
        raise WindowDimensionsError(f"frame_count {frame_count} exceeds the cap {max_frames}")
    if width > MAX_DIMENSION or height > MAX_DIMENSION or width * height > max_pixels:
        raise WindowDimensionsError(f"{width}x{height} exceeds the cap of {max_pixels} pixels")
    decoded_bytes = frame_count * width * height * 3
    if decoded_bytes > max_decoded_bytes:
        raise MessageTooLargeError(
            f"{frame_count} frames of {width}x{height} decode to {decoded_bytes} bytes, "
            f"cap is {max_decoded_bytes} (max_window_decoded_bytes)"
        )
    if codec == "h264" and (width % 2 or height % 2):
        raise WindowDimensionsError(f"h264 window must have even dimensions, got {width}x{height}")
    if len(payload) == 0:
        raise WindowDecodeError("empty payload")


def decode_window(
    payload: bytes,
    codec: str,
    width: int,
    height: int,
    frame_count: int,
    *,
    max_frames: int = _DEFAULT_MAX_FRAMES,
    max_pixels: int = _DEFAULT_MAX_PIXELS,
    max_decoded_bytes: int = _DEFAULT_MAX_DECODED_BYTES,
) -> Frames:
    """Decode a window payload into uint8 RGB `[frame_count, height, width, 3]`.

    `max_frames`/`max_pixels`/`max_decoded_bytes` are the caps from settings
    (`max_window_frames`, `max_window_pixels`, `max_window_decoded_bytes`). Raises
    `WindowDimensionsError` for headers outside the frame/pixel caps, `MessageTooLargeError`
    above the decoded-bytes cap, and `WindowDecodeError` for anything else that is wrong.
    """
    _check_header(
        payload, codec, width, height, frame_count, max_frames, max_pixels, max_decoded_bytes
    )
    if codec == "raw-gray8":
        expected = frame_count * height * width
        if len(payload) != expected:
            raise WindowDecodeError(
                f"raw-gray8 payload has {len(payload)} bytes, expected {expected}"
            )
        grey = np.frombuffer(payload, dtype=np.uint8).reshape(frame_count, height, width, 1)
        return np.ascontiguousarray(np.repeat(grey, 3, axis=3))
    out = np.empty((frame_count, height, width, 3), dtype=np.uint8)
    decoded = 0
    try:
        for frame in _decoded_frames(bytes(payload), codec, _decoder_pixel_cap(width, height)):
            if decoded >= frame_count:
                raise WindowDecodeError(
                    f"payload holds more than the declared {frame_count} frames"
                )
            if frame.width != width or frame.height != height:
                raise WindowDecodeError(
                    f"frame {decoded} is {frame.width}x{frame.height}, declared {width}x{height}"
                )
            out[decoded] = frame.to_ndarray(format="rgb24", threads=SWS_THREADS)
            decoded += 1
    except WindowDecodeError:
        raise
    except Exception as exc:  # FFmpegError, ValueError, MemoryError...: all mean bad bytes
        raise WindowDecodeError(f"{codec} payload does not decode: {exc}") from exc
    if decoded != frame_count:
        raise WindowDecodeError(
            f"{codec} payload decoded to {decoded} frames, declared {frame_count}"
        )
    return out


def _decoder_pixel_cap(width: int, height: int) -> int:
    """AVCodecContext.max_pixels for a window declared `width` x `height`.

    FFmpeg checks the cap against its padded buffer size (width aligned to its stride
    alignment of up to 64, height to the 16/32-line macroblock rows), so the exact area would
    refuse honest frames; the padded area still refuses any larger picture. Measured with
    PyAV 18.1 for h264 and mjpeg from 2x2 to 1918x1078 (tests/unit/streams/core/test_video.py).
    """
    return (-(-width // 64) * 64) * (-(-height // 32) * 32)


def _decoded_frames(payload: bytes, codec: str, max_pixels: int) -> Iterator[av.VideoFrame]:
    """Yield frames as the decoder produces them (the caller stops early on excess).

    `max_pixels` goes to AVCodecContext.max_pixels: the decoder refuses a frame larger than
    that (an AVERROR at `ff_set_dimensions`/`ff_get_buffer`) before allocating it.
    """
    ctx: Any = av.CodecContext.create(codec, "r")
    ctx.thread_count = 1  # frame threading would delay output and fight the inference threads
    ctx.options = {"max_pixels": str(max_pixels)}
    packets = ctx.parse(payload)
    packets.extend(ctx.parse(None))
    for packet in packets:
        yield from ctx.decode(packet)
    yield from ctx.decode(None)


def snapshot_jpeg(frames: Frames, max_bytes: int) -> bytes | None:
    """JPEG of the middle frame, shrunk until it fits ``max_bytes`` (None if it cannot)."""
    if max_bytes <= 0 or frames.shape[0] == 0:
        return None
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(frames[frames.shape[0] // 2]), mode="RGB")
    for _ in range(4):
        for quality in _JPEG_QUALITIES:
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=quality, optimize=True)
            data = buffer.getvalue()
            if len(data) <= max_bytes:
                return data
        width, height = image.size
        if min(width, height) < 16:
            break
        image = image.resize((max(8, width * 2 // 3), max(8, height * 2 // 3)))
    return None
