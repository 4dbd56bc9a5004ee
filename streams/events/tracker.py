"""Per-stream fall events from window results: the rules and the Redis tracker that runs them.

Inputs: parsed `result` records (`schemas.records.Result`) of one or many streams, in any
order, possibly duplicated (replays, cloud + fallback for the same window).
Outputs: `PendingAlert`s (CloudEvents JSON, see `streams.events.alerts`) written to an outbox in
the same atomic step as the state change; the caller publishes them, then `ack`s them.

Rules (one stream; R = resolve_after_windows, C = cooldown_windows):
1. Dedupe: the first final decision per window seq wins; later ones are duplicates,
   EXCEPT a `cloud` fall for a window decided `edge-fallback` no_fall (same seq, same
   capture_end_ns), which upgrades the window to fall (a possible fall is never dropped
   because the cloud was slow).
   Staleness and restarts are judged on a trusted clock, the worker's receive time
   (`now_ns`), never on the gateway's capture time, which is only the window's identity
   (so a far-future, far-past or jumped-back capture time changes nothing). The "top" of
   a stream is its highest decided seq; it is live while its last advance was less than
   `restart_gap_s` ago. While the top is live, a seq more than `retention` away from it
   (below: a replay from long ago; above: a jump no genuine producer makes) is stale and
   ignored, and a decided seq with another capture time is a duplicate. Once the top
   has been silent for `restart_gap_s`, such a result means the producer restarted its
   numbering (a gateway restarted at seq 0): the stream's state starts a new generation
   ("restarted"). An open event is dropped then (its "detected" alert stands; no
   "resolved" follows). Stale results and duplicates never refresh the state's TTL.
   So one hostile result (huge seq, absurd capture time, seq reset) sent while the
   stream is live is ignored; sent while the stream has been idle for `restart_gap_s`,
   it becomes the top and the real windows are stale for at most `restart_gap_s`.
   A gateway that restarts its numbering faster than that loses the windows of the
   remainder (trade-off: a faster restart rule would let any result reset a stream).
   A restarted numbering whose first seqs fall inside the retention range but were
   never decided (a state begun mid-numbering) joins the old generation until its
   first collision; an event opened there is dropped at that restart.
2. A fall with seq <= the cooldown mark of the last resolved event belongs to that
   episode: recorded, no alert. Otherwise, with an open event, the fall joins it (it may
   become its first window). Otherwise it opens a new event and a "detected" alert is
   written at once (first window, its decided_by, p_fall, snapshot, model versions).
3. The open event is re-derived from the decisions from its first fall on, after every
   result: its falls are those before the first run of R consecutive decided no_fall
   windows that follows a fall (an undecided window breaks a run). When such a run is
   complete the event resolves ("resolved" alert: fall windows, peak p_fall, first
   window's capture time) and the cooldown mark becomes its last fall + C; a fall already
   decided after the run and beyond the cooldown opens the next event in the same call.
   So a late result that completes a run fixes an event that a too-early fall had
   stretched, instead of merging two episodes.
4. Event ids are "<generation>-<n>": n counts the stream's events, generation is a random
   token created with the stream's state (so ids never repeat after the state expired,
   `state_ttl_s` after the last write, or Redis was wiped). Alert ids are uuid5 of
   "stream:event_id:state" (`streams.events.alerts.alert_id`).

Guarantees: replays and duplicates never change state or produce a second alert;
re-publishing an unacknowledged outbox entry yields the same bytes and id. Any
permutation (with duplicates) of a result set in which no result arrives after a result
more than R-1 seqs later yields the same alert ids and states as the in-order run
(property-tested). NOT guaranteed (trade-offs of alerting immediately): with larger
lateness a late fall may join a neighbouring episode or open its own; a fallback->cloud
upgrade of a window already counted in a resolving run is recorded in the cooldown (or
opens a new event beyond it), the event is not re-opened; a `cloud` no_fall arriving after
an `edge-fallback` fall is a duplicate (the fall stands). Cost: re-deriving scans the
open event's decisions (bounded by `retention`); events normally span a few windows.

Failure modes: `MessageSchemaError` for a result with `p_fall` outside [0, 1] (the other
value rules — label 0/1, known decided_by, seq in [0, 2**53), capture_end_ns >= 0 — are
the `Result` type's own, checked by `schemas.records.parse_result`); `StateStoreError` for
Redis failures.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources

import redis
import redis.asyncio

from schemas.records import DECIDED_BY, Result
from schemas.registry import SchemaError
from streams.core.errors import MessageSchemaError, StateStoreError
from streams.core.settings import Settings
from streams.events.alerts import (
    ALERT_NAMESPACE,
    AlertFacts,
    MalformedAlertError,
    PendingAlert,
    build_alert,
)
from streams.events.state import outbox_keys, stream_keys

__all__ = [
    "DECIDED_BY",
    "ApplyOutcome",
    "BrokenOutboxEntry",
    "Decision",
    "EventTracker",
    "OutboxBatch",
    "TrackerConfig",
    "decision_from_result",
    "new_generation_token",
    "tracker_lua",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackerConfig:
    """Parameters of the event rules and where state lives."""

    prefix: str = "fw"
    resolve_after_windows: int = 5
    cooldown_windows: int = 10
    retention_windows: int = 4096
    ttl_s: int = 86400
    restart_gap_s: float = 5.0
    source: str = "fallwatch/edge/fallwatch-edge"

    @property
    def restart_gap_ms(self) -> int:
        """`restart_gap_s` in whole milliseconds (the unit of the trusted clock in Redis)."""
        return int(self.restart_gap_s * 1000)

    @classmethod
    def from_settings(cls, settings: Settings) -> TrackerConfig:
        """The tracker parameters of `settings` (source names the edge consumer group)."""
        return cls(
            prefix=settings.redis_prefix,
            resolve_after_windows=settings.resolve_after_windows,
            cooldown_windows=settings.cooldown_windows,
            retention_windows=settings.state_retention_windows,
            ttl_s=settings.state_ttl_s,
            restart_gap_s=settings.state_restart_gap_s,
            source=f"fallwatch/edge/{settings.edge_group}",
        )


@dataclass(frozen=True)
class Decision:
    """The fields of a `result` record the event rules use, validated."""

    stream_id: str
    seq: int
    label: int
    p_fall: float
    decided_by: str
    capture_end_ns: int
    model_versions: Mapping[str, str] = field(default_factory=dict)
    snapshot_b64: str | None = None


def decision_from_result(result: Result) -> Decision:
    """The event rules' view of a parsed `result`; `MessageSchemaError` if it breaks the
    rules the record type does not check itself (`p_fall` in [0, 1]).

    `Result` already guarantees the others (stream id rule, seq in [0, 2**53), label 0/1,
    `decided_by`, non-negative capture time): `schemas.records.parse_result` rejects them
    before the tracker sees the record."""
    p_fall = float(result.p_fall)
    if not 0.0 <= p_fall <= 1.0:
        raise MessageSchemaError(f"p_fall must be in [0, 1], got {p_fall!r}")
    snapshot = result.snapshot_jpeg
    return Decision(
        stream_id=result.stream_id,
        seq=result.window_seq,
        label=result.label,
        p_fall=p_fall,
        decided_by=result.decided_by,
        capture_end_ns=result.capture_end_ns,
        model_versions={str(k): str(v) for k, v in result.model_versions.items()},
        snapshot_b64=base64.b64encode(snapshot).decode("ascii") if snapshot else None,
    )


@dataclass(frozen=True)
class ApplyOutcome:
    """What one result did: `status` applied|upgraded|restarted|duplicate|stale, `outcome`
    none|opened|extended|in_cooldown (+"+resolved"), `late_cloud` when a cloud answer came
    for a window the fallback had already decided, and the new alerts."""

    status: str
    outcome: str
    late_cloud: bool
    alerts: list[PendingAlert]


@dataclass(frozen=True)
class BrokenOutboxEntry:
    """An outbox entry that cannot become an alert: dead-letter its `body`, then `ack` it."""

    alert_id: str
    body: bytes
    error: MalformedAlertError


@dataclass(frozen=True)
class OutboxBatch:
    """Unacknowledged outbox entries: the alerts to re-publish, the broken ones, and ids
    whose body is gone (acknowledged meanwhile, or a partial loss: `ack` them too)."""

    alerts: list[PendingAlert]
    broken: list[BrokenOutboxEntry]
    orphans: list[str] = field(default_factory=list)


def _alert_from_body(body: bytes | str, source: str) -> PendingAlert:
    try:
        return build_alert(AlertFacts.from_json(body), source)
    except (ValueError, OverflowError, TypeError, SchemaError) as exc:
        raise MalformedAlertError(f"outbox entry cannot become an alert: {exc}") from exc


def new_generation_token() -> str:
    """A random token naming a new generation of a stream's state (rule 4)."""
    return secrets.token_hex(8)


