"""Cutting a live frame stream into canonical windows: the gateway's pure logic.

Inputs: decoded RGB frames one at a time, each with its source time in seconds (the
stream's presentation time, or arrival time for live cameras).
Outputs: `CutWindow`s (`[T,H,W,3]` uint8, stream-time start, sequence number) cut with
the semantics of `models.runtime.windows.cut_windows` — nearest-frame resampling to `out_fps`,
windows of `round(window_s * out_fps)` frames starting every `stride_s` — but from a
rolling buffer, so a window is emitted as soon as its last frame is known and memory
stays bounded whatever the stream length. `WindowPacer` turns stream time into wall
clock (sleeping for file sources played in real time); `FallTruthRecorder` keeps the
ground truth of a synthetic camera (staged falls, the window seqs whose `window_label`
is fall, capture times) as JSON-ready dicts.

Guarantees: for a clip fed frame by frame with times `i / fps`, the windows equal
`cut_windows(clip, fps, ...)` (unit-tested); nothing here touches the network or sleeps
unless given a real clock. Failure modes: `ValueError` on non-positive rates/durations.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CutWindow",
    "FallTruthRecorder",
    "NearestFrameResampler",
    "RollingWindower",
    "StagedFallSpec",
    "WindowPacer",
]

Frame = NDArray[np.uint8]
_EPS = 1e-6
_NS = 1_000_000_000


class NearestFrameResampler:
    """Streaming nearest-frame resampling onto the grid `k / out_fps`, k = 0, 1, ...

    Stream time starts at the first frame's time. Grid point g takes the source frame
    whose time is nearest to g (ties go to the later frame, as `resample_frames` does);
    points after the last frame are emitted by `finish(end_s)` while the grid frame's
    whole period fits before `end_s` (the frame count rule of `resample_frames`). A grid
    point is emitted as soon as a source frame at or after it arrives, so at the very end
    of a finite file with fps > out_fps one more grid frame than `resample_frames` keeps
    may be emitted (it can complete at most one extra final window).
    """

    def __init__(self, out_fps: float) -> None:
        if not math.isfinite(out_fps) or out_fps <= 0:
            raise ValueError(f"out_fps must be positive, got {out_fps}")
        self._out_fps = out_fps
        self._next = 0  # next grid index to emit
        self._origin: float | None = None
        self._prev: tuple[float, Frame] | None = None

    def _grid_time(self, k: int) -> float:
        return k / self._out_fps

    def push(self, frame: Frame, source_s: float) -> list[tuple[int, Frame]]:
        """Add a frame; return the grid points `(index, frame)` now decided."""
        if self._origin is None:
            self._origin = source_s
        t = source_s - self._origin
        out: list[tuple[int, Frame]] = []
        while self._grid_time(self._next) <= t + _EPS:
            g = self._grid_time(self._next)
            if self._prev is None or (t - g) <= (g - self._prev[0]) + _EPS:
                chosen = frame
            else:
                chosen = self._prev[1]
            out.append((self._next, chosen))
            self._next += 1
        self._prev = (t, frame)
        return out

    def finish(self, end_s: float | None = None) -> list[tuple[int, Frame]]:
        """Emit the grid points whose period ends by `end_s` (stream time) from the last frame."""
        if self._prev is None or end_s is None:
            return []
        out: list[tuple[int, Frame]] = []
        while self._grid_time(self._next + 1) <= end_s + _EPS:
            out.append((self._next, self._prev[1]))
            self._next += 1
        return out


@dataclass(frozen=True)
class CutWindow:
    """One window: `frames [T,H,W,3]`, its index `k` in the stream and stream-time span."""

    k: int
    start_s: float
    end_s: float
    frames: Frame


class RollingWindower:
    """Groups grid frames (index, frame) into overlapping windows from a bounded buffer."""

    def __init__(self, *, fps: float, window_s: float, stride_s: float) -> None:
        if window_s <= 0 or stride_s <= 0 or fps <= 0:
            raise ValueError("fps, window_s and stride_s must be positive")
        self.fps = fps
        self.window_s = window_s
        self.stride_s = stride_s
        self.window_frames = round(window_s * fps)
        if self.window_frames < 1:
            raise ValueError("window_s * fps must give at least one frame")
        self._stride_frames = stride_s * fps
        self._k = 0
        self._buffer: deque[tuple[int, Frame]] = deque()

    def _first(self, k: int) -> int:
        return math.floor(k * self._stride_frames + _EPS)

    def push(self, index: int, frame: Frame) -> list[CutWindow]:
        """Add grid frame `index` (consecutive); return the windows it completes."""
        self._buffer.append((index, frame))
        out: list[CutWindow] = []
        while True:
            first = self._first(self._k)
            last = first + self.window_frames - 1
            while self._buffer and self._buffer[0][0] < first:
                self._buffer.popleft()
            if not self._buffer or self._buffer[-1][0] < last:
                break
            frames = np.stack([f for i, f in self._buffer if first <= i <= last])
            start = self._k * self.stride_s
            out.append(CutWindow(self._k, start, start + self.window_s, frames))
            self._k += 1
        return out


class WindowPacer:
    """Maps stream time to wall clock; optionally sleeps so a file plays in real time.

    `capture_end_ns(end_s)` is the wall-clock capture end of a window ending at stream
    time `end_s`: paced → `t0 + end_s` (after sleeping until then); unpaced → now.
    """

    def __init__(
        self,
        *,
        paced: bool,
        wall_ns: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.paced = paced
        self._wall_ns = wall_ns
        self._monotonic = monotonic
        self._sleep = sleep
        self._t0_wall_ns: int | None = None
        self._t0_mono: float | None = None

    def start(self) -> None:
        """Fix stream time 0 at the current wall clock."""
        self._t0_wall_ns = self._wall_ns()
        self._t0_mono = self._monotonic()

    def capture_end_ns(self, end_s: float, should_stop: Callable[[], bool] | None = None) -> int:
        if self._t0_wall_ns is None or self._t0_mono is None:
            self.start()
        assert self._t0_wall_ns is not None and self._t0_mono is not None
        if not self.paced:
            return self._wall_ns()
        # Sleep in short slices so a stop request is honoured promptly.
        while True:
            remaining = self._t0_mono + end_s - self._monotonic()
            if remaining <= 0 or (should_stop is not None and should_stop()):
                break
            self._sleep(min(remaining, 0.2))
        return self._t0_wall_ns + round(end_s * _NS)


@dataclass(frozen=True)
class StagedFallSpec:
    """A fall a synthetic camera will stage: descent `[start_s, end_s]` in stream time."""

    start_s: float
    end_s: float


@dataclass
class _FallRecord:
    spec: StagedFallSpec
    index: int
    window_seqs: list[int] = field(default_factory=list)
    first_window_capture_end_ns: int | None = None
    capture_start_ns: int | None = None
    capture_end_ns: int | None = None
    written: bool = False


class FallTruthRecorder:
    """Ground truth of one synthetic camera, filled in as windows are published.

    For each staged fall: the window seqs whose `window_label` is fall, the capture end of
    the first of them and the fall's interval mapped to capture time (through the first
    window containing the fall's onset). `completed()` returns the records whose windows are all past.
    """

    def __init__(
        self,
        stream_id: str,
        falls: Sequence[StagedFallSpec],
        label_fn: Callable[[float, float, float | None, float | None], int],
        *,
        window_s: float,
    ) -> None:
        self.stream_id = stream_id
        self._label = label_fn
        self._window_s = window_s
        self._falls = [_FallRecord(spec, i) for i, spec in enumerate(falls)]

    def add_falls(self, falls: Sequence[StagedFallSpec]) -> None:
        """Append falls (e.g. the next loop of a looping synthetic clip)."""
        base = len(self._falls)
        self._falls += [_FallRecord(spec, base + i) for i, spec in enumerate(falls)]

    def observe(self, seq: int, start_s: float, end_s: float, capture_end_ns: int) -> None:
        """Record a published window (stream-time span and its wall-clock capture end)."""

        def to_capture(t: float) -> int:
            return capture_end_ns - round((end_s - t) * _NS)

        for rec in self._falls:
            spec = rec.spec
            if self._label(start_s, end_s, spec.start_s, spec.end_s):
                rec.window_seqs.append(seq)
                if rec.first_window_capture_end_ns is None:
                    rec.first_window_capture_end_ns = capture_end_ns
            if rec.capture_start_ns is None and start_s <= spec.start_s < end_s:
                # Both ends from one window: unpaced sources stamp "now", so mapping each
                # end through a different window could even reverse the interval.
                rec.capture_start_ns = to_capture(spec.start_s)
                rec.capture_end_ns = rec.capture_start_ns + round((spec.end_s - spec.start_s) * _NS)

    def _as_json(self, rec: _FallRecord) -> dict[str, Any]:
        return {
            "stream_id": self.stream_id,
            "fall_index": rec.index,
            "start_s": rec.spec.start_s,
            "end_s": rec.spec.end_s,
            "capture_start_ns": rec.capture_start_ns,
            "capture_end_ns": rec.capture_end_ns,
            "window_seqs": list(rec.window_seqs),
            "first_window_capture_end_ns": rec.first_window_capture_end_ns,
        }

    def completed(self, stream_time_s: float, *, final: bool = False) -> list[dict[str, Any]]:
        """Records not returned before whose last window is past `stream_time_s` (or all)."""
        out = []
        for rec in self._falls:
            if rec.written:
                continue
            # No window starting after the descent ends can be labelled fall.
            if final or rec.spec.end_s + self._window_s <= stream_time_s:
                rec.written = True
                out.append(self._as_json(rec))
        return out

    def all_records(self) -> list[dict[str, Any]]:
        return [self._as_json(rec) for rec in self._falls]
