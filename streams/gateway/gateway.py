"""Reference camera gateway: video file / RTSP / synthetic scene → frame windows → Kafka.

Inputs: a video source read with PyAV (a file path, or an `rtsp://`/`http(s)://` URL read
live), or `--synthetic` (a `models.synth.render_sequence` scene with falls at random
moments); a stream id; fps, window and stride (defaults from the settings).
Outputs: `frame_window` records (schemas v1) on the frames topic, keyed by stream id,
one per stride: frames resampled to `fps` (nearest frame), resized to
`gateway_width x gateway_height`, cut with `models.runtime.windows.cut_windows` semantics from a
rolling buffer (`streams.gateway.live_windows`) and encoded by `streams.core.video.encode_window`.
Window seqs count up from `start_seq`. With `--synthetic --truth PATH` the staged falls
are written as JSON lines (`streams.gateway.live_windows.FallTruthRecorder` format).

Capture timestamps: `capture_end_ns` is the wall clock when the window's last frame was
available (`capture_start_ns = capture_end_ns - window`). Files and synthetic scenes are
paced in real time by default (stream time 0 = start); `paced=False` publishes as fast
as possible with "now" stamps. Live URLs are never paced (they arrive in real time).

Guarantees: the producer (kafka-python: the gateway is a plain blocking loop, no event
loop needed) is configured acks=all with idempotence explicitly, so a broker retry never
duplicates or reorders a camera's windows; a full producer buffer blocks the loop
(backpressure, never dropped windows); `run` flushes before returning; a stop request
(SIGTERM in the CLI) ends the run after the current window.
Broker outage (restart, pause, network): windows wait in the producer's bounded buffer
(`gateway_buffer_bytes`) and are retried in order for up to `gateway_hold_s`; the log says
`gateway_kafka_unreachable_holding` (every 5 s, with the count held) and
`gateway_kafka_delivery_resumed` when they flow again. Live capture keeps running meanwhile,
so a short outage loses no window.
Failure modes: `GatewayOptions` refuses (ValueError; the CLI exits 2) a stream id that
breaks the rule of `schemas.records` (1-128 characters of [A-Za-z0-9._:-]) or a start seq
outside [0, 2**53); `GatewayError` when the source cannot be opened/decoded, or Kafka refuses a
publish or does not acknowledge a window within `gateway_hold_s` (logged as
`gateway_window_delivery_failed` / `gateway_kafka_hold_expired`; surfaces on the next
publish or at flush, and the gateway exits non-zero); a window whose encoding exceeds
`max_window_bytes` is skipped and counted (`windows_oversize`).
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
from numpy.typing import NDArray

import schemas
from models.runtime.clips import SWS_THREADS
from schemas.records import MAX_SEQ, FrameWindow, RecordValueError, check_stream_id
from streams.core.errors import FallwatchError
from streams.core.settings import Settings
from streams.gateway.live_windows import (
    FallTruthRecorder,
    NearestFrameResampler,
    RollingWindower,
    StagedFallSpec,
    WindowPacer,
)

__all__ = [
    "GatewayError",
    "GatewayOptions",
    "GatewayStats",
    "KafkaWindowSink",
    "WindowSink",
    "build_frame_window",
    "is_live_source",
    "run_gateway",
    "synthetic_source",
    "video_source",
]

log = logging.getLogger(__name__)

Frame = NDArray[np.uint8]
FrameSource = Iterable[tuple[Frame, float]]
_NS = 1_000_000_000
_HOLD_LOG_AFTER_S = 2.0  # a window unacknowledged this long: the broker is unreachable
_HOLD_LOG_EVERY_S = 5.0
_LIVE_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


class GatewayError(FallwatchError):
    """Raised by the gateway when its video source cannot be opened or decoded, or Kafka
    rejects a window after the producer's retries. Operator: check the source URL/file and
    the broker; the gateway exits non-zero and can simply be restarted (seqs restart from
    `--start-seq`, so pass the next seq, or use a new stream id, to avoid collisions)."""


@dataclass(frozen=True)
class GatewayOptions:
    """What one gateway run does (CLI flags over settings defaults)."""

    stream_id: str
    fps: float
    window_s: float
    stride_s: float
    width: int
    height: int
    codec: str
    max_window_bytes: int
    source: str | None = None
    paced: bool = True
    loop: bool = False
    start_seq: int = 0
    synthetic: bool = False
    seed: int = 0
    duration_s: float = 60.0
    falls: int = 1
    truth_path: Path | None = None

    def __post_init__(self) -> None:
        # Refuse to start rather than publish windows every worker would dead-letter.
        try:
            check_stream_id(self.stream_id)
        except RecordValueError as exc:
            raise ValueError(str(exc)) from None
        if not 0 <= self.start_seq <= MAX_SEQ:
            raise ValueError(f"start_seq must be in [0, 2**53), got {self.start_seq}")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> GatewayOptions:
        """Defaults from the settings; `None` overrides are ignored."""
        base: dict[str, Any] = {
            "fps": settings.gateway_fps,
            "window_s": settings.gateway_window_s,
            "stride_s": settings.gateway_stride_s,
            "width": settings.gateway_width,
            "height": settings.gateway_height,
            "codec": settings.gateway_codec,
            "max_window_bytes": settings.max_window_bytes,
        }
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)


@dataclass
class GatewayStats:
    """What a run published (the demo reads `published` and `truth`)."""

    windows: int = 0
    bytes: int = 0
    windows_oversize: int = 0
    published: list[tuple[int, int]] = field(default_factory=list)  # (seq, capture_end_ns)
    truth: list[dict[str, Any]] = field(default_factory=list)


class WindowSink(Protocol):
    """Where encoded windows go (Kafka in production, a list in unit tests)."""

    def publish(self, key: bytes, value: bytes) -> None: ...

    def flush(self, timeout_s: float) -> None: ...

    def close(self) -> None: ...


def is_live_source(source: str) -> bool:
    """True for network URLs (read in real time, stamped on arrival, never paced)."""
    return source.lower().startswith(_LIVE_SCHEMES)


def _to_rgb(frame: Any, width: int, height: int) -> Frame:
    return np.asarray(
        frame.to_ndarray(format="rgb24", width=width, height=height, threads=SWS_THREADS)
    )


def resize_rgb(frame: Frame, width: int, height: int) -> Frame:
    """Resize one RGB uint8 frame with libswscale (PyAV); no-op when already that size."""
    if frame.shape[0] == height and frame.shape[1] == width:
        return frame
    import av

    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
    return _to_rgb(vf, width, height)


def video_source(
    source: str, width: int, height: int, *, loop: bool = False, open_timeout_s: float = 10.0
) -> Iterator[tuple[Frame, float]]:
    """Decode `source` with PyAV: `(rgb frame [H,W,3] resized, time in seconds)`.

    Files use presentation times (continuing across loops); live URLs use arrival time.
    """
    import av

    live = is_live_source(source)
    options = {"rtsp_transport": "tcp"} if source.lower().startswith("rtsp") else {}
    offset = 0.0
    while True:
        last_t = -1.0
        period = 0.0
        try:
            with av.open(source, options=options, timeout=open_timeout_s) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                rate = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
                period = 1.0 / rate
                for i, frame in enumerate(container.decode(stream)):
                    if live:
                        t = time.monotonic()
                    else:
                        t = offset + (frame.time if frame.time is not None else i * period)
                    if t <= last_t:  # broken timestamps: keep time strictly increasing
                        t = last_t + period
                    last_t = t
                    yield _to_rgb(frame, width, height), t
        except (av.error.FFmpegError, OSError) as exc:
            raise GatewayError(f"cannot read video source {source!r}: {exc}") from exc
        if not loop or live or last_t < 0:
            return
        offset = last_t + period


def synthetic_source(
    seed: int, duration_s: float, n_falls: int, width: int, height: int, fps: float = 8.0
) -> tuple[Frame, float, list[StagedFallSpec]]:
    """Render a demo scene: `(frames [T,H,W,3], fps, staged falls in clip time)`."""
    from models.synth import render_sequence

    frames, falls = render_sequence(
        seed,
        duration_s=duration_s,
        n_falls=n_falls,
        preset="demo",
        width=width,
        height=height,
        fps=fps,
    )
    specs = [StagedFallSpec(float(f.start_s), float(f.end_s)) for f in falls]
    return frames, fps, specs


def array_source(frames: Frame, fps: float, *, loop: bool = False) -> Iterator[tuple[Frame, float]]:
    """Frames of an in-memory clip with times `i / fps` (repeating when `loop`)."""
    offset = 0.0
    while True:
        for i, frame in enumerate(frames):
            yield frame, offset + i / fps
        if not loop:
            return
        offset += len(frames) / fps


def build_frame_window(
    options: GatewayOptions, seq: int, frames: Frame, capture_end_ns: int, payload: bytes
) -> FrameWindow:
    """The frame window for one encoded window (``RecordValueError`` if it breaks a rule)."""
    return FrameWindow(
        stream_id=options.stream_id,
        window_seq=seq,
        capture_start_ns=max(0, capture_end_ns - round(options.window_s * _NS)),
        capture_end_ns=capture_end_ns,
        fps=float(options.fps),
        width=int(frames.shape[2]),
        height=int(frames.shape[1]),
        frame_count=int(frames.shape[0]),
        codec=options.codec,
        payload=payload,
    )


def default_encoder(options: GatewayOptions) -> Callable[[Frame], bytes]:
    from streams.core.video import encode_window

    def encode(frames: Frame) -> bytes:
        return encode_window(frames, fps=options.fps, codec=options.codec)

    return encode


@dataclass
class _RunState:
    """The state of one `Gateway.run`: windower, pacer, stop flag, staged-fall truth."""

    options: GatewayOptions
    pacer: WindowPacer
    stop: threading.Event
    windower: RollingWindower
    truth: FallTruthRecorder
    falls: Sequence[StagedFallSpec]
    loop_period_s: float | None
    truth_out: IO[str] | None
    stats: GatewayStats = field(default_factory=GatewayStats)
    loops_added: int = 0

    def emit_truth(self, stream_time_s: float, final: bool = False) -> None:
        for doc in self.truth.completed(stream_time_s, final=final):
            self.stats.truth.append(doc)
            if self.truth_out is not None:
                self.truth_out.write(json.dumps(doc) + "\n")
                self.truth_out.flush()

    def stage_next_loops(self, window_end_s: float) -> None:
        """With a looping source, stage the next loop's falls before its windows arrive."""
        if not (self.loop_period_s and self.falls):
            return
        while (self.loops_added + 1) * self.loop_period_s <= window_end_s + self.options.window_s:
            self.loops_added += 1
            shift = self.loops_added * self.loop_period_s
            self.truth.add_falls(
                [StagedFallSpec(f.start_s + shift, f.end_s + shift) for f in self.falls]
            )