@functools.cache
def tracker_lua() -> str:
    """The event rules' Lua script (`tracker.lua`, package data beside this module)."""
    return resources.files(__package__ or "streams.events").joinpath("tracker.lua").read_text()


class EventTracker:
    """The event rules on Redis: one atomic Lua call per result (asyncio API).

    `apply(result)` returns the new alerts (already in the outbox); publish them and call
    `ack(alert_ids)`. `unacked(older_than_s)` returns outbox alerts never acknowledged
    (crash between commit and publish) for re-publishing.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        settings: Settings | None = None,
        *,
        config: TrackerConfig | None = None,
        token_factory: Callable[[], str] = new_generation_token,
    ) -> None:
        if config is None:
            if settings is None:
                raise ValueError("EventTracker needs settings or config")
            config = TrackerConfig.from_settings(settings)
        kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
        if kwargs.get("decode_responses"):
            raise ValueError("Redis client must use decode_responses=False")
        self.config = config
        self._client = client
        self._token_factory = token_factory
        self._apply = client.register_script(tracker_lua())
        self._outbox, self._outbox_t = outbox_keys(config.prefix)

    async def apply(self, result: Result, *, now_ns: int | None = None) -> list[PendingAlert]:
        """Apply one parsed result; return the alerts it created (possibly none)."""
        return (await self.apply_result(result, now_ns=now_ns)).alerts

    async def apply_result(self, result: Result, *, now_ns: int | None = None) -> ApplyOutcome:
        """Like `apply`, with the status of the result (for metrics and logs)."""
        return await self.apply_decision(decision_from_result(result), now_ns=now_ns)

    async def apply_decision(self, d: Decision, *, now_ns: int | None = None) -> ApplyOutcome:
        """Apply an already validated `Decision`."""
        cfg = self.config
        now_ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
        keys = [*stream_keys(cfg.prefix, d.stream_id), self._outbox, self._outbox_t]
        args: list[str | int | bytes] = [
            d.stream_id,
            str(d.seq),
            str(d.label),
            repr(d.p_fall),
            d.decided_by,
            str(d.capture_end_ns),
            json.dumps(dict(d.model_versions), sort_keys=True),
            d.snapshot_b64 or "",
            str(now_ms),
            cfg.resolve_after_windows,
            cfg.cooldown_windows,
            cfg.retention_windows,
            cfg.ttl_s,
            self._token_factory(),
            ALERT_NAMESPACE.bytes,
            cfg.restart_gap_ms,
        ]
        try:
            reply = await self._apply(keys=keys, args=args)
        except redis.RedisError as exc:
            raise StateStoreError(f"event tracker apply failed: {exc}") from exc
        status, late, outcome = (_text(reply[0]), int(reply[1]), _text(reply[2]))
        alerts: list[PendingAlert] = []
        for body in reply[4::2]:
            try:
                alerts.append(_alert_from_body(body, cfg.source))
            except MalformedAlertError:
                # Committed in the outbox: the republisher dead-letters it after
                # OUTBOX_STALE_S; the state change itself stands.
                log.error("outbox_entry_malformed", extra={"stream_id": d.stream_id})
        if status != "applied" or alerts:
            log.debug(
                "tracker_apply",
                extra={
                    "stream_id": d.stream_id,
                    "seq": d.seq,
                    "status": status,
                    "outcome": outcome,
                },
            )
        return ApplyOutcome(status, outcome, bool(late), alerts)

    async def ack(self, alert_ids: Iterable[str]) -> int:
        """Remove published alerts from the outbox; returns how many were still there."""
        ids = list(alert_ids)
        if not ids:
            return 0
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hdel(self._outbox, *ids)
                pipe.zrem(self._outbox_t, *ids)
                removed, _ = await pipe.execute()
        except redis.RedisError as exc:
            raise StateStoreError(f"event tracker ack failed: {exc}") from exc
        return int(removed)

    async def unacked(
        self, older_than_s: float = 5.0, *, limit: int = 100, now_ns: int | None = None
    ) -> list[PendingAlert]:
        """Outbox alerts created more than `older_than_s` ago and never acknowledged."""
        batch = await self.unacked_entries(older_than_s, limit=limit, now_ns=now_ns)
        return batch.alerts

    async def unacked_entries(
        self, older_than_s: float = 5.0, *, limit: int = 100, now_ns: int | None = None
    ) -> OutboxBatch:
        """The oldest `limit` outbox entries older than `older_than_s`: alerts to re-publish
        and entries that cannot become alerts (the caller dead-letters and acks those, so
        they never hold up the entries behind them)."""
        now_ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
        cutoff = now_ms - int(older_than_s * 1000)
        try:
            found = await self._client.zrangebyscore(
                self._outbox_t, "-inf", cutoff, start=0, num=limit
            )
            ids = [i for i in found if isinstance(i, bytes | str)]
            bodies = await self._client.hmget(self._outbox, ids) if ids else []
        except redis.RedisError as exc:
            raise StateStoreError(f"event tracker outbox read failed: {exc}") from exc
        alerts: list[PendingAlert] = []
        broken: list[BrokenOutboxEntry] = []
        orphans: list[str] = []
        for raw_id, body in zip(ids, bodies, strict=True):
            if body is None:
                orphans.append(_text(raw_id))
                continue
            try:
                alerts.append(_alert_from_body(body, self.config.source))
            except MalformedAlertError as exc:
                data = body if isinstance(body, bytes) else str(body).encode()
                broken.append(BrokenOutboxEntry(_text(raw_id), data, exc))
        return OutboxBatch(alerts, broken, orphans)


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
