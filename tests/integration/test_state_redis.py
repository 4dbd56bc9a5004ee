"""The Lua state scripts on the real Redis of the local stack.

Event tracker: the SAME scenarios as tests/unit/streams/test_events.py, and a randomized
differential test, must give exactly the facts of the Python reference model. Pending
offloads: add/remove/lease semantics, async and sync.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis
import redis.asyncio
from hypothesis import HealthCheck, given, settings

from streams.core.errors import StateStoreError
from streams.events.reference import ReferenceTracker
from streams.events.state import PendingOffloads, stream_keys
from streams.events.tracker import ApplyOutcome, EventTracker, TrackerConfig
from tests.event_cases import CASES, Case, counting_tokens, result
from tests.hostile_results import Attempt, check_attempt, silencing_attempts
from tests.integration.conftest import StackSettings
from tests.integration.sync_pending import SyncPendingOffloads

pytestmark = pytest.mark.integration

NOW_NS = 1_800_000_000_000 * 1_000_000


@pytest.fixture
async def aredis(stack: StackSettings) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(stack.redis_url, socket_timeout=10)
    yield client
    await client.aclose()


def config_for(case: Case, prefix: str) -> TrackerConfig:
    return TrackerConfig(
        prefix=prefix,
        resolve_after_windows=case.resolve_after,
        cooldown_windows=case.cooldown,
        retention_windows=case.retention,
        ttl_s=600,
    )


def comparable(outcome: ApplyOutcome) -> tuple[Any, ...]:
    return (
        outcome.status,
        outcome.outcome,
        outcome.late_cloud,
        [(a.facts, a.payload) for a in outcome.alerts],
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_lua_matches_reference_on_every_scenario(
    case: Case, aredis: redis.asyncio.Redis, redis_prefix: str
) -> None:
    config = config_for(case, redis_prefix)
    lua = EventTracker(aredis, config=config, token_factory=counting_tokens())
    ref = ReferenceTracker(config, token_factory=counting_tokens())
    states: list[tuple[str, int, int, int, tuple[int, ...]]] = []
    for i, record in enumerate(case.results):
        now = case.arrival_ns(i, NOW_NS)
        got = await lua.apply_result(record, now_ns=now)
        assert comparable(got) == comparable(ref.apply(record, now_ns=now)), (i, record)
        states += [
            (a.state, int(a.event_id.rsplit("-", 1)[1]), a.facts.first_window_seq,
             a.facts.last_window_seq, a.facts.windows)
            for a in got.alerts
        ]  # fmt: skip
    assert states == case.expected


@pytest.mark.parametrize("seed", range(4))
async def test_lua_matches_reference_on_random_traffic(
    seed: int, aredis: redis.asyncio.Redis, redis_prefix: str
) -> None:
    rng = random.Random(seed)
    config = TrackerConfig(
        prefix=redis_prefix,
        resolve_after_windows=rng.randint(2, 5),
        cooldown_windows=rng.randint(0, 8),
        retention_windows=rng.randint(15, 60),
    )
    lua = EventTracker(aredis, config=config, token_factory=counting_tokens())
    ref = ReferenceTracker(config, token_factory=counting_tokens())
    alerts = 0
    statuses: set[str] = set()
    for i in range(300):
        stream = rng.choice(["a", "b"])
        seq = rng.randrange(0, 120) if rng.random() < 0.3 else min(119, i // 2 + rng.randrange(3))
        label = 1 if rng.random() < 0.3 else 0
        by = rng.choice(["edge", "cloud", "edge-fallback"])
        if i in (150, 151):  # each stream's first result after the pause: seq reset
            stream, seq = ("a", "b")[i - 150], 0
        # The second half replays seqs with captures an hour later, after a pause longer
        # than the restart gap: a restarted gateway.
        record = result(seq, label, by, stream=stream, run_offset_s=3600 * (i // 150))
        now = NOW_NS + i * 1_000_000 + (i // 150) * 10 * 10**9
        got = await lua.apply_result(record, now_ns=now)
        assert comparable(got) == comparable(ref.apply(record, now_ns=now)), (i, record)
        alerts += len(got.alerts)
        statuses.add(got.status)
    assert alerts > 0
    assert {"applied", "duplicate", "restarted"} <= statuses


async def test_outbox_holds_alerts_until_acked(
    aredis: redis.asyncio.Redis, redis_prefix: str
) -> None:
    tracker = EventTracker(
        aredis, config=TrackerConfig(prefix=redis_prefix, resolve_after_windows=2)
    )
    (alert,) = await tracker.apply(result(7, 1), now_ns=NOW_NS)
    # Crash before publish: nothing acked. Too young to be re-offered yet...
    assert await tracker.unacked(older_than_s=5.0, now_ns=NOW_NS + 1_000_000_000) == []
    # ...then re-offered with the same id and bytes.
    (again,) = await tracker.unacked(older_than_s=5.0, now_ns=NOW_NS + 6_000_000_000)
    assert (again.alert_id, again.payload) == (alert.alert_id, alert.payload)
    # A replayed result does not create a second alert.
    assert await tracker.apply(result(7, 1), now_ns=NOW_NS + 7_000_000_000) == []
    assert await tracker.ack([alert.alert_id]) == 1
    assert await tracker.ack([alert.alert_id]) == 0
    assert await tracker.unacked(older_than_s=0.0, now_ns=NOW_NS + 10**12) == []


async def test_concurrent_duplicates_alert_once(
    aredis: redis.asyncio.Redis, stack: StackSettings, redis_prefix: str
) -> None:
    second = redis.asyncio.Redis.from_url(stack.redis_url)
    try:
        config = TrackerConfig(prefix=redis_prefix)
        trackers = [EventTracker(aredis, config=config), EventTracker(second, config=config)]
        outcomes = await asyncio.gather(
            *(
                trackers[i % 2].apply(result(3, 1, by))
                for i, by in enumerate(["edge", "cloud"] * 10)
            )
        )
    finally:
        await second.aclose()
    assert sum(len(alerts) for alerts in outcomes) == 1


async def test_keys_expire_and_retention_trims(
    aredis: redis.asyncio.Redis, redis_prefix: str
) -> None:
    config = TrackerConfig(prefix=redis_prefix, retention_windows=10, ttl_s=120)
    tracker = EventTracker(aredis, config=config)
    for seq in range(40):
        await tracker.apply(result(seq, 1 if seq % 9 == 0 else 0))
    meta, seqs, dec, falls = stream_keys(redis_prefix, "cam-1")
    for key in (meta, seqs, dec, falls):
        ttl = await aredis.ttl(key)
        assert 0 < ttl <= 120, key
    assert await aredis.zcard(seqs) == 11  # seqs 29..39
    assert await aredis.hlen(dec) == 11
    assert int(await aredis.zscore(seqs, "29") or -1) == 29


async def test_redis_errors_become_state_store_errors() -> None:
    client = redis.asyncio.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    try:
        with pytest.raises(StateStoreError):
            await EventTracker(client, config=TrackerConfig()).apply(result(1, 1))
        with pytest.raises(StateStoreError):
            await PendingOffloads(client).count()
    finally:
        await client.aclose()


def test_clients_decoding_responses_are_refused(stack: StackSettings) -> None:
    with pytest.raises(ValueError):
        PendingOffloads(redis.asyncio.Redis.from_url(stack.redis_url, decode_responses=True))
    with pytest.raises(ValueError):
        EventTracker(
            redis.asyncio.Redis.from_url(stack.redis_url, decode_responses=True),
            config=TrackerConfig(),
        )


# --- pending offloads ----------------------------------------------------------------

S = 1_000_000_000


async def test_pending_lifecycle_async(aredis: redis.asyncio.Redis, redis_prefix: str) -> None:
    pending = PendingOffloads(aredis, prefix=redis_prefix, lease_s=2.0)
    t0 = NOW_NS
    assert await pending.add("cam:1", 5, t0 + 5 * S, b"\x00fallback-5") is True
    assert await pending.add("cam:1", 5, t0 + 9 * S, b"other") is False  # replay keeps the first
    assert await pending.add("cam:1", 6, t0 + 6 * S, b"\x00fallback-6") is True
    assert await pending.count() == 2
    assert await pending.due(t0 + 4 * S) == []

    (entry,) = await pending.due(t0 + 5 * S)
    assert (entry.stream_id, entry.window_seq, entry.result_bytes) == (
        "cam:1",
        5,
        b"\x00fallback-5",
    )
    # Leased: another sweeper does not get it until the lease expires...
    assert [e.window_seq for e in await pending.due(t0 + 6 * S)] == [6]
    # ...then it is offered again (the first sweeper died mid-publish).
    assert [e.window_seq for e in await pending.due(t0 + 7 * S + S // 2)] == [5]

    assert await pending.remove("cam:1", 5) is True
    assert await pending.remove("cam:1", 5) is False
    assert await pending.remove_many([("cam:1", 6), ("nope", 1)]) == 1
    assert await pending.count() == 0
    assert await pending.due(t0 + 100 * S) == []


async def test_pending_due_respects_limit(aredis: redis.asyncio.Redis, redis_prefix: str) -> None:
    pending = PendingOffloads(aredis, prefix=redis_prefix)
    for seq in range(5):
        await pending.add("s", seq, NOW_NS + seq, b"r")
    first = await pending.due(NOW_NS + S, limit=3)
    rest = await pending.due(NOW_NS + S, limit=10)
    assert len(first) == 3
    assert {e.window_seq for e in first} | {e.window_seq for e in rest} == set(range(5))
    assert {e.window_seq for e in first} & {e.window_seq for e in rest} == set()


def test_pending_lifecycle_sync_shares_keys_with_async(
    redis_factory: Callable[..., redis.Redis], redis_prefix: str
) -> None:
    pending = SyncPendingOffloads(redis_factory(), prefix=redis_prefix, lease_s=1.0)
    assert pending.add("cam", 1, NOW_NS, b"fb") is True
    assert pending.count() == 1
    (entry,) = pending.due(NOW_NS)
    assert entry.result_bytes == b"fb"
    assert pending.due(NOW_NS) == []
    assert pending.remove("cam", 1) is True
    assert pending.count() == 0
    with pytest.raises(ValueError):
        pending.add("cam", -1, NOW_NS, b"fb")


async def _run_attempt_on_lua(attempt: Attempt, url: str, prefix: str) -> list[ApplyOutcome]:
    """Apply `attempt` with the Lua tracker; cut the state's TTL to 50 s just before the
    hostile result and check a stale or duplicate one did not refresh it."""
    client = redis.asyncio.Redis.from_url(url, socket_timeout=10)
    try:
        config = dataclasses.replace(attempt.config, prefix=prefix)
        lua = EventTracker(client, config=config, token_factory=counting_tokens())
        keys = stream_keys(prefix, "cam-1")[:3]  # meta, seqs, dec exist after the prefix
        outcomes: list[ApplyOutcome] = []
        for i, (record, now) in enumerate(attempt.arrivals):
            if i == attempt.hostile_index:
                for key in keys:
                    assert await client.pexpire(key, 50_000)
            outcomes.append(await lua.apply_result(record, now_ns=now))
            if i == attempt.hostile_index and outcomes[-1].status in ("stale", "duplicate"):
                for key in keys:
                    assert 0 < await client.pttl(key) <= 50_000, (key, outcomes[-1].status)
        return outcomes
    finally:
        await client.aclose()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(attempt=silencing_attempts())
def test_issue19_no_single_hostile_result_silences_a_stream_lua_and_reference(
    attempt: Attempt, stack: StackSettings, redis_prefix: str
) -> None:
    """Issue 19 item 3, the same generated cases on the Lua (real Redis) and the reference:
    after one hostile result the genuine run gives exactly one detected (and resolved),
    both trackers agree result by result, and a stale or duplicate result leaves the TTL
    where it was."""
    prefix = f"{redis_prefix}{uuid.uuid4().hex[:8]}:"
    got = asyncio.run(_run_attempt_on_lua(attempt, stack.redis_url, prefix))
    ref = ReferenceTracker(attempt.config, token_factory=counting_tokens())
    expected = [ref.apply(record, now_ns=now) for record, now in attempt.arrivals]
    assert [comparable(o) for o in got] == [comparable(o) for o in expected]
    check_attempt(attempt, got)
