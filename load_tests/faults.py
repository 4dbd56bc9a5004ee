"""Broker and Redis faults mid-stream, on a PRIVATE stack: lost windows, duplicated alerts.

Inputs: a running `streams.devtools.private_stack.PrivateStack` (its own broker and
redis-server, never the shared stack's), base ``Settings`` (models, thresholds), a fault
name (``FAULTS``) and ``FaultOptions`` (cameras, windows, rate, when and how long).
What it does: through ``load_tests.harness.RunHarness`` (run-unique topics, groups and Redis
prefix of the private stack), starts the real ``fallwatch edge`` and ``fallwatch cloud``
workers (``streams.devtools.workers``)
and publishes a bounded stream of pre-encoded synthetic windows (daily life with staged
falls, ``load_tests.fleet``) through the gateway's own Kafka sink
(``streams.gateway.gateway.KafkaWindowSink``: its outage hold is part of what is tested).
After ``fault_at`` of the windows it applies the fault:

- ``kafka-restart``: SIGTERM the broker, wait until it exited, start it from the same data;
- ``kafka-pause``: SIGSTOP the broker for ``pause_s`` (20 s), then SIGCONT;
- ``redis-stop``: SIGTERM redis-server, ``redis_down_s`` (30 s) later start it again;
- ``redis-kill9``: SIGKILL redis-server and start it again at once (it replays its AOF).

Then it waits (bounded) until every published window has a result, stops the workers with
SIGTERM and reads what the run produced. No worker is restarted by this module.
Outputs: a `FaultReport` — windows published, lost (no result), windows with more than one
result, results by ``decided_by``, dead letters, the alert audit (``load_tests.chaos``
rules), each worker's pid at the start and at the end and whether it stayed up, the
readiness each worker reported while the fault lasted, each worker's Redis outage metrics
at the end (``fallwatch_redis_outages_total``, ``fallwatch_redis_outage_active``); ``ok`` when nothing was lost, no
alert was duplicated and no worker process was replaced or exited.
Failure modes: ``WorkerStartError`` when a worker never gets ready at the start;
``PrivateStackError`` when the stack cannot be restarted; the workers are stopped and the
run's topics and keys deleted in every case.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from load_tests.chaos import AlertAudit, audit_alerts
from load_tests.fleet import CameraFleet, PublishedWindow
from load_tests.harness import ClosableSink, PoolSpec, RunHarness, RunTally
from streams.core.settings import Settings
from streams.devtools.private_stack import PrivateStack
from streams.devtools.workers import (
    REPO_ROOT,
    isolated_run,
    new_run_id,
)

__all__ = ["FAULTS", "FaultOptions", "FaultReport", "format_fault_line", "run_fault"]

log = logging.getLogger(__name__)

FAULTS = ("kafka-restart", "kafka-pause", "redis-stop", "redis-kill9")


@dataclass(frozen=True)
class FaultOptions:
    cameras: int = 3
    windows_per_camera: int = 60
    rate: float = 4.0  # windows/s, all cameras together
    fault_at: float = 0.3  # share of the windows published when the fault starts
    pause_s: float = 20.0  # kafka-pause
    redis_down_s: float = 30.0  # redis-stop
    scenes: int = 3
    scene_s: float = 40.0
    falls_per_scene: int = 2
    seed: int = 7
    startup_timeout_s: float = 120.0
    drain_timeout_s: float = 150.0
    quiet_s: float = 5.0
    log_dir: Path | None = None


@dataclass
class FaultReport:
    fault: str
    run_id: str
    published: int = 0
    published_at_fault: int = 0
    lost: list[str] = field(default_factory=list)
    results: int = 0
    windows_with_repeated_results: int = 0
    repeated_kinds: dict[str, int] = field(default_factory=dict)  # "cloud+edge-fallback": n
    decided_by: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    alerts: AlertAudit = field(default_factory=AlertAudit)
    pids_start: dict[str, int | None] = field(default_factory=dict)
    pids_end: dict[str, int | None] = field(default_factory=dict)
    worker_starts: dict[str, int] = field(default_factory=dict)
    exited_during_run: dict[str, int | None] = field(default_factory=dict)
    not_ready_s: dict[str, float] = field(default_factory=dict)  # /readyz != 200 during run
    # Each worker's /metrics at the end of the run (None: not scraped): Redis outages it
    # rode out and whether one is still active.
    redis_outages: dict[str, float | None] = field(default_factory=dict)
    redis_outage_active: dict[str, float | None] = field(default_factory=dict)
    worker_exit_codes: dict[str, int | None] = field(default_factory=dict)
    fault_s: list[float] = field(default_factory=list)  # [start, end] since the first window
    publish_s: float = 0.0  # first window -> last window acknowledged (fleet flushed)
    staged_falls: int = 0  # runs of consecutive fall windows (ground truth) per stream
    drained: bool = False
    drain_s: float = 0.0
    elapsed_s: float = 0.0
    error: str = ""
    log_dir: str = ""

    @property
    def pids_unchanged(self) -> bool:
        return (
            bool(self.pids_start)
            and self.pids_start == self.pids_end
            and all(n == 1 for n in self.worker_starts.values())
            and all(code is None for code in self.exited_during_run.values())
        )

    @property
    def ok(self) -> bool:
        return (
            not self.error
            and self.published > 0
            and not self.lost
            and self.alerts.duplicated == 0
            and self.dead_letters == 0
            and self.pids_unchanged
        )

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.update(ok=self.ok, pids_unchanged=self.pids_unchanged)
        doc["alerts"]["duplicated"] = self.alerts.duplicated
        return doc


def _apply_fault(stack: PrivateStack, fault: str, options: FaultOptions) -> None:
    """Break the stack and repair it (blocking); no worker is touched."""
    if fault == "kafka-restart":
        stack.restart_kafka()
    elif fault == "kafka-pause":
        stack.pause_kafka()
        try:
            time.sleep(options.pause_s)
        finally:
            stack.resume_kafka()
    elif fault == "redis-stop":
        stack.stop_redis()
        try:
            time.sleep(options.redis_down_s)
        finally:
            stack.start_redis()
    elif fault == "redis-kill9":
        stack.kill9_redis()
        stack.start_redis()
    else:
        raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")


def _gateway_sink(settings: Settings, client_id: str) -> ClosableSink:
    from streams.gateway.gateway import KafkaWindowSink

    return KafkaWindowSink(settings, settings.topic_frames, client_id=client_id)


class _FaultInjector:
    """Applies the fault in its own thread once ``fault_at`` of the windows are out, and
    meanwhile adds up how long each worker's /readyz was not 200."""

    def __init__(
        self, run: RunHarness, stack: PrivateStack, fault: str, options: FaultOptions,
        report: FaultReport,
    ) -> None:  # fmt: skip
        self.run = run
        self.stack = stack
        self.fault = fault
        self.options = options
        self.report = report
        self.errors: list[BaseException] = []
        self.thread: threading.Thread | None = None
        self.t0 = time.monotonic()

    def _inject(self) -> None:
        self.report.fault_s.append(time.monotonic() - self.t0)
        try:
            _apply_fault(self.stack, self.fault, self.options)
        except BaseException as exc:  # reported, and the run still drains and cleans up
            self.errors.append(exc)
        self.report.fault_s.append(time.monotonic() - self.t0)

    def follow(self, publishing: threading.Thread, total: int) -> None:
        """Until publishing and the fault are both over."""
        last_poll = {role: time.monotonic() for role in self.run.workers}
        self.report.not_ready_s = {role: 0.0 for role in self.run.workers}
        while publishing.is_alive() or (self.thread is not None and self.thread.is_alive()):
            if self.thread is None and self.run.published >= int(total * self.options.fault_at):
                self.report.published_at_fault = self.run.published
                self.thread = threading.Thread(target=self._inject, name="fault", daemon=True)
                self.thread.start()
            for role, worker in self.run.workers.items():
                now = time.monotonic()
                if not worker.ready():
                    self.report.not_ready_s[role] += now - last_poll[role]
                last_poll[role] = now
            time.sleep(0.5)


