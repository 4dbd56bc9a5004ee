"""The benchmark's pure summary of its alternating bare/pipeline runs (no network)."""

from __future__ import annotations

import pytest

from load_tests.bench import throughput_summary


def test_medians_ratios_and_a_failed_bare_run() -> None:
    bare = [{"windows_per_s": 100.0}, {"error": "boom"}, {"windows_per_s": 80.0}]
    pipe = [
        {"windows_per_s": 90.0, "drain_windows_per_s": 95.0},
        {"windows_per_s": 70.0, "drain_windows_per_s": 85.0},
        {"windows_per_s": None},
    ]
    thr = throughput_summary(bare, pipe, cloud=True)
    assert thr["bare_runs"] is bare and thr["pipeline_runs"] is pipe
    assert thr["bare_median"] == 90.0
    assert thr["pipeline_median"] == 80.0
    assert thr["ratio"] == pytest.approx(80.0 / 90.0)
    assert thr["pair_ratios"] == [0.9]  # only pairs where both runs measured a rate
    assert thr["pair_ratio_median"] == 0.9
    assert thr["drain_median"] == 90.0
    assert thr["max_sustainable"] == 80.0  # the cloud keeps up: edge throughput


@pytest.mark.parametrize(("cloud", "expected"), [(True, 50.0), (False, 80.0)])
def test_a_slower_drain_caps_the_rate_only_with_the_cloud_worker(
    cloud: bool, expected: float
) -> None:
    bare = [{"windows_per_s": 100.0}]
    pipe = [{"windows_per_s": 80.0, "drain_windows_per_s": 50.0}]
    assert throughput_summary(bare, pipe, cloud=cloud)["max_sustainable"] == expected


def test_nothing_measured_gives_no_rate() -> None:
    thr = throughput_summary([{"error": "x"}], [{}], cloud=True)
    assert thr["bare_median"] is None
    assert thr["ratio"] is None
    assert thr["pair_ratio_median"] is None
    assert thr["max_sustainable"] is None
