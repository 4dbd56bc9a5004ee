"""Hostile frame-window payloads from issue 19, made without holding the decoded frames.

- ``flat_h264(width, height, count)``: ``count`` flat frames encoded by libx264 with the
  gateway's options, one frame in memory at a time. 64 frames of 1920x1080 are ~7.5 kB
  and decode to 398 MB: the decompression bomb.
- ``write_payloads(folder)``: ``bomb.h264`` (64 x 1920x1080) and ``big.h264`` (2 x
  8192x8192, to be declared as 160x120) in ``folder``. Encoding an 8192x8192 frame needs
  ~100 MB, so tests run this in a child process (``python -m tests.hostile_windows DIR``)
  to keep the test process small; ``payloads(folder)`` does that once and reads them.
"""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

__all__ = ["BIG_SIDE", "BOMB_FRAMES", "BOMB_HEIGHT", "BOMB_WIDTH", "flat_h264", "payloads"]

BOMB_WIDTH, BOMB_HEIGHT, BOMB_FRAMES = 1920, 1080, 64
BIG_SIDE = 8192


def flat_h264(width: int, height: int, count: int, level: int = 128) -> bytes:
    """Annex-B H.264 of ``count`` flat grey frames (the gateway's encoder settings)."""
    ctx: Any = av.CodecContext.create("libx264", "w")
    ctx.pix_fmt = "yuv420p"
    ctx.width, ctx.height = width, height
    ctx.time_base = Fraction(1, 8)
    ctx.framerate = Fraction(8, 1)
    ctx.gop_size = count
    ctx.max_b_frames = 0
    ctx.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "threads": "1",
        "x264-params": f"keyint={count}:min-keyint={count}:scenecut=0:bframes=0",
    }
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane in frame.planes:
        plane.update(bytes([level]) * plane.buffer_size)
    out = bytearray()
    for index in range(count):
        frame.pts = index
        for packet in ctx.encode(frame):
            out += bytes(packet)
    for packet in ctx.encode(None):
        out += bytes(packet)
    return bytes(out)


def write_payloads(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bomb.h264").write_bytes(flat_h264(BOMB_WIDTH, BOMB_HEIGHT, BOMB_FRAMES))
    (folder / "big.h264").write_bytes(flat_h264(BIG_SIDE, BIG_SIDE, 2, level=90))


def payloads(folder: Path) -> tuple[bytes, bytes]:
    """(bomb, big): made by a child process into ``folder`` unless already there."""
    bomb, big = folder / "bomb.h264", folder / "big.h264"
    if not (bomb.exists() and big.exists()):
        subprocess.run(
            [sys.executable, "-m", "tests.hostile_windows", str(folder)], check=True, timeout=300
        )
    return bomb.read_bytes(), big.read_bytes()


if __name__ == "__main__":
    write_payloads(Path(sys.argv[1]))
