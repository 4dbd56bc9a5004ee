"""Event-rule scenarios shared by the unit tests (Python reference model) and the
integration tests (the Lua tracker on real Redis), so both run the SAME cases.

Each case: a name, tracker parameters (R = resolve_after_windows, C = cooldown_windows,
retention), the results in arrival order, and the expected alerts in emission order as
(state, event number, first_window_seq, last_window_seq, windows).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from schemas.records import Result

BASE_CAPTURE_NS = 1_764_061_200_000_000_000  # 2025-11-25T09:00:00Z
INT64_MAX = 2**63 - 1


def result(
    seq: int,
    label: int,
    by: str = "edge",
    *,
    p: float | None = None,
    stream: str = "cam-1",
    run_offset_s: int = 0,
    capture_ns: int | None = None,
) -> Result:
    """A parsed `result` record (`schemas.records.Result`); `run_offset_s` shifts the
    capture times, as for a gateway that restarted its seq numbering later; `capture_ns`
    sets the capture time outright (a lying or jumped clock, within int64)."""
    if capture_ns is None:
        capture_ns = BASE_CAPTURE_NS + (run_offset_s + seq) * 1_000_000_000
    capture_end_ns = min(capture_ns, INT64_MAX)  # a huge seq: the latest time there is
    return Result(
        stream_id=stream,
        window_seq=seq,
        capture_start_ns=max(0, capture_end_ns - 2_000_000_000),
        capture_end_ns=capture_end_ns,
        p_fall=p if p is not None else (0.8 + (seq % 7) / 50 if label else 0.1),
        label=label,
        decided_by=by,
        switcher_score=0.3,
        model_versions={"edge": "e1", "cloud": "c1"} if by == "cloud" else {"edge": "e1"},
        latencies_s={"edge": 0.004},
        produced_at_ns=min(INT64_MAX, capture_end_ns + 5_000_000),
        snapshot_jpeg=b"\xff\xd8\xff\xd9" if label else None,
    )


def counting_tokens(prefix: str = "gen") -> Callable[[], str]:
    """A deterministic token factory (real trackers use random tokens)."""
    counter = itertools.count()
    return lambda: f"{prefix}{next(counter)}"


Expected = tuple[str, int, int, int, tuple[int, ...]]


@dataclass(frozen=True)
class Case:
    name: str
    results: list[Result]
    expected: list[Expected]
    statuses: list[str] | None = None  # status per result when the case is about statuses
    resolve_after: int = 3
    cooldown: int = 4
    retention: int = 20
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: Seconds of receive time (the trusted clock) that pass before result i; otherwise
    #: results arrive 1 ms apart.
    pauses: dict[int, float] = field(default_factory=dict)

    def arrival_ns(self, i: int, base_ns: int) -> int:
        """The receive time of result i (worker clock) when the first arrives at `base_ns`."""
        paused = sum(s for j, s in self.pauses.items() if j <= i)
        return base_ns + i * 1_000_000 + int(paused * 1e9)


def _n(seqs: range | list[int], by: str = "edge") -> list[Result]:
    return [result(s, 0, by) for s in seqs]


CASES: list[Case] = [
    Case(
        "in_order_detect_then_resolve",
        [result(10, 1), *_n(range(11, 14))],
        [("detected", 1, 10, 10, (10,)), ("resolved", 1, 10, 10, (10,))],
    ),
    Case(
        "falls_extend_open_event",
        [result(10, 1), result(11, 1), result(12, 0), result(13, 1), *_n(range(14, 17))],
        [("detected", 1, 10, 10, (10,)), ("resolved", 1, 10, 13, (10, 11, 13))],
    ),
    Case(
        "late_cloud_fall_before_first_joins_event",
        [result(11, 1), result(10, 1, "cloud"), *_n(range(12, 15))],
        [("detected", 1, 11, 11, (11,)), ("resolved", 1, 10, 11, (10, 11))],
    ),
    Case(
        "duplicates_never_alert_twice",
        [result(10, 1), result(10, 1), result(10, 1, "cloud"), *_n(range(11, 14)), result(13, 0)],
        [("detected", 1, 10, 10, (10,)), ("resolved", 1, 10, 10, (10,))],
        statuses=[
            "applied",
            "duplicate",
            "duplicate",
            "applied",
            "applied",
            "applied",
            "duplicate",
        ],
    ),
    Case(
        "cooldown_suppresses_same_episode_then_new_event",
        [result(10, 1), *_n(range(11, 14)), result(14, 1), result(15, 1)],
        [
            ("detected", 1, 10, 10, (10,)),
            ("resolved", 1, 10, 10, (10,)),
            ("detected", 2, 15, 15, (15,)),
        ],
    ),
    Case(
        "late_fall_after_resolve_is_same_episode",
        [result(10, 1), *_n(range(11, 14)), result(9, 1, "cloud")],
        [("detected", 1, 10, 10, (10,)), ("resolved", 1, 10, 10, (10,))],
    ),
    Case(
        "undecided_window_breaks_the_resolving_run",
        [result(10, 1), result(11, 0), result(13, 0), result(14, 0), result(15, 0)],
        [("detected", 1, 10, 10, (10,)), ("resolved", 1, 10, 10, (10,))],
        notes="resolves only on 15 (run 13-15), not on 14",
    ),
    Case(
        "no_falls_arriving_before_the_fall_resolve_it_at_once",
        [*_n(range(11, 14)), result(10, 1, "cloud")],
        [("detected", 1, 10, 10, (10,)), ("resolved", 1, 10, 10, (10,))],
    ),
    Case(
        "cloud_fall_upgrades_fallback_no_fall",
        [
            result(10, 1),
            result(11, 0, "edge-fallback"),
            result(11, 1, "cloud"),
            *_n(range(12, 15)),
        ],
        [("detected", 1, 10, 10, (10,)), ("resolved", 1, 10, 11, (10, 11))],
        statuses=["applied", "applied", "upgraded", "applied", "applied", "applied"],
    ),
    Case(
        "cloud_fall_upgrade_opens_event",
        [result(5, 0, "edge-fallback"), result(5, 1, "cloud")],
        [("detected", 1, 5, 5, (5,))],
        statuses=["applied", "upgraded"],
    ),
    Case(
        "cloud_no_fall_after_fallback_fall_is_duplicate",
        [result(5, 1, "edge-fallback"), result(5, 0, "cloud"), *_n(range(6, 9))],
        [("detected", 1, 5, 5, (5,)), ("resolved", 1, 5, 5, (5,))],
        statuses=["applied", "duplicate", "applied", "applied", "applied"],
    ),
    Case(
        "stale_seq_below_retention_is_ignored",
        [result(100, 0), result(79, 1), result(80, 1)],
        [("detected", 1, 80, 80, (80,))],
        statuses=["applied", "stale", "applied"],
    ),
    Case(
        "streams_are_independent",
        [result(1, 1, stream="a"), result(1, 1, stream="b"), result(2, 0, stream="a")],
        [("detected", 1, 1, 1, (1,)), ("detected", 1, 1, 1, (1,))],
    ),
    Case(
        "peak_confidence_and_first_capture_follow_the_event",
        [
            result(20, 1, p=0.6),
            result(21, 1, p=0.97),
            result(19, 1, "cloud", p=0.7),
            *_n(range(22, 25)),
        ],
        [("detected", 1, 20, 20, (20,)), ("resolved", 1, 19, 21, (19, 20, 21))],
        extra={"resolved_confidence": 0.97, "resolved_capture_seq": 19},
    ),
    Case(
        "restarted_producer_starts_a_new_generation",
        [
            result(0, 0),
            result(1, 1),
            result(0, 0, run_offset_s=3600),
            result(1, 1, run_offset_s=3600),
            result(1, 1),  # a replay from before the restart: another window, a duplicate
        ],
        [("detected", 1, 1, 1, (1,)), ("detected", 1, 1, 1, (1,))],
        statuses=["applied", "applied", "restarted", "applied", "duplicate"],
        extra={"distinct_event_ids": True},
        pauses={2: 6.0},
    ),
    Case(
        "stale_seq_after_a_silent_top_is_a_restart",
        [result(100, 0), result(3, 1, run_offset_s=3600), result(2, 1)],
        [("detected", 1, 3, 3, (3,))],
        statuses=["applied", "restarted", "applied"],
        notes="result(2) of the old run is applied as a late fall of the new one (documented)",
        pauses={1: 5.0},
    ),
    Case(
        "seq_reset_while_the_top_is_live_is_stale_until_the_gap",
        [
            result(100, 0),
            result(3, 1, run_offset_s=3600),
            result(4, 1, run_offset_s=3600),
            result(5, 1, run_offset_s=3600),
        ],
        [("detected", 1, 5, 5, (5,))],
        statuses=["applied", "stale", "stale", "restarted"],
        notes="the same reset with a capture time in the past (clock jumped back) is alike",
        pauses={2: 2.0, 3: 3.0},
    ),
    Case(
        "issue19_huge_seq_far_future_capture_does_not_silence",
        [
            result(10, 0),
            result(2**53 - 1, 0, capture_ns=2**63 - 1),
            result(11, 1),
            result(12, 1),
            *_n(range(13, 16)),
        ],
        [("detected", 1, 11, 11, (11,)), ("resolved", 1, 11, 12, (11, 12))],
        statuses=["applied", "stale", "applied", "applied", "applied", "applied", "applied"],
        pauses={2: 60.0},
        notes="a minute later the hostile result has still not become the top",
    ),
    Case(
        "capture_time_is_identity_only",
        [
            result(10, 0),
            result(11, 0, capture_ns=2**63 - 1),  # far future
            result(12, 1, capture_ns=0),  # far past
            result(13, 1, run_offset_s=-86400),  # gateway clock jumped back a day
            result(13, 0),  # the same seq, another window: a duplicate
            *_n(range(14, 17)),
        ],
        [("detected", 1, 12, 12, (12,)), ("resolved", 1, 12, 13, (12, 13))],
        statuses=["applied"] * 4 + ["duplicate"] + ["applied"] * 3,
    ),
    Case(
        "cloud_fall_for_another_window_does_not_upgrade",
        [result(5, 0, "edge-fallback"), result(5, 1, "cloud", run_offset_s=7)],
        [],
        statuses=["applied", "duplicate"],
    ),
]
