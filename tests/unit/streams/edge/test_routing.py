"""Unit tests for streams.edge.routing: the pure edge/offload/audit decision."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.edge.routing import (
    FALL,
    NO_FALL,
    audit_sampled,
    label_for,
    route_window,
)

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def test_confident_window_stays_at_the_edge_without_offload() -> None:
    d = route_window(
        p_fall=0.9,
        switcher_score=0.2,
        threshold=0.6,
        fall_threshold=0.5,
        audit_rate=0.0,
        stream_id="cam",
        window_seq=1,
    )
    assert d.path == "edge"
    assert d.offload_reason is None
    assert not d.sends_offload
    assert d.label == FALL and d.is_fall and d.label_name == "fall"
    assert d.metric_paths == ("edge",)


def test_score_at_threshold_is_uncertain_and_offloaded() -> None:
    d = route_window(
        p_fall=0.2,
        switcher_score=0.6,
        threshold=0.6,
        fall_threshold=0.5,
        audit_rate=0.0,
        stream_id="cam",
        window_seq=1,
    )
    assert d.path == "offload"
    assert d.offload_reason == "uncertain"
    # The edge's own answer is kept for the edge-fallback result.
    assert d.label == NO_FALL
    assert d.metric_paths == ("offload",)


def test_audit_rate_one_audits_every_confident_window_but_never_relabels_uncertain() -> None:
    confident = route_window(
        p_fall=0.1,
        switcher_score=0.0,
        threshold=0.5,
        fall_threshold=0.5,
        audit_rate=1.0,
        stream_id="cam",
        window_seq=3,
    )
    uncertain = route_window(
        p_fall=0.1,
        switcher_score=0.9,
        threshold=0.5,
        fall_threshold=0.5,
        audit_rate=1.0,
        stream_id="cam",
        window_seq=3,
    )
    assert (confident.path, confident.offload_reason) == ("edge", "audit")
    assert confident.metric_paths == ("edge", "audit")
    assert (uncertain.path, uncertain.offload_reason) == ("offload", "uncertain")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_model_outputs_go_to_the_cloud(bad: float) -> None:
    by_score = route_window(
        p_fall=0.1,
        switcher_score=bad,
        threshold=0.5,
        fall_threshold=0.5,
        audit_rate=0.0,
        stream_id="cam",
        window_seq=1,
    )
    by_prob = route_window(
        p_fall=bad,
        switcher_score=0.0,
        threshold=0.5,
        fall_threshold=0.5,
        audit_rate=0.0,
        stream_id="cam",
        window_seq=1,
    )
    assert by_score.path == "offload" and by_score.offload_reason == "uncertain"
    assert by_prob.path == "offload"


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("threshold", {"threshold": 1.5}),
        ("fall_threshold", {"fall_threshold": -0.1}),
        ("audit_rate", {"audit_rate": 2.0}),
    ],
)
def test_out_of_range_parameters_are_refused(name: str, kwargs: dict[str, float]) -> None:
    args: dict[str, float] = {"threshold": 0.5, "fall_threshold": 0.5, "audit_rate": 0.0, **kwargs}
    with pytest.raises(ValueError, match=name):
        route_window(p_fall=0.5, switcher_score=0.5, stream_id="cam", window_seq=1, **args)


def test_label_threshold_is_inclusive() -> None:
    assert label_for(0.5, 0.5) == FALL
    assert label_for(0.4999, 0.5) == NO_FALL
    assert label_for(math.nan, 0.5) == NO_FALL


def test_audit_sampling_hits_roughly_the_requested_share() -> None:
    n = 20_000
    hits = sum(audit_sampled(f"cam-{i % 13}", i, 0.1) for i in range(n))
    # Binomial(20000, 0.1): sd ≈ 42; ±10 sd is a very loose, never-flaky band.
    assert 0.1 * n - 450 < hits < 0.1 * n + 450


def test_audit_sampling_depends_on_both_stream_and_seq() -> None:
    by_seq = {audit_sampled("cam", s, 0.5) for s in range(64)}
    by_stream = {audit_sampled(f"cam-{i}", 5, 0.5) for i in range(64)}
    assert by_seq == {True, False}
    assert by_stream == {True, False}


def test_audit_choice_is_identical_in_another_process_with_another_hash_seed() -> None:
    """Replays may land on another worker: the choice must not depend on PYTHONHASHSEED."""
    windows = [(f"cam-{i}", i * 7) for i in range(200)]
    here = [audit_sampled(s, q, 0.3) for s, q in windows]
    code = (
        "from streams.edge.routing import audit_sampled\n"
        f"w = {windows!r}\n"
        "print(''.join('1' if audit_sampled(s, q, 0.3) else '0' for s, q in w))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert out == "".join("1" if h else "0" for h in here)


@given(p_fall=unit, score=unit, threshold=unit, audit_rate=unit, seq=st.integers(0, 10**9))
def test_offload_iff_score_reaches_threshold(
    p_fall: float, score: float, threshold: float, audit_rate: float, seq: int
) -> None:
    d = route_window(
        p_fall=p_fall,
        switcher_score=score,
        threshold=threshold,
        fall_threshold=0.5,
        audit_rate=audit_rate,
        stream_id="cam",
        window_seq=seq,
    )
    assert (d.path == "offload") == (score >= threshold)
    if d.path == "offload":
        assert d.offload_reason == "uncertain"
    else:
        assert d.offload_reason in (None, "audit")
    # The same inputs always give the same decision (replay safety).
    assert d == route_window(
        p_fall=p_fall,
        switcher_score=score,
        threshold=threshold,
        fall_threshold=0.5,
        audit_rate=audit_rate,
        stream_id="cam",
        window_seq=seq,
    )