class Gateway:
    """Turns a frame source into published windows (pure orchestration; sink injected)."""

    def __init__(
        self,
        options: GatewayOptions,
        sink: WindowSink,
        *,
        encoder: Callable[[Frame], bytes] | None = None,
        pacer: WindowPacer | None = None,
        on_window: Callable[[int, int], None] | None = None,
    ) -> None:
        self.options = options
        self._sink = sink
        self._encode = encoder or default_encoder(options)
        self._pacer = pacer
        self._on_window = on_window

    def run(
        self,
        source: FrameSource,
        *,
        falls: Sequence[StagedFallSpec] = (),
        loop_period_s: float | None = None,
        live: bool = False,
        stop: threading.Event | None = None,
        truth_out: IO[str] | None = None,
        end_s: float | None = None,
    ) -> GatewayStats:
        """Publish windows until the source ends or `stop` is set; flush; return stats.

        `falls` are in clip time; with `loop_period_s` they repeat every loop. `end_s`
        (stream time at which a finite source ends) lets the last frames complete a
        window exactly as `cut_windows` would.
        """
        from models.runtime.windows import window_label

        opts = self.options
        resampler = NearestFrameResampler(opts.fps)
        state = _RunState(
            options=opts,
            pacer=self._pacer or WindowPacer(paced=opts.paced and not live),
            stop=stop or threading.Event(),
            windower=RollingWindower(fps=opts.fps, window_s=opts.window_s, stride_s=opts.stride_s),
            truth=FallTruthRecorder(opts.stream_id, falls, window_label, window_s=opts.window_s),
            falls=falls,
            loop_period_s=loop_period_s,
            truth_out=truth_out,
        )
        state.pacer.start()
        for frame, t in source:
            if state.stop.is_set():
                break
            for idx, grid_frame in resampler.push(frame, t):
                self._handle(state, idx, grid_frame)
        if not state.stop.is_set():
            for idx, grid_frame in resampler.finish(end_s):
                self._handle(state, idx, grid_frame)
        state.emit_truth(0.0, final=True)
        self._sink.flush(30.0)
        return state.stats

    def _handle(self, state: _RunState, idx: int, grid_frame: Frame) -> None:
        """One resampled frame: publish every window it completes (unless stopping)."""
        key = self.options.stream_id.encode("utf-8")
        for win in state.windower.push(idx, grid_frame):
            state.stage_next_loops(win.end_s)
            capture_end = state.pacer.capture_end_ns(win.end_s, state.stop.is_set)
            if state.stop.is_set():
                return
            seq = self.options.start_seq + win.k
            self._publish(seq, win.frames, capture_end, key, state.stats)
            state.truth.observe(seq, win.start_s, win.end_s, capture_end)
            state.emit_truth(win.end_s)

    def _publish(
        self, seq: int, frames: Frame, capture_end_ns: int, key: bytes, stats: GatewayStats
    ) -> None:
        payload = self._encode(frames)
        record = build_frame_window(self.options, seq, frames, capture_end_ns, payload)
        try:
            value = record.encode(max_bytes=self.options.max_window_bytes)
        except schemas.RecordTooLargeError:
            stats.windows_oversize += 1
            log.warning(
                "window_oversize",
                extra={"stream_id": self.options.stream_id, "seq": seq, "bytes": len(payload)},
            )
            return
        self._sink.publish(key, value)
        stats.windows += 1
        stats.bytes += len(value)
        stats.published.append((seq, capture_end_ns))
        if self._on_window is not None:
            self._on_window(seq, capture_end_ns)
        log.debug("window_published", extra={"stream_id": self.options.stream_id, "seq": seq})


