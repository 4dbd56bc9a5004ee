"""Single hostile or clock-jumped results followed by a genuine run of falls (issue 19 item 3).

Shared by the unit test (Python reference model) and the integration test (the Lua tracker
on real Redis) so both run the SAME generated cases. Each case: a live genuine stream (a
few no_falls), ONE hostile result (huge seq, seq far below, absurd capture time in range,
a collision with a decided window), then the genuine stream goes on (as it was, with its
capture clock jumped, or restarted at seq 0 after a pause) with a run of falls and enough
no_falls to resolve it. Expected: the hostile result raises no alert, the run gives exactly
one `detected` and one `resolved`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from schemas.records import Result
from streams.events.state import MAX_SEQ
from streams.events.tracker import TrackerConfig
from tests.event_cases import BASE_CAPTURE_NS, result

__all__ = ["HOSTILE_KINDS", "Attempt", "check_attempt", "silencing_attempts"]

NOW_NS = 1_800_000_000_000 * 1_000_000
PERIOD_NS = 250_000_000
GAP_S = 5.0
HOSTILE_KINDS = ("huge_seq", "far_below", "absurd_capture_ahead", "collision")
_DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class Attempt:
    """Results in arrival order with their receive times; which one is hostile."""

    kind: str
    variant: str
    config: TrackerConfig
    arrivals: list[tuple[Result, int]]
    hostile_index: int


_captures = st.one_of(st.just(0), st.just(2**63 - 1), st.integers(0, 2**63 - 1))


@st.composite
def silencing_attempts(draw: st.DrawFn) -> Attempt:
    keep = draw(st.integers(8, 64))
    config = TrackerConfig(
        resolve_after_windows=draw(st.integers(2, 4)),
        cooldown_windows=draw(st.integers(0, 6)),
        retention_windows=keep,
        ttl_s=600,
        restart_gap_s=GAP_S,
    )
    variant = draw(st.sampled_from(["continue", "clock_jump", "seq_reset"]))
    s0 = draw(st.integers(0, 10_000))
    if variant == "seq_reset" and 0 < s0 <= keep:
        s0 = 0  # a state begun mid-numbering near 0 is ambiguous (tracker docstring)
    prefix = draw(st.integers(1, 12))
    arrivals: list[tuple[Result, int]] = []
    for k in range(prefix):
        cap = BASE_CAPTURE_NS + k * PERIOD_NS
        arrivals.append((result(s0 + k, 0, capture_ns=cap), NOW_NS + k * PERIOD_NS))
    top = s0 + prefix - 1
    t = arrivals[-1][1] + draw(st.integers(1, PERIOD_NS))
    kind = draw(st.sampled_from(HOSTILE_KINDS))
    if kind == "far_below" and top - keep - 1 < 0:
        kind = "huge_seq"
    label = draw(st.integers(0, 1))
    if kind == "huge_seq":
        seq = draw(st.integers(top + keep + 1, MAX_SEQ))
    elif kind == "far_below":
        seq = draw(st.integers(0, top - keep - 1))
    elif kind == "absurd_capture_ahead":
        seq, label = draw(st.integers(top + 1, top + keep)), 0  # a fall there is a false alarm
    else:
        seq = draw(st.integers(s0, top))
    cap = draw(_captures.filter(lambda c: c != BASE_CAPTURE_NS + (seq - s0) * PERIOD_NS))
    hostile_index = len(arrivals)
    arrivals.append((result(seq, label, "edge-fallback", capture_ns=cap), t))
    base_seq, base_cap, k0 = s0, BASE_CAPTURE_NS, prefix
    if variant == "clock_jump":
        base_cap += draw(st.sampled_from([-1, 1])) * draw(st.integers(10**9, _DAY_NS))
    elif variant == "seq_reset":
        t += int(draw(st.floats(GAP_S, 3 * GAP_S)) * 1e9)
        base_seq, k0 = 0, 0
        base_cap += draw(st.integers(-_DAY_NS, _DAY_NS).filter(bool))  # another window
    labels = [0] * draw(st.integers(0, 4)) + [1] * draw(st.integers(2, 6))
    labels += [0] * (config.resolve_after_windows + 2)
    for i, lab in enumerate(labels):
        k = k0 + i
        cap = base_cap + k * PERIOD_NS
        arrivals.append((result(base_seq + k, lab, capture_ns=cap), t + (i + 1) * PERIOD_NS))
    return Attempt(kind, variant, config, arrivals, hostile_index)


def check_attempt(attempt: Attempt, outcomes: list[Any]) -> None:
    """The assertions of the property, on the `ApplyOutcome`s of `attempt.arrivals`."""
    hostile = outcomes[attempt.hostile_index]
    assert hostile.alerts == [], (attempt.kind, hostile)
    after = [a for o in outcomes[attempt.hostile_index + 1 :] for a in o.alerts]
    states = [a.state for a in after]
    assert states == ["detected", "resolved"], (attempt.kind, attempt.variant, states)
    assert after[0].event_id == after[1].event_id
