"""Camera-fleet simulator: N cameras publishing PRE-ENCODED frame windows at a target rate.

Inputs: a ``WindowPool`` built once (``build_pool``: synthetic daily-life scenes with staged
falls from ``models.synth.render_sequence``, cut into canonical 2 s / 16-frame windows with
``models.runtime.windows.cut_windows`` and encoded ONCE with ``streams.core.video.encode_window``), a
camera count, a stream-id prefix, and a ``WindowSink`` (``KafkaFleetSink``: aiokafka,
acks=all, idempotent, like the gateway's, with large batches; a list in unit tests).
Outputs: ``CameraFleet.run`` publishes ``frame_window`` v1 records keyed by stream id —
camera ``i`` replays scene ``i % scenes`` in order (so staged falls arrive as real
episodes of consecutive seqs), with fresh seqs (+1 per window, from ``start_seq``) and a
fresh capture time: ``capture_end_ns`` is the wall clock at publish (the gateway's
"publish timestamp"), ``capture_start_ns`` 2 s before. Returns ``FleetStats`` (every
published window, the schedule lag, timings). ``CameraFleet.plan`` gives the same
(stream, seq, window) order without publishing, for the in-process bare loop.

Guarantees: no video is encoded while publishing (only the small Avro envelope), so the
producer stays far ahead of any consumer; the i-th window overall is due at
``t0 + i / rate`` (round-robin over cameras; ``rate=None`` = as fast as possible); every
run is bounded by ``max_windows`` AND ``max_duration_s`` and stops early on ``stop``; the
sink is flushed before ``run`` returns. Failure modes: ``ValueError`` for impossible
parameters; the sink's own errors (``GatewayError``) propagate.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import schemas

if TYPE_CHECKING:
    from streams.core.settings import Settings

__all__ = [
    "CameraFleet",
    "EncodedWindow",
    "FleetStats",
    "KafkaFleetSink",
    "PlannedWindow",
    "PublishedWindow",
    "WindowPool",
    "WindowSink",
    "build_pool",
    "frame_record",
]

_NS = 1_000_000_000
T = TypeVar("T")


class WindowSink(Protocol):
    """Where records go (``streams.gateway.gateway.KafkaWindowSink`` satisfies it)."""

    def publish(self, key: bytes, value: bytes) -> None: ...

    def flush(self, timeout_s: float) -> None: ...


class KafkaFleetSink:
    """Producer for the fleet: aiokafka (C record batches and CRC32C) on its own event-loop
    thread, acks=all + idempotence like the gateway, batches of up to 1 MiB.

    Why not the gateway's kafka-python sink: without the optional ``crc32c`` package
    kafka-python computes CRC32C in pure Python (~5 MB/s here, ~5 ms of CPU per 25 KiB
    window), which would make the fleet compete with the pipeline for CPU.
    """

    def __init__(self, settings: Settings, topic: str, *, client_id: str) -> None:
        from aiokafka import AIOKafkaProducer

        from streams.kafka.security import aiokafka_security
        from streams.kafka.topics import max_message_bytes

        self._topic = topic
        self._deliveries: list[asyncio.Future[Any]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fleet-producer", daemon=True
        )
        self._thread.start()

        async def start() -> Any:
            producer = AIOKafkaProducer(
                bootstrap_servers=settings.kafka_bootstrap,
                client_id=client_id,
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                max_batch_size=1_048_576,
                max_request_size=max_message_bytes(settings),
                **aiokafka_security(settings),
            )
            await producer.start()
            return producer

        self._producer = self._call(start())

    def _call(self, coro: Coroutine[Any, Any, T], timeout_s: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def publish(self, key: bytes, value: bytes) -> None:
        async def send() -> None:
            self._deliveries.append(await self._producer.send(self._topic, value=value, key=key))

        self._call(send())

    def flush(self, timeout_s: float) -> None:
        async def flush() -> list[BaseException]:
            await self._producer.flush()
            done = await asyncio.gather(*self._deliveries, return_exceptions=True)
            self._deliveries.clear()
            return [r for r in done if isinstance(r, BaseException)]

        errors = self._call(flush(), timeout_s)
        if errors:
            raise RuntimeError(f"{len(errors)} windows not delivered: {errors[0]!r}")

    def close(self) -> None:
        try:
            self._call(self._producer.stop(), 30.0)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()


@dataclass(frozen=True, slots=True)
class EncodedWindow:
    """One canonical window, encoded once; ``truth`` is its ``window_label`` (1 = fall)."""

    payload: bytes
    width: int
    height: int
    frame_count: int
    fps: float
    codec: str
    window_s: float
    scene: int
    index: int
    truth: int


@dataclass(frozen=True)
class WindowPool:
    """Encoded windows per scene, in stream order."""

    scenes: tuple[tuple[EncodedWindow, ...], ...]
    build_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.scenes or any(not scene for scene in self.scenes):
            raise ValueError("a window pool needs at least one non-empty scene")

    def __len__(self) -> int:
        return sum(len(scene) for scene in self.scenes)

    @property
    def fall_windows(self) -> int:
        return sum(w.truth for scene in self.scenes for w in scene)

    @property
    def mean_payload_bytes(self) -> float:
        return sum(len(w.payload) for scene in self.scenes for w in scene) / len(self)


def build_pool(
    *,
    scenes: int = 2,
    scene_s: float = 30.0,
    falls_per_scene: int = 2,
    seed: int = 0,
    width: int = 160,
    height: int = 120,
    fps: float = 8.0,
    codec: str = "h264",
) -> WindowPool:
    """Render ``scenes`` synthetic scenes and encode every window once (CPU: ~2 s/scene)."""
    from models.runtime.windows import WINDOW_FPS, WINDOW_S, cut_windows, window_label
    from models.synth import render_sequence
    from streams.core.video import encode_window

    if scenes < 1 or scene_s < WINDOW_S:
        raise ValueError("need scenes >= 1 and scene_s >= one window")
    started = time.perf_counter()
    out: list[tuple[EncodedWindow, ...]] = []
    for k in range(scenes):
        frames, falls = render_sequence(
            seed + k,
            duration_s=scene_s,
            n_falls=falls_per_scene,
            preset="demo",
            width=width,
            height=height,
            fps=fps,
        )
        windows = []
        for index, (start_s, window) in enumerate(cut_windows(frames, fps, out_fps=WINDOW_FPS)):
            end_s = start_s + WINDOW_S
            truth = max(
                (window_label(start_s, end_s, f.start_s, f.end_s) for f in falls), default=0
            )
            windows.append(
                EncodedWindow(
                    payload=encode_window(window, WINDOW_FPS, codec),
                    width=int(window.shape[2]),
                    height=int(window.shape[1]),
                    frame_count=int(window.shape[0]),
                    fps=WINDOW_FPS,
                    codec=codec,
                    window_s=WINDOW_S,
                    scene=k,
                    index=index,
                    truth=int(truth),
                )
            )
        out.append(tuple(windows))
    return WindowPool(tuple(out), build_s=time.perf_counter() - started)


def frame_record(window: EncodedWindow, stream_id: str, seq: int, capture_end_ns: int) -> bytes:
    """The Avro ``frame_window`` v1 bytes of ``window`` as (stream_id, seq) captured now."""
    return schemas.encode(
        "frame_window",
        {
            "stream_id": stream_id,
            "window_seq": seq,
            "capture_start_ns": capture_end_ns - round(window.window_s * _NS),
            "capture_end_ns": capture_end_ns,
            "fps": window.fps,
            "width": window.width,
            "height": window.height,
            "frame_count": window.frame_count,
            "codec": window.codec,
            "payload": window.payload,
        },
    )


@dataclass(frozen=True, slots=True)
class PlannedWindow:
    stream_id: str
    seq: int
    window: EncodedWindow


@dataclass(frozen=True, slots=True)
class PublishedWindow:
    stream_id: str
    seq: int
    capture_end_ns: int
    truth: int


@dataclass
class FleetStats:
    """What one ``run`` published and how well it kept the schedule."""

    target_rate: float | None
    published: list[PublishedWindow] = field(default_factory=list)
    started_ns: int = 0
    last_publish_ns: int = 0
    flushed_ns: int = 0
    max_lag_s: float = 0.0

    @property
    def achieved_rate(self) -> float:
        span = (self.last_publish_ns - self.started_ns) / _NS
        return (len(self.published) - 1) / span if span > 0 and len(self.published) > 1 else 0.0


class CameraFleet:
    """Round-robin replay of a pool over ``cameras`` streams (see module docstring)."""

    def __init__(
        self, pool: WindowPool, *, cameras: int, stream_prefix: str, start_seq: int = 0
    ) -> None:
        if cameras < 1:
            raise ValueError("cameras must be >= 1")
        self.pool = pool
        self.cameras = cameras
        self.stream_ids = [f"{stream_prefix}-cam{i:03d}" for i in range(cameras)]
        self._next_seq = [start_seq] * cameras
        # Cameras sharing a scene start at different points so they do not fall in lock-step.
        self._cursor = [
            (i // len(pool.scenes)) * 7 % len(pool.scenes[i % len(pool.scenes)])
            for i in range(cameras)
        ]

    def _take(self, i: int) -> PlannedWindow:
        scene = self.pool.scenes[i % len(self.pool.scenes)]
        window = scene[self._cursor[i] % len(scene)]
        planned = PlannedWindow(self.stream_ids[i], self._next_seq[i], window)
        self._cursor[i] += 1
        self._next_seq[i] += 1
        return planned

    def _iterate(self) -> Iterator[PlannedWindow]:
        while True:
            for i in range(self.cameras):
                yield self._take(i)

    def plan(self, count: int) -> list[PlannedWindow]:
        """The next ``count`` windows in publish order (advances seqs like ``run`` would)."""
        it = self._iterate()
        return [next(it) for _ in range(count)]

    def run(
        self,
        sink: WindowSink,
        *,
        rate: float | None,
        max_windows: int,
        max_duration_s: float,
        stop: threading.Event | None = None,
        on_publish: Callable[[PublishedWindow], None] | None = None,
        flush_timeout_s: float = 30.0,
    ) -> FleetStats:
        """Publish up to ``max_windows`` windows for at most ``max_duration_s`` seconds."""
        if rate is not None and rate <= 0:
            raise ValueError("rate must be > 0 (or None for as fast as possible)")
        if max_windows < 0 or max_duration_s <= 0:
            raise ValueError("max_windows must be >= 0 and max_duration_s > 0")
        stats = FleetStats(target_rate=rate)
        t0 = time.monotonic()
        stats.started_ns = time.time_ns()
        it = self._iterate()
        for i in range(max_windows):
            if stop is not None and stop.is_set():
                break
            now = time.monotonic()
            if now - t0 > max_duration_s:
                break
            if rate is not None:
                due = t0 + i / rate
                if due > now:
                    time.sleep(due - now)
                else:
                    stats.max_lag_s = max(stats.max_lag_s, now - due)
            planned = next(it)
            capture_end_ns = time.time_ns()
            value = frame_record(planned.window, planned.stream_id, planned.seq, capture_end_ns)
            sink.publish(planned.stream_id.encode("utf-8"), value)
            published = PublishedWindow(
                planned.stream_id, planned.seq, capture_end_ns, planned.window.truth
            )
            stats.published.append(published)
            stats.last_publish_ns = capture_end_ns
            if on_publish is not None:
                on_publish(published)
        sink.flush(flush_timeout_s)
        stats.flushed_ns = time.time_ns()
        return stats