class KafkaWindowSink:
    """kafka-python producer with acks=all + idempotence, one topic, holding windows through
    a short broker outage (see ``publish``); delivery errors kept for the next call."""

    def __init__(
        self,
        settings: Settings,
        topic: str,
        *,
        client_id: str = "fallwatch-gateway",
        hold_s: float | None = None,
    ) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        from streams.kafka.security import kafka_python_security
        from streams.kafka.topics import max_message_bytes

        self._topic = topic
        self._hold_s = settings.gateway_hold_s if hold_s is None else hold_s
        self._buffer_bytes = settings.gateway_buffer_bytes
        self._error: BaseException | None = None
        self._lock = threading.Condition()
        # ticket -> (monotonic send time, bytes), oldest first: what the broker has not
        # acknowledged yet. kafka-python 3 has no buffer limit of its own (no buffer_memory),
        # so the sink bounds it: `publish` waits for room up to the hold.
        self._pending: dict[int, tuple[float, int]] = {}
        self._pending_bytes = 0
        self._tickets = itertools.count()
        self._holding_since: float | None = None
        self._held_max = 0
        self._last_hold_log = 0.0
        hold_ms = round(self._hold_s * 1000)
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=settings.kafka_bootstrap,
                client_id=client_id,
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                max_request_size=max_message_bytes(settings),
                # The hold: a window is retried (in order, without duplicates: idempotence)
                # until acknowledged or hold_ms passed. Reconnects every second at most, so a
                # restarted broker is found again within a second of its return (the default
                # backs off up to 30 s).
                delivery_timeout_ms=hold_ms,
                max_block_ms=hold_ms,
                bootstrap_timeout_ms=hold_ms,  # started during an outage: wait, then exit
                request_timeout_ms=min(30_000, hold_ms // 2),
                reconnect_backoff_max_ms=1000,
                **kafka_python_security(settings),
            )
        except KafkaError as exc:
            raise GatewayError(f"cannot connect to Kafka at {settings.kafka_bootstrap}") from exc

    def _settle(self, ticket: int) -> None:
        """Forget one window (acknowledged or failed); caller holds the lock."""
        _, size = self._pending.pop(ticket, (0.0, 0))
        self._pending_bytes -= size
        self._lock.notify_all()

    def _acked(self, ticket: int, _metadata: object) -> None:
        with self._lock:
            self._settle(ticket)

    def _failed(self, ticket: int, exc: BaseException) -> None:
        with self._lock:
            self._settle(ticket)
            first = self._error is None
            if first:
                self._error = exc
        if first:
            log.error(
                "gateway_window_delivery_failed",
                extra={"error": repr(exc), "hold_s": self._hold_s, "topic": self._topic},
            )

    def _watch_outage(self) -> None:
        """Log when windows wait unacknowledged (broker unreachable) and when they flow again."""
        now = time.monotonic()
        with self._lock:
            waiting = len(self._pending)
            oldest = next(iter(self._pending.values()), (now, 0))[0]
        stalled = now - oldest >= _HOLD_LOG_AFTER_S
        if stalled:
            self._held_max = max(self._held_max, waiting)
            if self._holding_since is None or now - self._last_hold_log >= _HOLD_LOG_EVERY_S:
                self._holding_since = self._holding_since or oldest
                self._last_hold_log = now
                log.warning(
                    "gateway_kafka_unreachable_holding",
                    extra={
                        "topic": self._topic,
                        "held_windows": waiting,
                        "oldest_s": round(now - oldest, 1),
                        "hold_s": self._hold_s,
                        "buffer_bytes": self._buffer_bytes,
                    },
                )
        elif self._holding_since is not None:
            log.warning(
                "gateway_kafka_delivery_resumed",
                extra={
                    "topic": self._topic,
                    "held_s": round(now - self._holding_since, 1),
                    "held_windows_max": self._held_max,
                },
            )
            self._holding_since = None
            self._held_max = 0

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise GatewayError(
                f"a window was not delivered within the {self._hold_s:.0f} s hold "
                "(FALLWATCH_GATEWAY_HOLD_S); is the broker down?"
            ) from self._error

    def publish(self, key: bytes, value: bytes) -> None:
        """Queue one window; returns at once while the buffer has room.

        Through a broker outage windows wait in the producer's buffer and are retried in
        order; when the buffer is full this blocks (backpressure). A window not acknowledged
        within ``hold_s``, or no room within ``hold_s``, raises `GatewayError` (here or on
        the next call): the gateway exits rather than drop windows silently.
        """
        from kafka.errors import KafkaError, KafkaTimeoutError

        self._raise_if_failed()
        ticket = next(self._tickets)
        size = len(key) + len(value)
        with self._lock:
            has_room = self._lock.wait_for(
                lambda: not self._pending or self._pending_bytes + size <= self._buffer_bytes,
                timeout=self._hold_s,
            )
            if has_room:
                self._pending[ticket] = (time.monotonic(), size)
                self._pending_bytes += size
        if not has_room:
            self._watch_outage()
            log.error("gateway_kafka_hold_expired", extra={"hold_s": self._hold_s})
            raise GatewayError(
                f"no room for a window in the {self._buffer_bytes} byte buffer within the "
                f"{self._hold_s:.0f} s hold (FALLWATCH_GATEWAY_HOLD_S); is the broker down?"
            )
        try:
            future = self._producer.send(self._topic, key=key, value=value)
        except KafkaTimeoutError as exc:
            with self._lock:
                self._settle(ticket)
            log.error("gateway_kafka_hold_expired", extra={"hold_s": self._hold_s})
            raise GatewayError(
                f"Kafka metadata not available within the {self._hold_s:.0f} s hold "
                "(FALLWATCH_GATEWAY_HOLD_S); is the broker down?"
            ) from exc
        except KafkaError as exc:
            with self._lock:
                self._settle(ticket)
            raise GatewayError("cannot publish window") from exc
        future.add_callback(self._acked, ticket)
        future.add_errback(self._failed, ticket)
        self._watch_outage()

    def flush(self, timeout_s: float) -> None:
        """Wait until every queued window is acknowledged; an outage in progress gets the
        whole hold (``max(timeout_s, hold_s)``)."""
        from kafka.errors import KafkaError

        try:
            self._producer.flush(timeout=max(timeout_s, self._hold_s))
        except KafkaError as exc:
            raise GatewayError("flushing windows failed") from exc
        self._watch_outage()
        self._raise_if_failed()

    def close(self) -> None:
        self._producer.close(timeout=10)


