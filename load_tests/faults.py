"""Broker and Redis faults mid-stream, on a PRIVATE stack: lost windows, duplicated alerts.

Inputs: a running `streams.devtools.private_stack.PrivateStack` (its own broker and
redis-server, never the shared stack's), base ``Settings`` (models, thresholds), a fault
name (``FAULTS``) and ``FaultOptions`` (cameras, windows, rate, when and how long).
What it does: on run-unique topics, groups and Redis prefix of the private stack, starts
the real ``fallwatch edge`` and ``fallwatch cloud`` workers (``streams.devtools.workers``)
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
readiness each worker reported while the fault lasted; ``ok`` when nothing was lost, no
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from load_tests.chaos import AlertAudit, audit_alerts
from load_tests.collector import OutputCollector
from load_tests.fleet import CameraFleet, FleetStats, build_pool
from streams.core.settings import Settings
from streams.devtools.private_stack import PrivateStack
from streams.devtools.workers import (
    REPO_ROOT,
    WorkerProcess,
    cleanup_run,
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


def run_fault(
    stack: PrivateStack, base: Settings, fault: str, options: FaultOptions
) -> FaultReport:
    """Run one fault experiment (module docstring); always stops its workers."""
    from streams.devtools.demo import preflight
    from streams.gateway.gateway import KafkaWindowSink
    from streams.kafka.topics import ensure_topics

    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
    started = time.monotonic()
    run_id = new_run_id(fault.replace("-", ""))
    settings = isolated_run(stack.settings(base), run_id)
    log_dir = options.log_dir or REPO_ROOT / ".stack" / "chaos" / run_id
    report = FaultReport(fault=fault, run_id=run_id, log_dir=str(log_dir))
    preflight(settings)
    ensure_topics(settings)
    workers = {
        role: WorkerProcess.for_settings(role, settings, log_dir, extra_env=stack.env)
        for role in ("edge", "cloud")
    }
    collector = OutputCollector(settings)
    sink: KafkaWindowSink | None = None
    fleet_stats: list[FleetStats] = []
    try:
        for worker in workers.values():
            worker.start()
        pool = build_pool(
            scenes=options.scenes,
            scene_s=options.scene_s,
            falls_per_scene=options.falls_per_scene,
            seed=options.seed,
        )
        for worker in workers.values():
            worker.wait_ready(options.startup_timeout_s)
        report.pids_start = {role: w.pid for role, w in workers.items()}
        collector.start()
        sink = KafkaWindowSink(settings, settings.topic_frames, client_id=f"fallwatch-{run_id}")
        total = options.cameras * options.windows_per_camera
        fleet = CameraFleet(pool, cameras=options.cameras, stream_prefix=fault)
        published = [0]

        def count(_: object) -> None:
            published[0] += 1

        publish_errors: list[BaseException] = []

        def publish() -> None:
            assert sink is not None
            try:
                fleet_stats.append(
                    fleet.run(
                        sink,
                        rate=options.rate,
                        max_windows=total,
                        max_duration_s=total / options.rate + 120.0,
                        on_publish=count,
                        flush_timeout_s=120.0,
                    )
                )
            except Exception as exc:  # the gateway sink gave up: reported, not hidden
                publish_errors.append(exc)

        t0 = time.monotonic()
        thread = threading.Thread(target=publish, name="fault-fleet", daemon=True)
        thread.start()
        fault_thread: threading.Thread | None = None
        fault_errors: list[BaseException] = []

        def inject() -> None:
            report.fault_s.append(time.monotonic() - t0)
            try:
                _apply_fault(stack, fault, options)
            except BaseException as exc:  # reported, and the run still drains and cleans up
                fault_errors.append(exc)
            report.fault_s.append(time.monotonic() - t0)

        last_poll = {role: time.monotonic() for role in workers}
        report.not_ready_s = {role: 0.0 for role in workers}
        while thread.is_alive() or (fault_thread is not None and fault_thread.is_alive()):
            if fault_thread is None and published[0] >= int(total * options.fault_at):
                report.published_at_fault = published[0]
                fault_thread = threading.Thread(target=inject, name="fault", daemon=True)
                fault_thread.start()
            for role, worker in workers.items():
                now = time.monotonic()
                if not worker.ready():
                    report.not_ready_s[role] += now - last_poll[role]
                last_poll[role] = now
            time.sleep(0.5)
        thread.join()
        report.publish_s = time.monotonic() - t0
        if fault_errors or publish_errors:
            report.error = repr((fault_errors + publish_errors)[0])
        wanted = {(w.stream_id, w.seq) for w in fleet_stats[0].published} if fleet_stats else set()
        drain_started = time.monotonic()
        deadline = drain_started + options.drain_timeout_s
        while time.monotonic() < deadline:
            decided = {(r.stream_id, r.seq) for r in collector.results()}
            if wanted <= decided and collector.seconds_since_last_record() >= options.quiet_s:
                report.drained = True
                break
            if any(w.exited() is not None for w in workers.values()):
                break
            time.sleep(0.5)
        report.drain_s = time.monotonic() - drain_started
    except Exception as exc:
        report.error = report.error or repr(exc)
        log.exception("fault_run_failed", extra={"fault": fault})
    finally:
        report.pids_end = {role: w.pid for role, w in workers.items()}
        report.worker_starts = {role: w.starts for role, w in workers.items()}
        report.exited_during_run = {role: w.exited() for role, w in workers.items()}
        for role, worker in workers.items():
            report.worker_exit_codes[role] = worker.stop()
        if sink is not None:
            try:
                sink.close()
            except Exception as exc:  # the run's result matters more than a close error
                log.warning("fault_sink_close_failed", extra={"error": repr(exc)})
        collector.stop()
        cleanup_run(settings, run_id)
    stats = fleet_stats[0] if fleet_stats else FleetStats(target_rate=options.rate)
    results = collector.results()
    per_window = Counter((r.stream_id, r.seq) for r in results)
    report.published = len(stats.published)
    report.lost = sorted(
        f"{w.stream_id}:{w.seq}" for w in stats.published if (w.stream_id, w.seq) not in per_window
    )
    report.results = len(results)
    report.windows_with_repeated_results = sum(1 for n in per_window.values() if n > 1)
    kinds: dict[tuple[str, int], list[str]] = {}
    for r in results:
        if per_window[(r.stream_id, r.seq)] > 1:
            kinds.setdefault((r.stream_id, r.seq), []).append(r.decided_by)
    report.repeated_kinds = dict(Counter("+".join(sorted(k)) for k in kinds.values()))
    report.decided_by = dict(Counter(r.decided_by for r in results))
    report.staged_falls = _staged_falls(stats)
    report.dead_letters = collector.dead_letters()
    report.alerts = audit_alerts(collector.alerts(), settings.cooldown_windows)
    report.elapsed_s = time.monotonic() - started
    return report


def _staged_falls(stats: FleetStats) -> int:
    """Episodes of consecutive ground-truth fall windows over all streams."""
    episodes = 0
    last: dict[str, tuple[int, int]] = {}  # stream -> (seq, truth)
    for window in sorted(stats.published, key=lambda w: (w.stream_id, w.seq)):
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
