"""Event rules on the pure-Python reference model: scenarios, alert JSON, order properties.

The same scenarios run against the Lua tracker in tests/integration/test_state_redis.py.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from importlib import resources
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.records import RecordValueError, Result
from streams.core.errors import MessageSchemaError
from streams.events.alerts import PendingAlert, alert_id, build_alert
from streams.events.reference import ReferenceTracker
from streams.events.tracker import TrackerConfig, decision_from_result
from tests.event_cases import CASES, Case, counting_tokens, result
from tests.hostile_results import Attempt, check_attempt, silencing_attempts


def tracker_for(case: Case) -> ReferenceTracker:
    config = TrackerConfig(
        prefix="unit",
        resolve_after_windows=case.resolve_after,
        cooldown_windows=case.cooldown,
        retention_windows=case.retention,
    )
    return ReferenceTracker(config, token_factory=counting_tokens())


def run_case(case: Case) -> tuple[list[PendingAlert], list[str]]:
    tracker = tracker_for(case)
    alerts: list[PendingAlert] = []
    statuses: list[str] = []
    for i, record in enumerate(case.results):
        outcome = tracker.apply(record, now_ns=case.arrival_ns(i, 1_800_000_000_000 * 1_000_000))
        alerts.extend(outcome.alerts)
        statuses.append(outcome.status)
    return alerts, statuses


def summary(alerts: list[PendingAlert]) -> list[tuple[str, int, int, int, tuple[int, ...]]]:
    return [
        (
            a.state,
            int(a.event_id.rsplit("-", 1)[1]),
            a.facts.first_window_seq,
            a.facts.last_window_seq,
            a.facts.windows,
        )
        for a in alerts
    ]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_scenario(case: Case) -> None:
    alerts, statuses = run_case(case)
    assert summary(alerts) == case.expected
    if case.statuses is not None:
        assert statuses == case.statuses
    if case.extra.get("distinct_event_ids"):
        assert len({a.event_id for a in alerts}) == len(alerts)
    if "resolved_confidence" in case.extra:
        resolved = next(a for a in alerts if a.state == "resolved")
        assert resolved.facts.confidence == case.extra["resolved_confidence"]
        assert (
            resolved.facts.capture_end_ns
            == result(case.extra["resolved_capture_seq"], 1).capture_end_ns
        )


def alert_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(resources.files("schemas").joinpath("alert.v1.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_every_alert_matches_the_alert_schema_and_is_self_consistent() -> None:
    check = alert_validator()
    seen = 0
    for case in CASES:
        alerts, _ = run_case(case)
        for alert in alerts:
            event = json.loads(alert.payload)
            check.validate(event)
            assert (
                event["id"]
                == alert.alert_id
                == alert_id(alert.stream_id, alert.event_id, alert.state)
            )
            assert event["subject"] == alert.stream_id
            assert event["data"]["state"] == alert.state
            assert (event["data"]["snapshot_jpeg_b64"] is not None) == (alert.state == "detected")
            seen += 1
    assert seen >= 2 * len(CASES) - 5


def test_detected_and_resolved_share_event_id_but_not_alert_id() -> None:
    alerts, _ = run_case(CASES[0])
    detected, resolved = alerts
    assert detected.event_id == resolved.event_id
    assert detected.alert_id != resolved.alert_id
    assert json.loads(detected.payload)["type"] == "io.fallwatch.fall.detected"
    assert json.loads(resolved.payload)["type"] == "io.fallwatch.fall.resolved"


def test_rebuilding_an_alert_from_its_facts_is_byte_identical() -> None:
    alerts, _ = run_case(CASES[1])
    for alert in alerts:
        assert build_alert(alert.facts, "fallwatch/edge/fallwatch-edge").payload == alert.payload


def test_generation_token_keeps_ids_unique_across_state_lifetimes() -> None:
    config = TrackerConfig(resolve_after_windows=3, cooldown_windows=4)
    first = ReferenceTracker(config).apply(result(10, 1)).alerts[0]
    second = ReferenceTracker(config).apply(result(10, 1)).alerts[0]  # state expired/wiped
    assert first.event_id != second.event_id
    assert first.alert_id != second.alert_id


@pytest.mark.parametrize(
    "bad",
    [
        {"label": 2},
        {"label": True},
        {"decided_by": "human"},
        {"window_seq": -1},
        {"window_seq": 2**53},
        {"stream_id": ""},
        {"capture_end_ns": -1},
    ],
)
def test_results_breaking_the_record_rules_cannot_reach_the_tracker(bad: dict[str, Any]) -> None:
    # The Result type refuses them (parse_result raises the same RecordValueError, which the
    # events agent dead-letters as `invalid`).
    with pytest.raises(RecordValueError):
        replace(result(1, 1), **bad)


@pytest.mark.parametrize("p_fall", [1.5, -0.1, math.nan])
def test_a_p_fall_outside_the_unit_interval_is_poison(p_fall: float) -> None:
    with pytest.raises(MessageSchemaError):
        decision_from_result(replace(result(1, 1), p_fall=p_fall))


def test_replaying_everything_changes_nothing() -> None:
    tracker = tracker_for(CASES[1])
    first = [a for r in CASES[1].results for a in tracker.apply(r).alerts]
    replay = [tracker.apply(r) for r in CASES[1].results]
    assert first
    assert all(o.status == "duplicate" and not o.alerts for o in replay)


# --- order independence ------------------------------------------------------------


@st.composite
def result_sets(draw: st.DrawFn) -> dict[str, Any]:
    """Labels for a stretch of windows (runs of falls and no_falls, some windows missing),
    tracker parameters, and an arrival order with lateness below R."""
    resolve_after = draw(st.integers(2, 5))
    cooldown = draw(st.integers(0, resolve_after + 6))
    n = draw(st.integers(5, 60))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = random.Random(seed)
    p_fall_start = draw(st.sampled_from([0.05, 0.15, 0.3]))
    labels: dict[int, int] = {}
    label = 0
    for seq in range(n):
        label = (1 - label) if rng.random() < (p_fall_start if label == 0 else 0.4) else label
        if rng.random() < 0.08:
            continue  # this window never got a result (lost, dead-lettered)
        labels[seq] = label
    lateness = draw(st.integers(0, resolve_after - 1))
    by = ["edge", "cloud", "edge-fallback"]
    firsts = [
        (seq + rng.uniform(0, lateness), result(seq, lab, rng.choice(by)))
        for seq, lab in labels.items()
    ]
    dups = [
        (t + rng.uniform(0, 3 * n), result(r.window_seq, r.label, rng.choice(by)))
        for t, r in firsts
        if rng.random() < 0.3
    ]
    arrival = [r for _, r in sorted(firsts + dups, key=lambda x: x[0])]
    in_order = [r for _, r in sorted(firsts, key=lambda x: x[1].window_seq)]
    return {"R": resolve_after, "C": cooldown, "arrival": arrival, "in_order": in_order}


def alert_set(config: TrackerConfig, results: list[Result]) -> set[tuple[str, str]]:
    tracker = ReferenceTracker(config, token_factory=lambda: "gen")
    return {(a.alert_id, a.state) for r in results for a in tracker.apply(r).alerts}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=result_sets())
def test_bounded_reordering_and_duplicates_yield_the_in_order_alerts(data: dict[str, Any]) -> None:
    config = TrackerConfig(resolve_after_windows=data["R"], cooldown_windows=data["C"])
    assert alert_set(config, data["arrival"]) == alert_set(config, data["in_order"])


@settings(max_examples=50, deadline=None)
@given(data=result_sets(), seed=st.integers(0, 2**32 - 1))
def test_any_duplication_in_order_yields_identical_alerts(data: dict[str, Any], seed: int) -> None:
    rng = random.Random(seed)
    config = TrackerConfig(resolve_after_windows=data["R"], cooldown_windows=data["C"])
    replayed: list[dict[str, Any]] = []
    for record in data["in_order"]:
        replayed.append(record)
        if rng.random() < 0.5:  # a redelivery: any of the earlier results again
            replayed.append(rng.choice(replayed))
    assert alert_set(config, replayed) == alert_set(config, data["in_order"])


def test_lateness_of_r_or_more_is_outside_the_guarantee() -> None:
    """Shows the bound is real (the property above is not vacuous): a fall arriving R
    windows late, after its event resolved without it, starts an episode of its own."""
    config = TrackerConfig(resolve_after_windows=2, cooldown_windows=0)
    in_order = [result(0, 1), result(1, 1), result(2, 0), result(3, 0), result(4, 1), result(5, 1)]
    late = [result(2, 0), result(0, 1), result(3, 0), result(4, 1), result(1, 1), result(5, 1)]
    assert sorted(s for _, s in alert_set(config, in_order)) == ["detected", "detected", "resolved"]
    late_states = sorted(s for _, s in alert_set(config, late))
    assert late_states == ["detected", "detected", "detected", "resolved", "resolved"]


# --- no result can silence a stream (issue 19 item 3) --------------------------------


@settings(max_examples=300, deadline=None)
@given(attempt=silencing_attempts())
def test_issue19_no_single_hostile_result_silences_a_stream(attempt: Attempt) -> None:
    tracker = ReferenceTracker(attempt.config, token_factory=counting_tokens())
    outcomes = [tracker.apply(record, now_ns=now) for record, now in attempt.arrivals]
    check_attempt(attempt, outcomes)


def test_issue19_hostile_top_of_an_idle_stream_silences_it_at_most_the_restart_gap() -> None:
    """The documented bound: a hostile result arriving after `restart_gap_s` of silence
    becomes the top; the real windows are stale until the gap has passed, then restart."""
    config = TrackerConfig(resolve_after_windows=2, cooldown_windows=0, restart_gap_s=5.0)
    tracker = ReferenceTracker(config, token_factory=counting_tokens())
    t0 = 1_800_000_000_000 * 1_000_000
    tracker.apply(result(10, 0), now_ns=t0)
    idle = t0 + 60 * 10**9
    assert tracker.apply(result(2**53 - 1, 0), now_ns=idle).status == "restarted"
    assert tracker.apply(result(11, 1), now_ns=idle + 4 * 10**9).status == "stale"
    late = tracker.apply(result(12, 1), now_ns=idle + 5 * 10**9)
    assert (late.status, [a.state for a in late.alerts]) == ("restarted", ["detected"])
