"""Redis state of the streams service: the key layout, and the pending-offload store.

Every state transition is ONE Lua script call (redis-py `register_script`, EVALSHA with
automatic reload), so a crash or a concurrent worker never sees half an update. The event
tracker's script is `tracker.lua` beside `streams.events.tracker`, which runs it; the
pending-offload scripts are the short `PENDING_*_LUA` texts below.

Key layout (`P` = the configured prefix without a trailing colon):
- Per stream, hash-tagged `{stream_id}` so a cluster would co-locate them, TTL `ttl_s`
  refreshed on every write:
  - `P:s:{sid}:meta`  hash: `gen` (random token of this state generation), `n_events`,
    `max_seq`, `top_ms` (worker receive time in ms when `max_seq` last advanced), `open`
    ('1'/'0'), `ev_id`, `ev_first`,
    `ev_last`, `ev_by`, `ev_models`,
    `cooldown`, counters `stale`, `duplicates`, `cooldown_ignored`.
  - `P:s:{sid}:seqs`  zset of decided seqs (score = member = seq), trimmed to
    `retention` below `max_seq` (with `dec` and `falls`).
  - `P:s:{sid}:dec`   hash seq -> "label|decided_by|capture_end_ns" (the final decision).
  - `P:s:{sid}:falls` hash seq -> JSON {p, by, cap, models, snap} of each fall window
    (an event may be opened from it later, when a late result completes a run).
- Global (not hash-tagged: one Redis instance assumed; a cluster would need these
  sharded too):
  - `P:outbox`   hash alert_id -> alert facts JSON (until acknowledged).
  - `P:outbox:t` zset alert_id -> creation time in ms (to find unacknowledged alerts).
  - `P:pending`  zset member -> due time in ms (deadline, then lease expiry).
  - `P:pending:data` hash member -> encoded edge-fallback `result` bytes.
  Pending members are JSON `[stream_id, seq]`.

The event rules are documented in `streams.events.tracker` and mirrored in Python by
`streams.events.reference.ReferenceTracker`; unit tests run the Python model, integration
tests run the Lua against real Redis with the same cases and compare alert facts.

Failure modes: every Redis error is raised as `streams.core.errors.StateStoreError` (a
`DependencyError`: retry with backoff, then crash). Clients must be created with
`decode_responses=False` (fallback results are binary); otherwise `ValueError`.
Seqs must be integers in [0, 2**53) (Lua numbers are doubles).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
import redis.asyncio

from streams.core.errors import StateStoreError

__all__ = [
    "MAX_SEQ",
    "PENDING_ADD_LUA",
    "PENDING_DUE_LUA",
    "PENDING_REMOVE_LUA",
    "PendingEntry",
    "PendingLayout",
    "PendingOffloads",
    "check_binary_client",
    "key_prefix",
    "outbox_keys",
    "parse_due",
    "pending_member",
    "stream_keys",
]

#: Largest window seq the Lua scripts handle exactly (doubles).
MAX_SEQ = 2**53 - 1

T = TypeVar("T")


def key_prefix(prefix: str) -> str:
    """Normalize a configured prefix ("fw" or "fwtest:abc:") to have no trailing colon."""
    return prefix.rstrip(":")


def stream_keys(prefix: str, stream_id: str) -> list[str]:
    """Per-stream keys [meta, seqs, dec, falls] (hash tag = stream id)."""
    base = f"{key_prefix(prefix)}:s:{{{stream_id}}}"
    return [f"{base}:meta", f"{base}:seqs", f"{base}:dec", f"{base}:falls"]


def outbox_keys(prefix: str) -> list[str]:
    """[outbox hash, outbox time zset]."""
    base = key_prefix(prefix)
    return [f"{base}:outbox", f"{base}:outbox:t"]


def check_binary_client(client: Any) -> None:
    """`ValueError` unless `client` returns bytes (fallback results are binary)."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    if kwargs.get("decode_responses"):
        raise ValueError("Redis client must use decode_responses=False (binary values)")


def _check_seq(seq: int) -> None:
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"window seq must be an integer in [0, 2**53), got {seq!r}")