def run_gateway(
    settings: Settings,
    options: GatewayOptions,
    *,
    stop: threading.Event | None = None,
    sink: WindowSink | None = None,
    on_window: Callable[[int, int], None] | None = None,
) -> GatewayStats:
    """Open the source, publish until it ends (or forever with `loop`/live) or `stop`."""
    own_sink = sink is None
    sink = sink or KafkaWindowSink(
        settings, settings.topic_frames, client_id=f"fallwatch-gateway-{options.stream_id}"
    )
    truth_file = options.truth_path.open("a", encoding="utf-8") if options.truth_path else None
    try:
        gateway = Gateway(options, sink, on_window=on_window)
        if options.synthetic:
            frames, fps, falls = synthetic_source(
                options.seed,
                options.duration_s,
                options.falls,
                options.width,
                options.height,
                options.fps,
            )
            period = len(frames) / fps if options.loop else None
            log.info(
                "gateway_synthetic_ready",
                extra={"stream_id": options.stream_id, "frames": len(frames), "falls": len(falls)},
            )
            return gateway.run(
                array_source(frames, fps, loop=options.loop),
                falls=falls,
                loop_period_s=period,
                stop=stop,
                truth_out=truth_file,
                end_s=None if options.loop else len(frames) / fps,
            )
        if not options.source:
            raise GatewayError("no --source given (or use --synthetic)")
        return gateway.run(
            video_source(options.source, options.width, options.height, loop=options.loop),
            live=is_live_source(options.source),
            stop=stop,
            truth_out=truth_file,
        )
    finally:
        if truth_file is not None:
            truth_file.close()
        if own_sink:
            sink.close()
