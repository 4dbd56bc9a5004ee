"""kill -9 at the dangerous points: three staged falls give exactly three ``detected`` and three
``resolved`` alerts, on the plain stack and on the secured one (SASL_SSL Kafka, TLS + password
Redis).

What runs: the real ``fallwatch edge`` and ``fallwatch cloud`` subprocesses (the one harness,
``streams.devtools.workers``) on run-unique topics, groups and Redis prefix, with the
deterministic test models of tests/onnx_test_models.py: P(fall) is the window's mean grey
level for the edge and the cloud, and the switcher offloads the uncertain ones. Three
streams get 26 windows each (one every 0.25 s, interleaved); stream k falls in windows
``FALLS[k]`` at separate times; a fall window is a confident fall (level 242, decided by the
edge) or an uncertain one (level 153: offloaded to the cloud, with an edge-fallback entry
pending); every other window is a confident no-fall (level 13).

Where the workers die: the test-only crash points (``streams.core.crash_points``, armed
through ``FALLWATCH_TEST_CRASH_AT``/``_DIR``) make each worker SIGKILL itself once, at:
- ``edge_after_pending``: the pending-offload entry is in Redis, the offload request is not
  published (the first uncertain window);
- ``events_after_commit``: the tracker committed a new alert (state + outbox) in Redis, the
  alert is not published (the first alert);
- ``cloud_after_publish``: the cloud results are acknowledged by Kafka, the pending entries
  are not removed and the offsets are not committed.
Each SIGKILL is seen as exit status -9 of exactly the pid written in the point's marker file;
the test restarts that worker at once (the harness never kills anything else).

What is asserted — nothing here can pass without alerts: all three crash points fired, each
as a SIGKILL of the worker that reached it; every published window got a result, none was
dead-lettered, every result of a fall window says fall and every other says no fall; the
uncertain windows were offloaded; EXACTLY one detected and one resolved alert per stream
(three of each), detected at the first fall window and resolved at the last, with one event
id per stream; a CloudEvents id delivered twice is a byte-identical republish; after a quiet
period no further alert appears; both workers then stop cleanly (exit 0).
"""

from __future__ import annotations

import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kafka import KafkaProducer

import schemas
from load_tests.collector import OutputCollector, SeenAlert
from streams.core.crash_points import CRASH_POINTS, CrashPoints
from streams.core.settings import Settings
from streams.devtools.workers import (
    WorkerProcess,
    cleanup_run,
    isolated_run,
    new_run_id,
    wait_all_ready,
)
from streams.kafka.security import kafka_python_security
from tests.onnx_test_models import (
    CONFIDENT_FALL,
    CONFIDENT_NO_FALL,
    FRAMES,
    SIDE,
    UNCERTAIN_FALL,
    build_margin_switcher,
    build_mean_pixel_cloud,
    build_mean_pixel_edge,
)
from tests.secure_stack import SecureStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]

WINDOWS_PER_STREAM = 26
#: Stream index → the window seqs of its staged fall (separate times, see the docstring).
FALLS = {0: range(3, 7), 1: range(9, 13), 2: range(15, 19)}
PUBLISH_EVERY_S = 0.25
STARTUP_TIMEOUT_S = 150.0
RUN_TIMEOUT_S = 240.0
#: Longer than the outbox republish age (5 s) + its poll (2 s): a late copy would show.
QUIET_S = 10.0
_NS = 1_000_000_000


@dataclass(frozen=True)
class StagedWindow:
    stream_id: str
    seq: int
    level: int

    @property
    def is_fall(self) -> bool:
        return self.level != CONFIDENT_NO_FALL


def staged_windows(run_id: str) -> list[StagedWindow]:
    """Every window of the run in publish order (streams interleaved, seqs ascending)."""
    out: list[StagedWindow] = []
    for seq in range(WINDOWS_PER_STREAM):
        for k, fall in FALLS.items():
            level = CONFIDENT_NO_FALL
            if seq in fall:  # first fall window uncertain, then alternating
                level = UNCERTAIN_FALL if (seq - fall.start) % 2 == 0 else CONFIDENT_FALL
            out.append(StagedWindow(f"{run_id}-cam{k}", seq, level))
    return out


