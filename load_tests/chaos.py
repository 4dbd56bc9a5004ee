"""Kill -9 experiment: ``python -m load_tests.chaos [--cycles N] [--cameras N] ...``.

Inputs: the local stack and ``Settings`` (models, thresholds); ``ChaosOptions`` (cameras,
windows per camera, aggregate rate, kill cycles, restart delay, time bounds).
What it does: through ``load_tests.harness.RunHarness`` (run-unique topics, groups and Redis
prefix), starts ``fallwatch edge`` and ``fallwatch cloud`` subprocesses, publishes a bounded stream of pre-encoded synthetic windows
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
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from load_tests.collector import OutputCollector, SeenAlert
from load_tests.fleet import CameraFleet, KafkaFleetSink
from load_tests.harness import PoolSpec, RunHarness
from load_tests.measure import load_average
from streams.core.settings import Settings
from streams.devtools.workers import (
    REPO_ROOT,
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


class _KillSchedule:
    """Kills and restarts the run's workers along ``_kill_plan`` while windows flow.

    A kill waits until its worker was restarted (and, while windows still flow, until it
    is processing again), so two kills never overlap one restart. Times are seconds since
    ``t0`` (the first window), recorded in the report's ``KillEvent``s.
    """

    def __init__(self, run: RunHarness, options: ChaosOptions, report: ChaosReport) -> None:
        self.run = run
        self.options = options
        self.report = report
        self.plan = _kill_plan(options, options.cameras * options.windows_per_camera)
        self.restarts: list[tuple[float, KillEvent]] = []
        self.t0, self.t0_ns = time.monotonic(), time.time_ns()
        self.last_start_ns: dict[str, int] = {role: self.t0_ns for role in run.workers}
        self.resumed = {role: True for role in run.workers}
        self.next_check = 0.0

    def follow(self, publishing: threading.Thread) -> None:
        """Apply the plan until publishing ended and every kill was restarted."""
        while publishing.is_alive() or self.plan or self.restarts:
            now = time.monotonic()
            if now >= self.next_check:  # a kill must hit a worker that is processing again
                self.next_check = now + 0.5
                for role in self.resumed:
                    self.resumed[role] = self.resumed[role] or _resumed_since(
                        self.run.collector, role, self.last_start_ns[role]
                    )
            self._kill_due(publishing)
            self._restart_due(now)
            for event in self.report.kills:
                waiting = event.restarted_s is not None and event.ready_s is None
                if waiting and self.run.workers[event.role].ready():
                    event.ready_s = time.monotonic() - self.t0
            time.sleep(0.1)

    def _kill_due(self, publishing: threading.Thread) -> None:
        restarting = {event.role for _, event in self.restarts}
        while (
            self.plan
            and (self.run.published >= self.plan[0][0] or not publishing.is_alive())
            and self.plan[0][1] not in restarting
            and (self.resumed[self.plan[0][1]] or not publishing.is_alive())
        ):
            _, role, cycle = self.plan.pop(0)
            self.run.workers[role].kill9()
            event = KillEvent(role, cycle, self.run.published, time.monotonic() - self.t0)
            self.report.kills.append(event)
            self.restarts.append((time.monotonic() + self.options.restart_delay_s, event))
            restarting.add(role)
            log.warning("chaos_kill9", extra={"role": role, "published": self.run.published})

    def _restart_due(self, now: float) -> None:
        for due, event in list(self.restarts):
            if now >= due:
                self.run.workers[event.role].start()
                event.restarted_s = time.monotonic() - self.t0
                self.last_start_ns[event.role] = time.time_ns()
                self.resumed[event.role] = False
                self.restarts.remove((due, event))

    def settle(self) -> None:
        """Wait until every worker is ready again; a kill not seen ready gets that time."""
        for worker in self.run.workers.values():
            worker.wait_ready(self.options.startup_timeout_s)
        for event in self.report.kills:
            if event.ready_s is None:
                event.ready_s = time.monotonic() - self.t0

    def resumed_times(self) -> None:
        """Each restarted worker's first output, in seconds since ``t0``."""
        for event in self.report.kills:
            if event.restarted_s is not None:
                restart_ns = self.t0_ns + int(event.restarted_s * 1e9)
                first = _first_output_after(self.run.collector, event.role, restart_ns)
                event.resumed_s = None if first is None else (first - self.t0_ns) / 1e9


