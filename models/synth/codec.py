"""H.264 encoding of synthetic clips (PyAV), in memory.

Inputs: RGB uint8 frames ``[T, H, W, 3]`` (even ``H`` and ``W``), a frame rate and a CRF
(higher = lower bitrate, more blocking and smearing). Outputs: the bytes of an MP4 file
(H.264, yuv420p); ``codec_round_trip`` returns the frames as a decoder sees them.

Guarantees: single-threaded x264, so the same frames and CRF give the same bytes; the
round trip decodes exactly what ``write_dataset`` stores on disk.
Failure modes: ``SynthCodecError`` (wrapping PyAV's error) when encoding fails.
"""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
from numpy.typing import NDArray

from models.runtime.clips import SWS_THREADS, read_clip
from models.runtime.errors import ModelsError

__all__ = ["SynthCodecError", "codec_round_trip", "encode_mp4"]


class SynthCodecError(ModelsError, RuntimeError):
    """Raised by ``encode_mp4`` when PyAV/x264 cannot encode; check the frame size is even."""


def encode_mp4(frames: NDArray[np.uint8], fps: float, crf: int) -> bytes:
    """Encode frames as an H.264 MP4 at constant quality ``crf``."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise SynthCodecError(f"frames must be non-empty [T,H,W,3], got {frames.shape}")
    buf = io.BytesIO()
    rate = Fraction(fps).limit_denominator(1000)
    try:
        with av.open(buf, mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.width = int(frames.shape[2])
            stream.height = int(frames.shape[1])
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(int(crf)), "preset": "veryfast", "threads": "1",
                              "tune": "zerolatency"}  # fmt: skip
            for img in frames:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                frame = frame.reformat(format="yuv420p", threads=SWS_THREADS)
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    except (av.FFmpegError, ValueError) as exc:
        raise SynthCodecError(f"H.264 encoding failed: {exc}") from exc
    return buf.getvalue()


def codec_round_trip(frames: NDArray[np.uint8], fps: float, crf: int) -> NDArray[np.uint8]:
    """Frames after an H.264 encode and decode (codec artefacts included)."""
    decoded, _ = read_clip(encode_mp4(frames, fps, crf))
    return decoded