# --------------------------------------------------------------------------------------
# Pending offloads. KEYS: pending zset, pending data hash.
PENDING_ADD_LUA = r"""
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[3]) == 1 then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  return 1
end
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) end
return 0
"""
PENDING_REMOVE_LUA = r"""
local n = 0
for i = 1, #ARGV do
  n = n + redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('HDEL', KEYS[2], ARGV[i])
end
return n
"""
# ARGV: now_ms, lease_until_ms, limit. Returns {member1, data1, member2, data2, ...}.
PENDING_DUE_LUA = r"""
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, m in ipairs(members) do
  local data = redis.call('HGET', KEYS[2], m)
  if data then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[2], m)
    table.insert(out, m)
    table.insert(out, data)
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
return out
"""


@dataclass(frozen=True)
class PendingEntry:
    """A leased pending offload: publish `result_bytes`, then `remove(stream_id, window_seq)`."""

    stream_id: str
    window_seq: int
    result_bytes: bytes


def pending_member(stream_id: str, seq: int) -> str:
    """The pending zset member of a window: JSON `[stream_id, seq]`."""
    _check_seq(seq)
    return json.dumps([stream_id, seq], separators=(",", ":"))


def parse_due(reply: Sequence[Any]) -> list[PendingEntry]:
    """The entries of a `PENDING_DUE_LUA` reply."""
    entries: list[PendingEntry] = []
    for member, data in zip(reply[::2], reply[1::2], strict=True):
        stream_id, seq = json.loads(member)
        entries.append(PendingEntry(str(stream_id), int(seq), bytes(data)))
    return entries


class PendingLayout:
    """Keys and argument encoding of the pending store (for a client of any kind)."""

    def __init__(self, prefix: str, lease_s: float) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        base = key_prefix(prefix)
        self.keys = [f"{base}:pending", f"{base}:pending:data"]
        self.lease_ms = int(lease_s * 1000)

    def due_args(self, now_ns: int | None, limit: int) -> list[int]:
        now_ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
        return [now_ms, now_ms + self.lease_ms, max(1, int(limit))]


class PendingOffloads:
    """Windows offloaded to the cloud whose fallback result is held until the cloud answers.

    asyncio API over `redis.asyncio.Redis`. `add` before publishing the offload request;
    the cloud worker `remove`s after its result is delivered; the sweeper takes `due`
    entries (leased for `lease_s`, so a crash mid-publish re-offers them), publishes the
    stored fallback result, then `remove`s. All calls are atomic Lua.
    """

    def __init__(
        self, client: redis.asyncio.Redis, *, prefix: str = "fw", lease_s: float = 10.0
    ) -> None:
        check_binary_client(client)
        self._layout = PendingLayout(prefix, lease_s)
        self._client = client
        self._add = client.register_script(PENDING_ADD_LUA)
        self._remove = client.register_script(PENDING_REMOVE_LUA)
        self._due = client.register_script(PENDING_DUE_LUA)

    async def _call(self, what: str, run: Callable[[], Awaitable[T]]) -> T:
        try:
            return await run()
        except redis.RedisError as exc:
            raise StateStoreError(f"pending offloads {what} failed: {exc}") from exc

    async def add(self, stream_id: str, seq: int, deadline_ns: int, fallback_result: bytes) -> bool:
        """Register a pending window due at `deadline_ns`; False if it was already pending."""
        member = pending_member(stream_id, seq)
        args: list[str | int | bytes] = [member, deadline_ns // 1_000_000, fallback_result]
        reply = await self._call(
            "add",
            lambda: self._add(keys=self._layout.keys, args=args),
        )
        return bool(reply)

    async def remove(self, stream_id: str, seq: int) -> bool:
        """Forget a pending window (cloud answered, or fallback published); True if it was there."""
        return await self.remove_many([(stream_id, seq)]) > 0

    async def remove_many(self, windows: Sequence[tuple[str, int]]) -> int:
        """Forget several pending windows in one call; returns how many were pending."""
        if not windows:
            return 0
        members = [pending_member(s, q) for s, q in windows]
        reply = await self._call(
            "remove",
            lambda: self._remove(keys=self._layout.keys, args=members),
        )
        return int(reply)

    async def due(self, now_ns: int | None = None, *, limit: int = 256) -> list[PendingEntry]:
        """Lease and return up to `limit` entries whose deadline (or lease) has passed."""
        args = self._layout.due_args(now_ns, limit)
        reply = await self._call(
            "due",
            lambda: self._due(keys=self._layout.keys, args=args),
        )
        return parse_due(reply)

    async def count(self) -> int:
        """Number of pending windows (leased or not)."""
        return int(await self._call("count", lambda: self._client.zcard(self._layout.keys[0])))