def _fault_phase(
    run: RunHarness, stack: PrivateStack, fault: str, options: FaultOptions, report: FaultReport
) -> None:
    """Start the workers, publish through the gateway sink, break and repair the stack,
    drain."""
    pool = run.start(
        PoolSpec(options.scenes, options.scene_s, options.falls_per_scene, options.seed),
        options.startup_timeout_s,
    )
    report.pids_start = {role: w.pid for role, w in run.workers.items()}
    total = options.cameras * options.windows_per_camera
    fleet = CameraFleet(pool, cameras=options.cameras, stream_prefix=fault)
    injector = _FaultInjector(run, stack, fault, options, report)
    thread = run.publish_in_background(
        fleet,
        total=total,
        rate=options.rate,
        max_duration_s=total / options.rate + 120.0,
        flush_timeout_s=120.0,
        name="fault-fleet",
    )
    injector.follow(thread, total)
    thread.join()
    report.publish_s = time.monotonic() - injector.t0
    if injector.errors or run.publish_errors:
        report.error = repr((injector.errors + run.publish_errors)[0])
    report.drained, report.drain_s = run.drain(options.drain_timeout_s, options.quiet_s)


def _repeated_kinds(tally: RunTally) -> dict[str, int]:
    """For windows with more than one result: who decided them ("cloud+edge-fallback": n)."""
    kinds: dict[tuple[str, int], list[str]] = {}
    for r in tally.results:
        if tally.per_window[(r.stream_id, r.seq)] > 1:
            kinds.setdefault((r.stream_id, r.seq), []).append(r.decided_by)
    return dict(Counter("+".join(sorted(k)) for k in kinds.values()))