def frame_window(window: StagedWindow, t0_ns: int) -> bytes:
    """A raw-gray8 window whose every pixel is ``level``; capture times follow the seq."""
    start_ns = t0_ns + window.seq * _NS
    return schemas.encode(
        "frame_window",
        {
            "stream_id": window.stream_id,
            "window_seq": window.seq,
            "capture_start_ns": start_ns,
            "capture_end_ns": start_ns + 2 * _NS,
            "fps": 8.0,
            "width": SIDE,
            "height": SIDE,
            "frame_count": FRAMES,
            "codec": "raw-gray8",
            "payload": bytes([window.level]) * (FRAMES * SIDE * SIDE),
        },
    )


@dataclass
class Kill:
    role: str
    pid: int
    status: int
    points: list[str] = field(default_factory=list)


@dataclass
class Run:
    run_id: str
    settings: Settings
    workers: dict[str, WorkerProcess]
    crash: CrashPoints
    kills: list[Kill] = field(default_factory=list)

    def restart_the_killed(self) -> None:
        """Restart a worker that died of SIGKILL (recording which points it hit); fail on
        any other exit."""
        for role, worker in self.workers.items():
            status = worker.exited()
            if status is None:
                continue
            pid = worker.pid
            assert status == -signal.SIGKILL, f"{role} exited {status}:\n{worker.tail(40)}"
            assert pid is not None
            fired = [p for p in sorted(CRASH_POINTS) if self._fired_by(p, pid)]
            self.kills.append(Kill(role, pid, status, fired))
            worker.start()

    def all_ready(self) -> bool:
        return all(worker.ready() for worker in self.workers.values())

    def _fired_by(self, point: str, pid: int) -> bool:
        marker = self.crash.marker(point)
        return marker.is_file() and marker.read_text().strip() == str(pid)


def _models(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "edge_model_path": str(build_mean_pixel_edge(folder / "edge.onnx")),
        "cloud_model_path": str(build_mean_pixel_cloud(folder / "cloud.onnx")),
        "switcher_model_path": str(build_margin_switcher(folder / "switcher.onnx")),
    }


@pytest.fixture(params=["plain", "secured"])
def base_settings(request: pytest.FixtureRequest) -> Settings:
    """The plain local stack, or the secured one (started once per session)."""
    if request.param == "plain":
        return Settings()
    secured: SecureStack = request.getfixturevalue("secure_stack")
    return secured.settings()


@pytest.fixture
def kill9_run(base_settings: Settings, tmp_path: Path) -> Iterator[Run]:
    run_id = new_run_id("kill9")
    crash_dir = tmp_path / "crash"
    crash_dir.mkdir()
    settings = isolated_run(
        base_settings,
        run_id,
        test_crash_at=",".join(sorted(CRASH_POINTS)),
        test_crash_dir=crash_dir,
        **_models(tmp_path / "models"),
    )
    workers = {
        role: WorkerProcess.for_settings(role, settings, tmp_path / "logs")
        for role in ("edge", "cloud")
    }
    run = Run(run_id, settings, workers, CrashPoints.from_settings(settings))
    try:
        yield run
    finally:
        for worker in workers.values():
            worker.kill9()  # a no-op for workers the test already stopped
        cleanup_run(settings, run_id)


def _until(what: str, done: Callable[[], bool], run: Run, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        run.restart_the_killed()
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f} s: {what}"
        time.sleep(0.2)


def _alerts_by_state(alerts: list[SeenAlert]) -> dict[str, dict[str, SeenAlert]]:
    """state → {alert id → alert}; fails on an id whose copies differ."""
    copies: dict[str, set[bytes]] = defaultdict(set)
    out: dict[str, dict[str, SeenAlert]] = defaultdict(dict)
    for alert in alerts:
        copies[alert.id].add(alert.raw)
        out[alert.state][alert.id] = alert
    conflicting = [alert_id for alert_id, raws in copies.items() if len(raws) > 1]
    assert conflicting == [], "an alert id was re-sent with different content"
    return out


