"""load_tests.faults bookkeeping (no network): staged falls, the pids check, the one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from load_tests.faults import FaultReport, _staged_falls, format_fault_line
from load_tests.fleet import FleetStats, PublishedWindow
from streams.devtools.private_stack import PrivateStackError, running_private_stack
from streams.devtools.workers import REPO_ROOT


def window(stream: str, seq: int, truth: int) -> PublishedWindow:
    return PublishedWindow(stream, seq, 0, truth)


def test_staged_falls_count_runs_of_fall_windows_per_stream() -> None:
    stats = FleetStats(target_rate=None)
    truths = {"a": [0, 1, 1, 0, 1, 0], "b": [1, 1, 1]}
    stats.published = [
        window(stream, seq, truth) for stream, seq_truth in truths.items()
        for seq, truth in enumerate(seq_truth)
    ]  # fmt: skip
    stats.published.reverse()  # publish order does not matter
    assert _staged_falls(stats.published) == 3


def report(**changes: object) -> FaultReport:
    base = FaultReport(
        fault="kafka-pause",
        run_id="r",
        published=10,
        pids_start={"edge": 1, "cloud": 2},
        pids_end={"edge": 1, "cloud": 2},
        worker_starts={"edge": 1, "cloud": 1},
        exited_during_run={"edge": None, "cloud": None},
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def test_a_clean_run_is_ok_and_says_pids_unchanged() -> None:
    line = format_fault_line(report())
    assert report().ok
    assert line.startswith("kafka-pause   sent 10, LOST 0, DUPLICATED alerts 0, pids unchanged")


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"exited_during_run": {"edge": 1, "cloud": None}}, "workers EXITED {'edge': 1}"),
        ({"pids_end": {"edge": 3, "cloud": 2}}, "CHANGED"),
        ({"worker_starts": {"edge": 2, "cloud": 1}}, "CHANGED"),
        ({"lost": ["cam:1"]}, "LOST 1"),
        ({"error": "boom"}, "error boom"),
    ],
)
def test_a_worker_exit_restart_loss_or_error_fails_the_run(
    changes: dict[str, object], says: str
) -> None:
    failed = report(**changes)
    assert not failed.ok
    assert says in format_fault_line(failed)


def test_the_private_stack_refuses_the_shared_folder_and_ports(tmp_path: Path) -> None:
    shared = REPO_ROOT / ".stack"
    with pytest.raises(PrivateStackError, match="own folder"), running_private_stack(shared):
        pass
    ports = (19092, 40001, 40002)
    with (
        pytest.raises(PrivateStackError, match="ports"),
        running_private_stack(tmp_path, ports=ports),
    ):
        pass