def _record_workers(run: RunHarness, report: FaultReport) -> None:
    """Pids, starts, exits and Redis outage metrics of the workers, before they stop."""
    report.pids_end = {role: w.pid for role, w in run.workers.items()}
    report.worker_starts = {role: w.starts for role, w in run.workers.items()}
    report.exited_during_run = {role: w.exited() for role, w in run.workers.items()}
    for role, worker in run.workers.items():
        samples = worker.metrics()
        labels = (("worker", role),)
        report.redis_outages[role] = samples.get(("fallwatch_redis_outages_total", labels))
        report.redis_outage_active[role] = samples.get(("fallwatch_redis_outage_active", labels))


def run_fault(
    stack: PrivateStack, base: Settings, fault: str, options: FaultOptions
) -> FaultReport:
    """Run one fault experiment (module docstring); always stops its workers."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
    started = time.monotonic()
    run_id = new_run_id(fault.replace("-", ""))
    settings = isolated_run(stack.settings(base), run_id)
    log_dir = options.log_dir or REPO_ROOT / ".stack" / "chaos" / run_id
    report = FaultReport(fault=fault, run_id=run_id, log_dir=str(log_dir))
    harness = RunHarness(settings, run_id, log_dir, sink_factory=_gateway_sink, extra_env=stack.env)
    with harness as run:
        try:
            _fault_phase(run, stack, fault, options, report)
        except Exception as exc:
            report.error = report.error or repr(exc)
            log.exception("fault_run_failed", extra={"fault": fault})
        finally:
            _record_workers(run, report)
    report.worker_exit_codes = dict(harness.exit_codes)
    tally = harness.tally()
    report.published = len(tally.published)
    report.lost = tally.lost
    report.results = len(tally.results)
    report.windows_with_repeated_results = tally.repeated
    report.repeated_kinds = _repeated_kinds(tally)
    report.decided_by = tally.decided_by
    report.staged_falls = _staged_falls(tally.published)
    report.dead_letters = harness.collector.dead_letters()
    report.alerts = audit_alerts(harness.collector.alerts(), settings.cooldown_windows)
    report.elapsed_s = time.monotonic() - started
    return report


def _staged_falls(published: Sequence[PublishedWindow]) -> int:
    """Episodes of consecutive ground-truth fall windows over all streams."""
    episodes = 0
    last: dict[str, tuple[int, int]] = {}  # stream -> (seq, truth)
    for window in sorted(published, key=lambda w: (w.stream_id, w.seq)):
        seq, truth = last.get(window.stream_id, (-2, 0))
        if window.truth and not (truth and window.seq == seq + 1):
            episodes += 1
        last[window.stream_id] = (window.seq, window.truth)
    return episodes


def format_fault_line(report: FaultReport) -> str:
    """One line per fault: windows sent, lost, duplicated alerts, the pids check."""
    exited = {role: code for role, code in report.exited_during_run.items() if code is not None}
    if report.pids_unchanged:
        pids = "unchanged"
    elif exited:
        pids = f"workers EXITED {exited}"
    else:
        pids = f"CHANGED {report.pids_start} -> {report.pids_end} (starts {report.worker_starts})"
    fault_span = (
        f"{report.fault_s[0]:.0f}-{report.fault_s[1]:.0f} s" if len(report.fault_s) == 2 else "?"
    )
    not_ready = ", ".join(f"{r} {s:.0f} s" for r, s in report.not_ready_s.items())
    line = (
        f"{report.fault:<13} sent {report.published}, LOST {len(report.lost)}, "
        f"DUPLICATED alerts {report.alerts.duplicated}, pids {pids}; "
        f"fault at window {report.published_at_fault} ({fault_span}), "
        f"repeated results {report.windows_with_repeated_results} {report.repeated_kinds}, "
        f"decided_by {report.decided_by}, dead letters {report.dead_letters}, "
        f"alerts {report.alerts.detected_events} detected / {report.alerts.resolved_events} "
        f"resolved ({report.staged_falls} staged falls), not ready {not_ready}, drained {report.drained} in {report.drain_s:.0f} s, "
        f"{report.elapsed_s:.0f} s; ok={report.ok}"
    )
    return line + (f"; error {report.error}" if report.error else "")
