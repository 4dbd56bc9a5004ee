"""The reference model of the event rules: pure Python, no Redis (what the tests compare with).

Inputs: parsed `result` records (`schemas.records.Result`) or validated `Decision`s of one or many streams, a
`TrackerConfig`, a token factory and a clock (`now_ns`). Outputs: `ApplyOutcome`s with the
same statuses, outcomes and `AlertFacts` (so the same alert ids and bytes) that
`streams.events.tracker.EventTracker` produces with `tracker.lua` on Redis for the same
sequence, token factory and clock. The rules in prose are in `streams.events.tracker`.

Used by: the unit tests of the rules (tests/unit/streams/events) and the integration tests
that run the same cases on Redis and compare. Not used by the workers.
Differences, by design: no TTL and no outbox (alerts are returned directly); `now_ns`
(the worker's receive time) is an argument.
Failure modes: `MessageSchemaError` for results violating the value rules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from schemas.records import Result
from streams.events.alerts import AlertFacts, alert_id, build_alert
from streams.events.tracker import (
    ApplyOutcome,
    Decision,
    TrackerConfig,
    decision_from_result,
    new_generation_token,
)

__all__ = ["ReferenceTracker"]


@dataclass
class _StreamState:
    gen: str
    n_events: int = 0
    max_seq: int | None = None
    top_ms: int | None = None
    decisions: dict[int, tuple[int, str, int]] = field(default_factory=dict)
    falls: dict[int, Decision] = field(default_factory=dict)
    open: bool = False
    ev_id: str = ""
    ev_first: int = 0
    ev_last: int = 0
    ev_by: str = ""
    ev_models: Mapping[str, str] = field(default_factory=dict)
    cooldown: int | None = None


class ReferenceTracker:
    """Pure-Python model of the same rules as the Lua script (no Redis; for tests and docs).

    Produces the same `AlertFacts` as `EventTracker` for the same sequence of decisions,
    token factory and clock. No TTL and no outbox: alerts are returned directly.
    """

    def __init__(
        self, config: TrackerConfig, *, token_factory: Callable[[], str] = new_generation_token
    ) -> None:
        self.config = config
        self._token_factory = token_factory
        self._streams: dict[str, _StreamState] = {}

    def apply(self, result: Result, *, now_ns: int = 0) -> ApplyOutcome:
        """Apply one parsed result (see `EventTracker.apply_result`)."""
        return self.apply_decision(decision_from_result(result), now_ns=now_ns)

    def apply_decision(self, d: Decision, *, now_ns: int = 0) -> ApplyOutcome:
        """Apply an already validated `Decision`."""
        cfg = self.config
        token = self._token_factory()
        st = self._streams.setdefault(d.stream_id, _StreamState(gen=token))
        status, late = "applied", False
        now_ms = now_ns // 1_000_000
        keep = cfg.retention_windows
        prev = st.decisions.get(d.seq)
        outside = st.max_seq is not None and not st.max_seq - keep <= d.seq <= st.max_seq + keep
        collides = prev is not None and prev[2] != d.capture_end_ns
        if outside or collides:
            if st.top_ms is None or now_ms - st.top_ms >= cfg.restart_gap_ms:
                st = self._streams[d.stream_id] = _StreamState(gen=token)
                prev, status = None, "restarted"
            elif outside:
                return ApplyOutcome("stale", "none", False, [])
        if prev is not None:
            same = prev[2] == d.capture_end_ns
            late = same and d.decided_by == "cloud" and prev[1] == "edge-fallback"
            if not (d.label == 1 and prev[0] == 0 and late):
                return ApplyOutcome("duplicate", "none", late, [])
            status = "upgraded"
        st.decisions[d.seq] = (d.label, d.decided_by, d.capture_end_ns)
        if d.label == 1:
            st.falls[d.seq] = d
        if prev is None and (st.max_seq is None or d.seq > st.max_seq):
            st.max_seq, st.top_ms = d.seq, now_ms
            floor = d.seq - keep
            for old in [s for s in st.decisions if s < floor]:
                del st.decisions[old]
                st.falls.pop(old, None)
        facts: list[AlertFacts] = []
        outcome = "none"
        if d.label == 1:
            if st.cooldown is not None and d.seq <= st.cooldown:
                outcome = "in_cooldown"
            elif st.open:
                st.ev_first = min(st.ev_first, d.seq)
                outcome = "extended"
            else:
                self._open(st, d.seq, now_ms, facts)
                outcome = "opened"
        outcome += self._settle(st, d.stream_id, now_ms, facts)
        return ApplyOutcome(status, outcome, late, [build_alert(f, cfg.source) for f in facts])

    def _open(self, st: _StreamState, seq: int, now_ms: int, out: list[AlertFacts]) -> None:
        d = st.falls[seq]
        st.n_events += 1
        st.open, st.ev_id = True, f"{st.gen}-{st.n_events}"
        st.ev_first = st.ev_last = seq
        st.ev_by, st.ev_models = d.decided_by, dict(d.model_versions)
        out.append(
            AlertFacts(
                alert_id=alert_id(d.stream_id, st.ev_id, "detected"),
                event_id=st.ev_id,
                stream_id=d.stream_id,
                state="detected",
                first_window_seq=seq,
                last_window_seq=seq,
                windows=(seq,),
                decided_by=d.decided_by,
                confidence=d.p_fall,
                capture_end_ns=d.capture_end_ns,
                snapshot_b64=d.snapshot_b64,
                model_versions=dict(d.model_versions),
                created_ms=now_ms,
            )
        )

    def _settle(self, st: _StreamState, stream_id: str, now_ms: int, out: list[AlertFacts]) -> str:
        """Re-derive the open event from its first fall (see the Lua `settle`)."""
        extra = ""
        r = self.config.resolve_after_windows
        while st.open:
            members = sorted(s for s in st.decisions if s >= st.ev_first)
            last: int | None = None
            run, prev, ev_falls, stop = 0, None, [], None
            for j, seq in enumerate(members):
                if st.decisions[seq][0] == 1:
                    last, run = seq, 0
                    ev_falls.append(seq)
                else:
                    run = run + 1 if prev is not None and seq == prev + 1 and run > 0 else 1
                    if run >= r:
                        stop = j
                        break
                prev = seq
            st.ev_last = st.ev_first if last is None else last
            if stop is None:
                return extra
            first = st.falls.get(st.ev_first)
            out.append(
                AlertFacts(
                    alert_id=alert_id(stream_id, st.ev_id, "resolved"),
                    event_id=st.ev_id,
                    stream_id=stream_id,
                    state="resolved",
                    first_window_seq=st.ev_first,
                    last_window_seq=st.ev_last,
                    windows=tuple(ev_falls),
                    decided_by=st.ev_by,
                    confidence=max(
                        (st.falls[s].p_fall for s in ev_falls if s in st.falls), default=0.0
                    ),
                    capture_end_ns=first.capture_end_ns if first is not None else 0,
                    snapshot_b64=None,
                    model_versions=dict(st.ev_models),
                    created_ms=now_ms,
                )
            )
            st.open = False
            st.cooldown = st.ev_last + self.config.cooldown_windows
            extra += "+resolved"
            for seq in members[stop + 1 :]:
                if st.decisions[seq][0] == 1 and seq > st.cooldown:
                    self._open(st, seq, now_ms, out)
                    extra += "+opened"
                    break
        return extra
