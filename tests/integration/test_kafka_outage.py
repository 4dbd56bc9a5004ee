"""The broker restarted, and paused for 20 s, mid-stream (issue 19 item 5).

Runs ``load_tests.faults.run_fault`` on a PRIVATE stack (``streams.devtools.private_stack``:
its own broker and redis-server, started by scripts/stack.sh from the same jars on free
ports and a temporary folder; the shared stack of ``make up`` is never touched): the real
``fallwatch edge`` and ``fallwatch cloud`` worker processes, 3 cameras x 50 pre-encoded
synthetic windows (daily life with staged falls) at 4 windows/s published through the
gateway's own Kafka sink (``KafkaWindowSink``, which holds windows through the outage),
run-unique topics, groups and Redis prefix. After 30 % of the windows the broker is
restarted (SIGTERM, wait for exit, start from the same data) or SIGSTOPped for 20 s and
SIGCONTed. No worker is restarted by the test.

Asserted: every published window got a result; a window with more than one result has
only the documented second answers (a late cloud result after the edge fallback, or a
replay of an uncommitted batch after the group rejoined: the event logic absorbs both);
no dead letter; the alert audit of ``load_tests.chaos`` (no id re-sent with other bytes, one
detected id per event, no episode alerted twice) on alerts that exist; both workers kept
their pids, never exited and reported not-ready while the broker was away; both stop
cleanly. Bounded: about 1.5 min per case, hard timeout 7 min for the module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from load_tests.faults import FaultOptions, format_fault_line, run_fault
from streams.core.settings import Settings
from streams.devtools.private_stack import PrivateStack, running_private_stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

OPTIONS = FaultOptions(
    cameras=3,
    windows_per_camera=50,
    rate=4.0,
    fault_at=0.3,
    pause_s=20.0,
    startup_timeout_s=120.0,
    drain_timeout_s=120.0,
)


def allowed_repeat(kind: str) -> bool:
    """A window's several results (sorted decided_by joined by "+") the design allows: the
    same edge answer replayed, or cloud and fallback answers of one offloaded window (late
    cloud answer after the fallback, replays of either). Never an edge-decided window that
    also got an offload answer."""
    deciders = set(kind.split("+"))
    return deciders == {"edge"} or deciders <= {"cloud", "edge-fallback"}


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    with running_private_stack(tmp_path_factory.mktemp("kafka-outage-stack")) as stack:
        yield stack


@pytest.mark.parametrize("fault", ["kafka-restart", "kafka-pause"])
def test_broker_fault_mid_stream_loses_no_window_and_duplicates_no_alert(
    private_stack: PrivateStack, fault: str, tmp_path: Path
) -> None:
    kafka_pid = private_stack.kafka_pid()
    report = run_fault(private_stack, Settings(), fault, replace(OPTIONS, log_dir=tmp_path))
    print(format_fault_line(report))
    print(json.dumps(report.to_json(), default=str))

    assert report.error == ""
    total = OPTIONS.cameras * OPTIONS.windows_per_camera
    assert report.published == total
    assert 0 < report.published_at_fault < total, "the fault did not hit a live stream"
    assert len(report.fault_s) == 2 and report.fault_s[1] < report.publish_s
    if fault == "kafka-restart":
        assert private_stack.kafka_pid() not in (None, kafka_pid), "the broker was not restarted"
    else:
        assert private_stack.kafka_pid() == kafka_pid

    assert report.drained, "results were missing or still arriving at the drain deadline"
    assert report.lost == [], f"{len(report.lost)} windows never got a result"
    assert all(allowed_repeat(kind) for kind in report.repeated_kinds), report.repeated_kinds
    assert report.dead_letters == 0

    alerts = report.alerts
    assert alerts.conflicting_ids == [], "an alert id was re-sent with different content"
    assert alerts.multi_id_episodes == [], "an event got more than one detected id"
    assert alerts.overlapping_episodes == [], "one episode raised two detected alerts"
    assert report.staged_falls > 0 and alerts.detected_events > 0

    assert report.pids_unchanged, (report.pids_start, report.pids_end, report.exited_during_run)
    assert all(s > 0 for s in report.not_ready_s.values()), report.not_ready_s
    assert report.worker_exit_codes == {"edge": 0, "cloud": 0}
    assert report.ok