def test_kill9_at_the_dangerous_points_gives_exactly_one_alert_pair_per_staged_fall(
    kill9_run: Run,
) -> None:
    run = kill9_run
    settings = run.settings
    run_id = run.run_id
    staged = staged_windows(run_id)
    for worker in run.workers.values():
        worker.start()
    wait_all_ready(list(run.workers.values()), STARTUP_TIMEOUT_S)
    collector = OutputCollector(settings)
    collector.start()
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=5,
        client_id=f"fallwatch-{run_id}-camera",
        **kafka_python_security(settings),
    )
    try:
        t0_ns = time.time_ns() - WINDOWS_PER_STREAM * _NS
        for window in staged:  # the crashes happen while windows are still flowing
            producer.send(
                settings.topic_frames,
                key=window.stream_id.encode(),
                value=frame_window(window, t0_ns),
            ).get(timeout=30)
            run.restart_the_killed()
            time.sleep(PUBLISH_EVERY_S)
        wanted = {(w.stream_id, w.seq) for w in staged}

        def settled() -> bool:
            decided = {(r.stream_id, r.seq) for r in collector.results()}
            states = Counter(a.state for a in {a.id: a for a in collector.alerts()}.values())
            fired = all(run.crash.marker(p).is_file() for p in CRASH_POINTS)
            return wanted <= decided and states["resolved"] >= len(FALLS) and fired

        _until("windows decided, falls resolved, points fired", settled, run, RUN_TIMEOUT_S)
        quiet_until = time.monotonic() + QUIET_S  # late duplicates would arrive now
        _until("quiet period", lambda: time.monotonic() >= quiet_until, run, QUIET_S + 30)
        _until("both workers ready", run.all_ready, run, STARTUP_TIMEOUT_S)
        exit_codes = {role: worker.stop(grace_s=60) for role, worker in run.workers.items()}
    finally:
        producer.close(timeout=10)
        collector.stop()
    results = collector.results()

    alerts = collector.alerts()
    print(
        f"kill9 {run_id}: kills {[(k.role, k.points) for k in run.kills]}; "
        f"{len(staged)} windows, results by {dict(Counter(r.decided_by for r in results))}; "
        f"alerts {len(alerts)} records, {len({a.id for a in alerts})} ids, "
        f"{dict(Counter(a.state for a in {a.id: a for a in alerts}.values()))}"
    )
    # Every crash point fired once, each as a SIGKILL of the very worker that reached it.
    fired = sorted(p for kill in run.kills for p in kill.points)
    assert fired == sorted(CRASH_POINTS), run.kills
    assert all(kill.status == -signal.SIGKILL and kill.points for kill in run.kills), run.kills
    assert {k.role for k in run.kills if "cloud_after_publish" in k.points} == {"cloud"}
    assert exit_codes == {"edge": 0, "cloud": 0}, {r: w.tail(20) for r, w in run.workers.items()}

    # Every window decided, correctly; nothing dead-lettered; the uncertain ones offloaded.
    expected = {(w.stream_id, w.seq): int(w.is_fall) for w in staged}
    assert {(r.stream_id, r.seq) for r in results} == set(expected), "windows lost"
    wrong = [r for r in results if r.label != expected[(r.stream_id, r.seq)]]
    assert wrong == []
    assert collector.dead_letters() == 0 and collector.undecodable() == 0
    uncertain = {(w.stream_id, w.seq) for w in staged if w.level == UNCERTAIN_FALL}
    offloaded = {(o.stream_id, o.seq) for o in collector.offloads() if o.reason == "uncertain"}
    assert offloaded == uncertain
    assert {r.decided_by for r in results} >= {"edge", "cloud"}

    # Exactly three detected and three resolved: one pair per staged fall.
    by_state = _alerts_by_state(collector.alerts())
    assert sorted(by_state) == ["detected", "resolved"]
    for state in ("detected", "resolved"):
        per_stream = Counter(a.stream_id for a in by_state[state].values())
        assert per_stream == {f"{run_id}-cam{k}": 1 for k in FALLS}, (state, per_stream)
    for k, fall in FALLS.items():
        stream = f"{run_id}-cam{k}"
        (detected,) = [a for a in by_state["detected"].values() if a.stream_id == stream]
        (resolved,) = [a for a in by_state["resolved"].values() if a.stream_id == stream]
        assert detected.event_id == resolved.event_id
        # The uncertain first fall window may be decided (cloud, or the fallback after a
        # kill) after its confident neighbour: then the event starts one window later and
        # the late fall joins it without an alert.
        assert detected.first_window_seq in (fall.start, fall.start + 1)
        assert resolved.first_window_seq in (fall.start, fall.start + 1)
        assert resolved.last_window_seq == fall[-1]
