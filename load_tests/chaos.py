"""Kill -9 experiment: ``python -m load_tests.chaos [--cycles N] [--cameras N] ...``.

Inputs: the local stack and ``Settings`` (models, thresholds); ``ChaosOptions`` (cameras,
windows per camera, aggregate rate, kill cycles, restart delay, time bounds).
What it does: on run-unique topics, groups and Redis prefix, starts ``fallwatch edge`` and
``fallwatch cloud`` subprocesses, publishes a bounded stream of pre-encoded synthetic windows
(daily life with staged falls, ``load_tests.fleet``) and, in each cycle, SIGKILLs the cloud
worker (at 25 % of the cycle's windows) and the edge worker (at 60 %) mid-stream and
restarts each after ``restart_delay_s``. Then it waits (bounded) until every published
window has a result, lets the alerts settle, stops the workers with SIGTERM and reads
everything the run produced.
Outputs: a ``ChaosReport`` — lost windows (published, never a result), windows with repeated
results (replays: allowed), the alert audit (``audit_alerts``), dead letters, recovery
times, worker exit codes; ``ok`` is true when nothing was lost and no alert was duplicated.

Alert audit rules (streams.events.tracker): a CloudEvents id may be delivered more than once only
as a byte-identical republish; each (stream, event) episode has exactly one "detected" id;
per stream, a later detected event starts only after the earlier one resolved and its
cooldown (``last_window_seq + cooldown_windows``) passed — otherwise two alerts were raised
for one episode. Failure modes: ``WorkerStartError`` when a (re)started worker never gets
ready; the workers are stopped and the run's data deleted in every case (unless ``keep``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from load_tests.collector import OutputCollector, SeenAlert
from load_tests.fleet import CameraFleet, FleetStats, KafkaFleetSink, build_pool
from load_tests.measure import load_average
from streams.core.settings import Settings
from streams.devtools.workers import (
    REPO_ROOT,
    WorkerProcess,
    cleanup_run,
    isolated_run,
    new_run_id,
)

__all__ = [
    "AlertAudit",
    "ChaosOptions",
    "ChaosReport",
    "audit_alerts",
    "format_chaos",
    "main",
    "run_chaos",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChaosOptions:
    cameras: int = 3
    windows_per_camera: int = 40
    rate: float = 4.0  # windows/s, all cameras together
    cycles: int = 1
    restart_delay_s: float = 2.0
    scenes: int = 3
    scene_s: float = 40.0
    falls_per_scene: int = 2
    seed: int = 7
    startup_timeout_s: float = 120.0
    drain_timeout_s: float = 120.0
    quiet_s: float = 5.0
    log_dir: Path | None = None
    keep: bool = False


@dataclass
class AlertAudit:
    records: int = 0
    distinct_ids: int = 0
    republished: int = 0  # byte-identical copies beyond the first (allowed)
    conflicting_ids: list[str] = field(default_factory=list)  # same id, different bytes
    detected_events: int = 0
    resolved_events: int = 0
    multi_id_episodes: list[str] = field(default_factory=list)  # >1 detected id per event
    overlapping_episodes: list[str] = field(default_factory=list)  # 2 events, 1 episode

    @property
    def duplicated(self) -> int:
        """Alerts that are NOT idempotent republishes: what must be 0."""
        return (
            len(self.conflicting_ids) + len(self.multi_id_episodes) + len(self.overlapping_episodes)
        )


def audit_alerts(alerts: list[SeenAlert], cooldown_windows: int) -> AlertAudit:
    """Check the alerts of a run against the one-alert-per-fall rules (module docstring)."""
    audit = AlertAudit(records=len(alerts))
    by_id: dict[str, list[SeenAlert]] = defaultdict(list)
    for alert in alerts:
        by_id[alert.id].append(alert)
    audit.distinct_ids = len(by_id)
    for alert_id, copies in by_id.items():
        audit.republished += len(copies) - 1
        if len({c.raw for c in copies}) > 1:
            audit.conflicting_ids.append(alert_id)
    unique = [copies[0] for copies in by_id.values()]
    detected_ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    resolved: dict[tuple[str, str], SeenAlert] = {}
    for alert in unique:
        key = (alert.stream_id, alert.event_id)
        if alert.state == "detected":
            detected_ids[key].add(alert.id)
        elif alert.state == "resolved":
            resolved[key] = alert
    audit.detected_events = len(detected_ids)
    audit.resolved_events = len(resolved)
    audit.multi_id_episodes = [f"{s}/{e}" for (s, e), ids in detected_ids.items() if len(ids) > 1]
    firsts: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for alert in unique:
        if alert.state == "detected":
            firsts[alert.stream_id].append((alert.first_window_seq, alert.event_id))
    for stream_id, events in firsts.items():
        events.sort()
        for (_, earlier), (later_first, later) in itertools.pairwise(events):
            done = resolved.get((stream_id, earlier))
            if done is None or later_first <= done.last_window_seq + cooldown_windows:
                audit.overlapping_episodes.append(f"{stream_id}: {earlier} / {later}")
    return audit


@dataclass
class KillEvent:
    role: str
    cycle: int
    published_at_kill: int
    killed_s: float
    restarted_s: float | None = None
    ready_s: float | None = None
    resumed_s: float | None = None  # first output of the restarted worker (its partitions back)


@dataclass
class ChaosReport:
    run_id: str
    published: int = 0
    lost: list[str] = field(default_factory=list)
    results: int = 0
    decided_by: dict[str, int] = field(default_factory=dict)
    windows_with_repeated_results: int = 0
    dead_letters: int = 0
    undecodable: int = 0
    alerts: AlertAudit = field(default_factory=AlertAudit)
    kills: list[KillEvent] = field(default_factory=list)
    worker_exit_codes: dict[str, int | None] = field(default_factory=dict)
    drained: bool = False
    drain_s: float = 0.0
    elapsed_s: float = 0.0
    load_average: list[float] = field(default_factory=list)
    log_dir: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.published > 0
            and not self.lost
            and self.alerts.duplicated == 0
            and self.dead_letters == 0
        )

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["ok"] = self.ok
        doc["alerts"]["duplicated"] = self.alerts.duplicated
        return doc


def _kill_plan(options: ChaosOptions, total: int) -> list[tuple[int, str, int]]:
    """(published count at which to kill, role, cycle), in order."""
    plan = []
    per_cycle = total / options.cycles
    for cycle in range(options.cycles):
        # Cloud first: while it is down the live edge worker's offloads pass their deadline,
        # so the fallback sweeper and late cloud results are exercised too.
        plan.append((int(per_cycle * (cycle + 0.25)), "cloud", cycle))
        plan.append((int(per_cycle * (cycle + 0.60)), "edge", cycle))
    return sorted(plan)


def _first_output_after(collector: OutputCollector, role: str, after_ns: int) -> int | None:
    """When the ``role`` worker first produced something after ``after_ns`` (wall ns)."""
    if role == "cloud":
        times = [r.produced_at_ns for r in collector.results() if r.decided_by == "cloud"]
    else:
        # Frames consumption only: the fallback sweeper may publish before the group rejoined.
        times = [r.produced_at_ns for r in collector.results() if r.decided_by == "edge"]
        times += [o.offloaded_at_ns for o in collector.offloads() if o.reason == "uncertain"]
    later = [t for t in times if t > after_ns]
    return min(later) if later else None


def _resumed_since(collector: OutputCollector, role: str, started_ns: int) -> bool:
    return _first_output_after(collector, role, started_ns) is not None


def run_chaos(base: Settings, options: ChaosOptions) -> ChaosReport:
    """Run the experiment (module docstring); always stops its workers."""
    from streams.devtools.demo import preflight
    from streams.kafka.topics import ensure_topics

    started = time.monotonic()
    run_id = new_run_id("chaos")
    settings = isolated_run(base, run_id)
    log_dir = options.log_dir or REPO_ROOT / ".stack" / "chaos" / run_id
    report = ChaosReport(run_id=run_id, log_dir=str(log_dir))
    preflight(settings)
    ensure_topics(settings)
    workers = {r: WorkerProcess.for_settings(r, settings, log_dir) for r in ("edge", "cloud")}
    collector = OutputCollector(settings)
    sink: Any = None
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
        collector.start()
        sink = KafkaFleetSink(settings, settings.topic_frames, client_id=f"fallwatch-{run_id}")
        total = options.cameras * options.windows_per_camera
        fleet = CameraFleet(pool, cameras=options.cameras, stream_prefix="chaos")
        published = [0]

        def count(_: object) -> None:
            published[0] += 1

        def publish() -> None:
            fleet_stats.append(
                fleet.run(
                    sink,
                    rate=options.rate,
                    max_windows=total,
                    max_duration_s=total / options.rate + 30.0,
                    on_publish=count,
                )
            )

        t0, t0_ns = time.monotonic(), time.time_ns()
        last_start_ns: dict[str, int] = {"edge": t0_ns, "cloud": t0_ns}
        resumed = {"edge": True, "cloud": True}
        next_check = 0.0
        thread = threading.Thread(target=publish, name="chaos-fleet", daemon=True)
        thread.start()
        plan = _kill_plan(options, total)
        restarts: list[tuple[float, KillEvent]] = []
        while thread.is_alive() or plan or restarts:
            now = time.monotonic()
            if now >= next_check:  # a kill must hit a worker that is processing again
                next_check = now + 0.5
                for role in resumed:
                    resumed[role] = resumed[role] or _resumed_since(
                        collector, role, last_start_ns[role]
                    )
            # A kill waits until its worker was restarted (and, while windows still flow,
            # until it is processing again), so two kills never overlap one restart.
            restarting = {event.role for _, event in restarts}
            while (
                plan
                and (published[0] >= plan[0][0] or not thread.is_alive())
                and plan[0][1] not in restarting
                and (resumed[plan[0][1]] or not thread.is_alive())
            ):
                _, role, cycle = plan.pop(0)
                workers[role].kill9()
                event = KillEvent(role, cycle, published[0], time.monotonic() - t0)
                report.kills.append(event)
                restarts.append((time.monotonic() + options.restart_delay_s, event))
                restarting.add(role)
                log.warning("chaos_kill9", extra={"role": role, "published": published[0]})
            for due, event in list(restarts):
                if now >= due:
                    workers[event.role].start()
                    event.restarted_s = time.monotonic() - t0
                    last_start_ns[event.role] = time.time_ns()
                    resumed[event.role] = False
                    restarts.remove((due, event))
            for event in report.kills:
                waiting = event.restarted_s is not None and event.ready_s is None
                if waiting and workers[event.role].ready():
                    event.ready_s = time.monotonic() - t0
            time.sleep(0.1)
        thread.join()
        for worker in workers.values():
            worker.wait_ready(options.startup_timeout_s)
        for event in report.kills:
            if event.ready_s is None:
                event.ready_s = time.monotonic() - t0
        stats = fleet_stats[0]
        wanted = {(w.stream_id, w.seq) for w in stats.published}
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
    finally:
        for role, worker in workers.items():
            report.worker_exit_codes[role] = worker.stop()
        if sink is not None:
            sink.close()
        collector.stop()
        if not options.keep:
            cleanup_run(settings, run_id)
    stats = fleet_stats[0] if fleet_stats else FleetStats(target_rate=options.rate)
    results = collector.results()
    per_window = Counter((r.stream_id, r.seq) for r in results)
    report.published = len(stats.published)
    report.lost = sorted(
        f"{w.stream_id}:{w.seq}" for w in stats.published if (w.stream_id, w.seq) not in per_window
    )
    report.results = len(results)
    report.decided_by = dict(Counter(r.decided_by for r in results))
    report.windows_with_repeated_results = sum(1 for n in per_window.values() if n > 1)
    report.dead_letters = collector.dead_letters()
    report.undecodable = collector.undecodable()
    report.alerts = audit_alerts(collector.alerts(), settings.cooldown_windows)
    for event in report.kills:
        if event.restarted_s is not None:
            restart_ns = t0_ns + int(event.restarted_s * 1e9)
            first = _first_output_after(collector, event.role, restart_ns)
            event.resumed_s = None if first is None else (first - t0_ns) / 1e9
    report.elapsed_s = time.monotonic() - started
    report.load_average = load_average()
    return report


def _opt(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}"


def format_chaos(report: ChaosReport) -> str:
    a = report.alerts
    lines = [
        f"fallwatch chaos {report.run_id}: {report.elapsed_s:.0f} s, load average "
        f"{report.load_average}, logs {report.log_dir}",
        "kills: "
        + "; ".join(
            f"{k.role}#{k.cycle} at {k.killed_s:.1f} s (after {k.published_at_kill} windows), "
            f"restarted {k.restarted_s or 0:.1f} s, ready {k.ready_s or 0:.1f} s, "
            f"resumed {_opt(k.resumed_s)} s"
            for k in report.kills
        ),
        f"windows published {report.published}, LOST {len(report.lost)}"
        + (f" {report.lost[:10]}" if report.lost else "")
        + f", with repeated results {report.windows_with_repeated_results} (replays, allowed)",
        f"results {report.results} by {report.decided_by}; dead letters {report.dead_letters}; "
        f"drained {report.drained} in {report.drain_s:.1f} s",
        f"alerts: {a.records} records, {a.distinct_ids} ids, {a.republished} idempotent "
        f"republishes, {a.detected_events} detected / {a.resolved_events} resolved events; "
        f"DUPLICATED {a.duplicated} (conflicting ids {a.conflicting_ids}, multi-id episodes "
        f"{a.multi_id_episodes}, overlapping episodes {a.overlapping_episodes})",
        f"worker exit codes {report.worker_exit_codes}; ok={report.ok}",
    ]
    return "\n".join(lines)


def format_kill9_line(report: ChaosReport) -> str:
    """The kill -9 run in the one-line-per-fault form of ``load_tests.faults``."""
    return (
        f"{'worker-kill9':<13} sent {report.published}, LOST {len(report.lost)}, "
        f"DUPLICATED alerts {report.alerts.duplicated}, pids replaced by design "
        f"({len(report.kills)} kills, each worker restarted by the run); "
        f"repeated results {report.windows_with_repeated_results}, decided_by "
        f"{report.decided_by}, dead letters {report.dead_letters}, alerts "
        f"{report.alerts.detected_events} detected / {report.alerts.resolved_events} resolved, "
        f"drained {report.drained}, {report.elapsed_s:.0f} s; ok={report.ok}"
    )


def main(argv: list[str] | None = None) -> int:
    from load_tests.faults import FAULTS, FaultOptions, format_fault_line, run_fault
    from streams.devtools.private_stack import running_private_stack

    parser = argparse.ArgumentParser(
        prog="python -m load_tests.chaos",
        description="kill -9 the edge and the cloud worker mid-stream, then restart and pause "
        "a private broker and stop and kill -9 a private Redis; count lost windows and "
        "duplicated alerts.",
    )
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--windows-per-camera", type=int, default=180)
    parser.add_argument("--rate", type=float, default=6.0, help="windows/s, all cameras")
    parser.add_argument("--cycles", type=int, default=2, help="cloud+edge kill cycles")
    parser.add_argument("--restart-delay", type=float, default=2.0)
    parser.add_argument(
        "--faults",
        default=",".join(("worker-kill9", *FAULTS)),
        help=f"comma-separated, from worker-kill9 (shared stack) and {', '.join(FAULTS)} "
        "(private stack)",
    )
    parser.add_argument("--fault-windows-per-camera", type=int, default=60)
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the run's topics and keys")
    args = parser.parse_args(argv)
    faults = [f for f in args.faults.split(",") if f]
    unknown = set(faults) - {"worker-kill9", *FAULTS}
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    lines: list[str] = []
    doc: dict[str, Any] = {}
    ok = True
    if "worker-kill9" in faults:
        options = ChaosOptions(
            cameras=args.cameras,
            windows_per_camera=args.windows_per_camera,
            rate=args.rate,
            cycles=args.cycles,
            restart_delay_s=args.restart_delay,
            keep=args.keep,
            drain_timeout_s=180.0,
        )
        report = run_chaos(Settings(), options)
        print(format_chaos(report), flush=True)
        lines.append(format_kill9_line(report))
        doc["worker-kill9"] = report.to_json()
        ok = ok and report.ok
    stack_faults = [f for f in faults if f in FAULTS]
    if stack_faults:
        run_dir = REPO_ROOT / ".stack" / "chaos" / new_run_id("stack")
        fault_options = FaultOptions(windows_per_camera=args.fault_windows_per_camera)
        with running_private_stack(run_dir / "stack") as stack:
            print(f"private stack {stack.bootstrap} / {stack.redis_url} in {run_dir}", flush=True)
            for fault in stack_faults:
                result = run_fault(
                    stack, Settings(), fault, replace(fault_options, log_dir=run_dir / fault)
                )
                lines.append(format_fault_line(result))
                print(lines[-1], flush=True)
                doc[fault] = result.to_json()
                ok = ok and result.ok
    print("\nfallwatch chaos: one line per fault")
    print("\n".join(lines))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
