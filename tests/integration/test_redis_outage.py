"""Redis stopped for 30 s, paused (SIGSTOP) for 30 s, and killed with -9 then restarted
from its AOF, mid-stream (issue 19 item 4).

Runs ``load_tests.faults.run_fault`` on a PRIVATE stack (``streams.devtools.private_stack``:
its own broker and redis-server with ``appendonly yes``, started by scripts/stack.sh on free
ports and a temporary folder; the shared stack of ``make up`` is never touched): the real
``fallwatch edge`` and ``fallwatch cloud`` worker processes (``streams.devtools.workers``,
``FALLWATCH_REDIS_URL`` pointing at the private redis-server), 2 cameras x 40 synthetic
windows at 4 windows/s through the gateway's Kafka sink. After 30 % of the windows:

- ``redis-stop``: SIGTERM redis-server (it exits, connections refused), start it again 30 s
  later from its AOF;
- ``redis-pause``: SIGSTOP redis-server for 30 s, then SIGCONT: a blackhole (connections
  accepted by the kernel, nothing answers) that only the clients' socket timeouts detect;
- ``redis-kill9``: SIGKILL redis-server and start it again at once; it replays its AOF.

Asserted: every published window got a result (a window with several results has only the
documented second answers); no dead letter; the alert audit (no alert id re-sent with
other bytes, one detected id per event, no episode alerted twice); both workers kept their
pids and never exited; both reported not-ready while Redis was away (stop and pause) and
ready again at the end; the edge counted the outage on /metrics (stop and pause) and no
worker shows one active at the end; both stop cleanly. No worker is restarted by the test.
Bounded: about 1.5 min per case, hard timeout for the module.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from load_tests.faults import FaultOptions, format_fault_line, run_fault
from streams.core.settings import Settings
from streams.devtools.private_stack import PrivateStack, running_private_stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

OPTIONS = FaultOptions(
    cameras=2,
    windows_per_camera=40,
    rate=4.0,
    fault_at=0.3,
    redis_down_s=30.0,
    startup_timeout_s=120.0,
    drain_timeout_s=120.0,
)
# Sorted decided_by of a window with several results: the ones the design allows (a cloud
# answer held through the outage while the deadline passed and the fallback answered; a
# batch replayed because it was held uncommitted).
ALLOWED_REPEATS = {"cloud+edge-fallback", "edge+edge", "cloud+cloud", "cloud+cloud+edge-fallback"}


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    with running_private_stack(tmp_path_factory.mktemp("redis-outage-stack")) as stack:
        yield stack


def _pause_redis_instead_of_stopping(stack: PrivateStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the harness's ``redis-stop`` a SIGSTOP/SIGCONT of the same pid (a blackhole)."""
    pid = stack.redis_pid()
    assert pid is not None

    def pause() -> None:
        os.kill(pid, signal.SIGSTOP)
        stack.faults.append("redis paused")

    def resume() -> None:
        os.kill(pid, signal.SIGCONT)
        stack.faults.append("redis resumed")

    monkeypatch.setattr(stack, "stop_redis", pause)
    monkeypatch.setattr(stack, "start_redis", resume)


@pytest.mark.parametrize("case", ["redis-stop", "redis-pause", "redis-kill9"])
def test_issue19_redis_outage_mid_stream_loses_no_window_and_stops_no_worker(
    private_stack: PrivateStack, case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fault = case
    if case == "redis-pause":
        _pause_redis_instead_of_stopping(private_stack, monkeypatch)
        fault = "redis-stop"
    redis_pid = private_stack.redis_pid()
    try:
        report = run_fault(private_stack, Settings(), fault, replace(OPTIONS, log_dir=tmp_path))
    finally:
        if case == "redis-pause" and redis_pid is not None:
            os.kill(redis_pid, signal.SIGCONT)  # never leave it stopped, whatever happened
    print(case, format_fault_line(report))

    assert report.error == ""
    total = OPTIONS.cameras * OPTIONS.windows_per_camera
    assert report.published == total
    assert 0 < report.published_at_fault < total, "the fault did not hit a live stream"
    if case == "redis-pause":
        assert private_stack.redis_pid() == redis_pid
    else:
        assert private_stack.redis_pid() not in (None, redis_pid), "redis was not restarted"

    assert report.drained, "results were missing or still arriving at the drain deadline"
    assert report.lost == [], f"{len(report.lost)} windows never got a result"
    assert set(report.repeated_kinds) <= ALLOWED_REPEATS, report.repeated_kinds
    assert report.dead_letters == 0

    alerts = report.alerts
    assert alerts.conflicting_ids == [], "an alert id was re-sent with different content"
    assert alerts.multi_id_episodes == [], "an event got more than one detected id"
    assert alerts.overlapping_episodes == [], "one episode raised two detected alerts"
    assert alerts.duplicated == 0

    assert report.pids_unchanged, (report.pids_start, report.pids_end, report.exited_during_run)
    if case != "redis-kill9":  # a kill -9 and restart may pass between two probes
        assert all(s > 0 for s in report.not_ready_s.values()), report.not_ready_s
        # The edge writes every result's event state to Redis: it must have seen the outage.
        assert (report.redis_outages["edge"] or 0) >= 1, report.redis_outages
    assert report.redis_outage_active == {"edge": 0, "cloud": 0}, "an outage still shows"
    assert report.worker_exit_codes == {"edge": 0, "cloud": 0}
    assert report.ok
