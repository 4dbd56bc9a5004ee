"""Test-only crash points (streams.core.crash_points): inert by default, fire once, validated."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.core.crash_points import CRASH_POINTS, CrashPoints
from streams.core.settings import Settings
from streams.devtools.workers import REPO_ROOT


def test_default_settings_arm_nothing_and_reach_returns() -> None:
    points = CrashPoints.from_settings(Settings())
    assert points.armed == frozenset()
    for name in CRASH_POINTS:
        points.reach(name)  # still alive: inert by default


def test_settings_reject_unknown_points_and_points_without_a_marker_folder(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValidationError, match="unknown crash points"):
        Settings(test_crash_at="edge_after_pending,somewhere", test_crash_dir=tmp_path)
    with pytest.raises(ValidationError, match="test_crash_dir"):
        Settings(test_crash_at="edge_after_pending")
    settings = Settings(
        test_crash_at=" edge_after_pending , cloud_after_publish", test_crash_dir=tmp_path
    )
    assert CrashPoints.from_settings(settings).armed == {
        "edge_after_pending",
        "cloud_after_publish",
    }


def test_an_armed_point_elsewhere_and_a_fired_point_do_not_kill(tmp_path: Path) -> None:
    points = CrashPoints(["events_after_commit"], tmp_path)
    points.reach("edge_after_pending")  # not armed here
    points.marker("events_after_commit").write_text("1\n")  # fired in an earlier run
    points.reach("events_after_commit")
    assert points.armed == frozenset()


_CHILD = """
import sys
from pathlib import Path
from streams.core.crash_points import CrashPoints
CrashPoints(["edge_after_pending"], Path(sys.argv[1])).reach("edge_after_pending")
print("survived")
"""


def test_a_point_sigkills_its_process_once_then_the_marker_lets_the_restart_pass(
    tmp_path: Path,
) -> None:
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _CHILD, str(tmp_path)],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            timeout=60,
            check=False,
        )

    first = run()
    assert first.returncode == -signal.SIGKILL, first.stderr
    assert "survived" not in first.stdout
    marker = tmp_path / "edge_after_pending.crashed"
    assert marker.read_text().strip().isdigit()  # the pid that fired it
    second = run()
    assert (second.returncode, second.stdout.strip()) == (0, "survived")
