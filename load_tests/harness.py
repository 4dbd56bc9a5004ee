"""The one run harness of the load tests: workers, a fleet of cameras, a collector, a drain.

Inputs: run-isolated ``Settings`` (``streams.devtools.workers.isolated_run``) and its run
id, a log folder, a ``sink_factory(settings, client_id)`` that opens the producer the fleet
publishes through (``KafkaFleetSink``, or the gateway's ``KafkaWindowSink``), optional extra
worker environment (a private stack's) and a ``PoolSpec`` (the synthetic scenes).
What it does, as a context manager (``with RunHarness(...) as run``):
- enter: ``preflight`` (models present), ``ensure_topics``, one ``WorkerProcess`` per role
  (``streams.devtools.workers``: the one worker harness) and an ``OutputCollector``;
- ``start``: starts the workers, builds the window pool meanwhile, waits until both are
  ready, starts the collector and opens the sink;
- ``publish_in_background``: a thread publishing ``total`` windows of ``CameraFleet`` at
  ``rate`` (``published`` counts them live; a sink failure is kept in ``publish_errors``);
- ``drain``: waits (bounded) until every published window has a result and the outputs
  have been quiet for ``quiet_s``, or a worker exited;
- exit (always): stops the workers (SIGTERM, exit codes in ``exit_codes``), closes the
  sink (a close error is logged, not raised), stops the collector and deletes the run's
  topics and Redis keys (unless ``keep``).
Outputs: ``tally()`` — published windows, results, lost windows, windows with repeated
results, results by ``decided_by`` (the counts both experiments report).
Failure modes: ``preflight``/``ensure_topics`` errors on enter (nothing started yet);
``WorkerStartError`` from ``start`` when a worker never gets ready (the exit still stops
and cleans up).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

from load_tests.collector import OutputCollector, SeenResult
from load_tests.fleet import CameraFleet, FleetStats, PublishedWindow, WindowPool, build_pool
from streams.core.settings import Settings
from streams.devtools.workers import WorkerProcess, cleanup_run

__all__ = ["ROLES", "ClosableSink", "PoolSpec", "RunHarness", "RunTally"]

log = logging.getLogger(__name__)

ROLES = ("edge", "cloud")


class ClosableSink(Protocol):
    def publish(self, key: bytes, value: bytes) -> None: ...

    def flush(self, timeout_s: float) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class PoolSpec:
    scenes: int = 3
    scene_s: float = 40.0
    falls_per_scene: int = 2
    seed: int = 7

    def build(self) -> WindowPool:
        return build_pool(
            scenes=self.scenes,
            scene_s=self.scene_s,
            falls_per_scene=self.falls_per_scene,
            seed=self.seed,
        )


@dataclass
class RunTally:
    """What a run produced, counted the way both experiments report it."""

    published: list[PublishedWindow]
    results: list[SeenResult]
    per_window: Counter[tuple[str, int]] = field(init=False)

    def __post_init__(self) -> None:
        self.per_window = Counter((r.stream_id, r.seq) for r in self.results)

    @property
    def lost(self) -> list[str]:
        return sorted(
            f"{w.stream_id}:{w.seq}"
            for w in self.published
            if (w.stream_id, w.seq) not in self.per_window
        )

    @property
    def repeated(self) -> int:
        return sum(1 for n in self.per_window.values() if n > 1)

    @property
    def decided_by(self) -> dict[str, int]:
        return dict(Counter(r.decided_by for r in self.results))


SinkFactory = Callable[[Settings, str], ClosableSink]


class RunHarness:
    """One load-test run on isolated topics (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        run_id: str,
        log_dir: Path,
        *,
        sink_factory: SinkFactory,
        extra_env: Mapping[str, str] | None = None,
        keep: bool = False,
    ) -> None:
        self.settings = settings
        self.run_id = run_id
        self.log_dir = log_dir
        self._sink_factory = sink_factory
        self._extra_env = extra_env
        self._keep = keep
        self.workers: dict[str, WorkerProcess] = {}
        self.collector = OutputCollector(settings)
        self.sink: ClosableSink | None = None
        self.stats: FleetStats | None = None
        self.published = 0
        self.publish_errors: list[BaseException] = []
        self.exit_codes: dict[str, int | None] = {}

    def __enter__(self) -> RunHarness:
        from streams.devtools.demo import preflight
        from streams.kafka.topics import ensure_topics

        preflight(self.settings)
        ensure_topics(self.settings)
        self.workers = {
            role: WorkerProcess.for_settings(
                role, self.settings, self.log_dir, extra_env=self._extra_env
            )
            for role in ROLES
        }
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for role, worker in self.workers.items():
            self.exit_codes[role] = worker.stop()
        if self.sink is not None:
            try:
                self.sink.close()
            except Exception as error:  # the run's result matters more than a close error
                log.warning("run_sink_close_failed", extra={"error": repr(error)})
        self.collector.stop()
        if not self._keep:
            cleanup_run(self.settings, self.run_id)

    def start(self, pool: PoolSpec, startup_timeout_s: float) -> WindowPool:
        """Start the workers (the pool is built while they start), wait until both are
        ready, start the collector and open the sink; returns the pool."""
        for worker in self.workers.values():
            worker.start()
        windows = pool.build()
        for worker in self.workers.values():
            worker.wait_ready(startup_timeout_s)
        self.collector.start()
        self.sink = self._sink_factory(self.settings, f"fallwatch-{self.run_id}")
        return windows

    def publish_in_background(
        self,
        fleet: CameraFleet,
        *,
        total: int,
        rate: float,
        max_duration_s: float,
        flush_timeout_s: float = 30.0,
        name: str = "fleet",
    ) -> threading.Thread:
        """Start a thread that publishes ``total`` windows (``self.stats`` when done)."""
        sink = self.sink
        if sink is None:
            raise RuntimeError("start() the run before publishing")

        def count(_: object) -> None:
            self.published += 1

        def publish() -> None:
            try:
                self.stats = fleet.run(
                    sink,
                    rate=rate,
                    max_windows=total,
                    max_duration_s=max_duration_s,
                    on_publish=count,
                    flush_timeout_s=flush_timeout_s,
                )
            except Exception as exc:  # the sink gave up: reported by the caller, not hidden
                self.publish_errors.append(exc)

        thread = threading.Thread(target=publish, name=name, daemon=True)
        thread.start()
        return thread

    def published_windows(self) -> list[PublishedWindow]:
        return [] if self.stats is None else list(self.stats.published)

    def drain(self, timeout_s: float, quiet_s: float) -> tuple[bool, float]:
        """Wait until every published window has a result and nothing arrived for
        ``quiet_s`` (True), or ``timeout_s`` passed or a worker exited (False); returns
        that and the seconds waited."""
        wanted = {(w.stream_id, w.seq) for w in self.published_windows()}
        started = time.monotonic()
        deadline = started + timeout_s
        drained = False
        while time.monotonic() < deadline:
            decided = {(r.stream_id, r.seq) for r in self.collector.results()}
            if wanted <= decided and self.collector.seconds_since_last_record() >= quiet_s:
                drained = True
                break
            if any(w.exited() is not None for w in self.workers.values()):
                break
            time.sleep(0.5)
        return drained, time.monotonic() - started

    def tally(self) -> RunTally:
        return RunTally(self.published_windows(), self.collector.results())