def _fleet_sink(settings: Settings, client_id: str) -> KafkaFleetSink:
    return KafkaFleetSink(settings, settings.topic_frames, client_id=client_id)


def _kill_phase(run: RunHarness, options: ChaosOptions, report: ChaosReport) -> _KillSchedule:
    """Publish the fleet's windows while killing and restarting the workers."""
    pool = run.start(
        PoolSpec(options.scenes, options.scene_s, options.falls_per_scene, options.seed),
        options.startup_timeout_s,
    )
    total = options.cameras * options.windows_per_camera
    fleet = CameraFleet(pool, cameras=options.cameras, stream_prefix="chaos")
    schedule = _KillSchedule(run, options, report)
    thread = run.publish_in_background(
        fleet,
        total=total,
        rate=options.rate,
        max_duration_s=total / options.rate + 30.0,
        name="chaos-fleet",
    )
    schedule.follow(thread)
    thread.join()
    if run.publish_errors:
        raise run.publish_errors[0]
    schedule.settle()
    return schedule


def run_chaos(base: Settings, options: ChaosOptions) -> ChaosReport:
    """Run the experiment (module docstring); always stops its workers."""
    started = time.monotonic()
    run_id = new_run_id("chaos")
    settings = isolated_run(base, run_id)
    log_dir = options.log_dir or REPO_ROOT / ".stack" / "chaos" / run_id
    report = ChaosReport(run_id=run_id, log_dir=str(log_dir))
    harness = RunHarness(settings, run_id, log_dir, sink_factory=_fleet_sink, keep=options.keep)
    with harness as run:
        schedule = _kill_phase(run, options, report)
        report.drained, report.drain_s = run.drain(options.drain_timeout_s, options.quiet_s)
    report.worker_exit_codes = dict(harness.exit_codes)
    tally = harness.tally()
    report.published = len(tally.published)
    report.lost = tally.lost
    report.results = len(tally.results)
    report.decided_by = tally.decided_by
    report.windows_with_repeated_results = tally.repeated
    report.dead_letters = harness.collector.dead_letters()
    report.undecodable = harness.collector.undecodable()
    report.alerts = audit_alerts(harness.collector.alerts(), settings.cooldown_windows)
    schedule.resumed_times()
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


def _parser(fault_names: tuple[str, ...]) -> argparse.ArgumentParser:
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
        default=",".join(("worker-kill9", *fault_names)),
        help=f"comma-separated, from worker-kill9 (shared stack) and {', '.join(fault_names)} "
        "(private stack)",
    )
    parser.add_argument("--fault-windows-per-camera", type=int, default=60)
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the run's topics and keys")
    return parser


def _kill9_scenario(args: argparse.Namespace, lines: list[str], doc: dict[str, Any]) -> bool:
    """The worker kill -9 run on the shared stack; prints its report, adds its line."""
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
    return report.ok


def _stack_scenarios(
    args: argparse.Namespace, faults: list[str], lines: list[str], doc: dict[str, Any]
) -> bool:
    """Each broker/Redis fault in turn on one private stack; one line per fault."""
    from load_tests.faults import FaultOptions, format_fault_line, run_fault
    from streams.devtools.private_stack import running_private_stack

    ok = True
    run_dir = REPO_ROOT / ".stack" / "chaos" / new_run_id("stack")
    fault_options = FaultOptions(windows_per_camera=args.fault_windows_per_camera)
    with running_private_stack(run_dir / "stack") as stack:
        print(f"private stack {stack.bootstrap} / {stack.redis_url} in {run_dir}", flush=True)
        for fault in faults:
            result = run_fault(
                stack, Settings(), fault, replace(fault_options, log_dir=run_dir / fault)
            )
            lines.append(format_fault_line(result))
            print(lines[-1], flush=True)
            doc[fault] = result.to_json()
            ok = ok and result.ok
    return ok


def main(argv: list[str] | None = None) -> int:
    from load_tests.faults import FAULTS

    parser = _parser(FAULTS)
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
        ok = _kill9_scenario(args, lines, doc) and ok
    stack_faults = [f for f in faults if f in FAULTS]
    if stack_faults:
        ok = _stack_scenarios(args, stack_faults, lines, doc) and ok
    print("\nfallwatch chaos: one line per fault")
    print("\n".join(lines))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
