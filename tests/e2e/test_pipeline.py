"""Whole pipeline on the local stack: synthetic camera → gateway → edge → cloud → alerts.

Runs `streams.devtools.demo.run_demo` with one camera (25 s scene, one staged fall, published as
fast as possible) against real Kafka and Redis, with the real edge and cloud workers as
subprocesses and the shipped zoo models. Topics, consumer groups and the Redis prefix are
unique to the run and deleted afterwards; the run stops by itself (bounded drain, SIGTERM
to the workers).

What can be asserted robustly with real (small, synthetic-trained) models:
- every published window got a final result, none got two results of the same kind,
  and no window was decided both by the edge and by the cloud path;
- no CloudEvents id was delivered twice and no staged fall got two alerts;
- both workers stopped cleanly (exit status 0) and no camera failed;
- the staged fall got at most one detected alert — and when the models caught it,
  exactly one. Whether they catch it depends on the models, so it is reported, not
  required (the detection quality is measured by the models' own evaluation).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from streams.core.settings import Settings
from streams.devtools.demo import DemoOptions, run_demo

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_synthetic_camera_through_the_whole_pipeline(tmp_path: Path) -> None:
    out = io.StringIO()
    summary = run_demo(
        Settings(),
        DemoOptions(
            cameras=1,
            duration_s=25.0,
            falls_per_camera=1,
            seed=11,
            paced=False,
            json_path=tmp_path / "summary.json",
            run_dir=tmp_path / "run",
            startup_timeout_s=180.0,
            drain_timeout_s=60.0,
            out=out,
        ),
    )
    print(out.getvalue())
    results = summary["results"]
    assert summary["windows"] >= 20
    assert results["windows_without_result"] == 0, results["missing_windows"]
    assert results["repeated_results"] == 0
    assert results["conflicting_results"] == 0
    assert results["unexpected_results"] == 0
    assert summary["duplicate_alert_ids"] == 0
    assert summary["duplicate_alerts"] == 0
    assert summary["camera_errors"] == {}
    assert summary["worker_exit_codes"] == {"edge": 0, "cloud": 0}
    assert summary["falls_staged"] == 1
    assert summary["falls_detected"] in (0, 1)
    assert summary["ok"] is True
    assert (tmp_path / "summary.json").is_file()
    decided = summary["decided_by"]
    assert sum(decided.values()) >= summary["windows"]
    assert set(decided) <= {"edge", "cloud", "edge-fallback"}
