"""Redis state of the streams service: event-tracker storage and pending offloads, in Lua.

Every state transition is ONE Lua script call (redis-py `register_script`, EVALSHA with
automatic reload), so a crash or a concurrent worker never sees half an update.

Key layout (`P` = the configured prefix without a trailing colon):
- Per stream, hash-tagged `{stream_id}` so a cluster would co-locate them, TTL `ttl_s`
  refreshed on every write:
  - `P:s:{sid}:meta`  hash: `gen` (random token of this state generation), `n_events`,
    `max_seq`, `max_cap` (newest capture_end_ns), `open` ('1'/'0'), `ev_id`, `ev_first`,
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

The transition rules are documented and mirrored in Python in `streams.events.tracker`; unit
tests run the Python model, integration tests run this Lua against real Redis with the
same cases and compare alert facts.

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
    "TRACKER_APPLY_LUA",
    "PendingEntry",
    "PendingOffloads",
    "SyncPendingOffloads",
    "key_prefix",
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


def _check_binary_client(client: Any) -> None:
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    if kwargs.get("decode_responses"):
        raise ValueError("Redis client must use decode_responses=False (binary values)")


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _check_seq(seq: int) -> None:
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"window seq must be an integer in [0, 2**53), got {seq!r}")


# --------------------------------------------------------------------------------------
# Event tracker: one call per result. See streams/events/tracker.py for the rules in prose and
# the Python reference implementation (`ReferenceTracker`) that must behave identically.
# KEYS: meta, seqs, dec, falls, outbox, outbox_t
# ARGV: stream, seq, label, p_fall, decided_by, capture_end_ns, model_versions_json,
#       snapshot_b64, now_ms, resolve_after, cooldown, retention, ttl_s, gen_token,
#       alert_namespace_bytes(16)
# Returns: {status, late_cloud(0/1), outcome, alert_id1, facts1, alert_id2, facts2, ...}
TRACKER_APPLY_LUA = r"""
local meta, seqs, dec, falls, outbox, outbox_t = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local sid, seq_s = ARGV[1], ARGV[2]
local seq, label = tonumber(ARGV[2]), tonumber(ARGV[3])
local p, by, cap, models, snap, now = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local R, C, keep, ttl = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local NS = ARGV[15]

local function fmt(n) return string.format('%.0f', n) end

local function uuid5(name)
  local h = redis.sha1hex(NS .. name)
  local variant = string.format('%x', bit.bor(bit.band(tonumber(string.sub(h, 17, 17), 16), 3), 8))
  return string.sub(h, 1, 8) .. '-' .. string.sub(h, 9, 12) .. '-5' .. string.sub(h, 14, 16)
    .. '-' .. variant .. string.sub(h, 18, 20) .. '-' .. string.sub(h, 21, 32)
end

local function refresh_ttl()
  redis.call('EXPIRE', meta, ttl); redis.call('EXPIRE', seqs, ttl)
  redis.call('EXPIRE', dec, ttl); redis.call('EXPIRE', falls, ttl)
end

local gen = redis.call('HGET', meta, 'gen')
if not gen then
  gen = ARGV[14]
  redis.call('HSET', meta, 'gen', gen)
end
local max_seq = tonumber(redis.call('HGET', meta, 'max_seq'))
local max_cap = redis.call('HGET', meta, 'max_cap')
local prev = redis.call('HGET', dec, seq_s)
local status, late = 'applied', 0

-- A stale or colliding seq whose window is NEWER than anything seen means the producer
-- restarted its seq numbering: start a new state generation instead of ignoring it.
local stale = max_seq and seq < max_seq - keep
local collides = prev and select(3, string.match(prev, '^(%d)|([^|]*)|(.*)$')) ~= cap
if (stale or collides) and max_cap and tonumber(cap) > tonumber(max_cap) then
  redis.call('DEL', meta, seqs, dec, falls)
  gen = ARGV[14]
  redis.call('HSET', meta, 'gen', gen)
  max_seq, max_cap, prev, status = nil, nil, nil, 'restarted'
elseif stale then
  redis.call('HINCRBY', meta, 'stale', 1)
  refresh_ttl()
  return {'stale', 0, 'none'}
end

if prev then
  local plabel, pby = string.match(prev, '^(%d)|([^|]*)|')
  if by == 'cloud' and pby == 'edge-fallback' then late = 1 end
  if not (label == 1 and plabel == '0' and by == 'cloud' and pby == 'edge-fallback') then
    redis.call('HINCRBY', meta, 'duplicates', 1)
    refresh_ttl()
    return {'duplicate', late, 'none'}
  end
  status = 'upgraded'
end
redis.call('HSET', dec, seq_s, label .. '|' .. by .. '|' .. cap)
if (not max_cap) or tonumber(cap) > tonumber(max_cap) then
  redis.call('HSET', meta, 'max_cap', cap)
end
if label == 1 then
  redis.call('HSET', falls, seq_s,
    cjson.encode({p = p, by = by, cap = cap, models = models, snap = snap}))
end
if not prev then
  redis.call('ZADD', seqs, seq, seq_s)
  if (not max_seq) or seq > max_seq then
    max_seq = seq
    redis.call('HSET', meta, 'max_seq', seq_s)
    local floor = '(' .. fmt(max_seq - keep)
    local old = redis.call('ZRANGEBYSCORE', seqs, '-inf', floor)
    for i = 1, #old, 1000 do
      redis.call('HDEL', dec, unpack(old, i, math.min(i + 999, #old)))
      redis.call('HDEL', falls, unpack(old, i, math.min(i + 999, #old)))
    end
    if #old > 0 then redis.call('ZREMRANGEBYSCORE', seqs, '-inf', floor) end
  end
end

local result = {status, late, 'none'}
local extra = ''

local function emit(state, facts)
  facts.alert_id = uuid5(sid .. ':' .. facts.event_id .. ':' .. state)
  facts.state = state
  facts.stream_id = sid
  facts.created_ms = now
  local body = cjson.encode(facts)
  redis.call('HSET', outbox, facts.alert_id, body)
  redis.call('ZADD', outbox_t, tonumber(now), facts.alert_id)
  table.insert(result, facts.alert_id)
  table.insert(result, body)
end

local function fall_details(s_str)
  local raw = redis.call('HGET', falls, s_str)
  if raw then return cjson.decode(raw) end
  return {p = '0', by = '', cap = '0', models = '{}', snap = ''}
end

local function open_event(s_str)
  local d = fall_details(s_str)
  local ev_id = gen .. '-' .. redis.call('HINCRBY', meta, 'n_events', 1)
  redis.call('HSET', meta, 'open', '1', 'ev_id', ev_id, 'ev_first', s_str, 'ev_last', s_str,
    'ev_by', d.by, 'ev_models', d.models)
  emit('detected', {event_id = ev_id, first = s_str, last = s_str, confidence = d.p,
    decided_by = d.by, model_versions = d.models, capture_end_ns = d.cap, snapshot_b64 = d.snap,
    windows = {s_str}})
end

-- Re-derive the open event from the retained decisions from its first fall on: its falls
-- until the first run of R consecutive decided no_falls after the last of them. A complete
-- run resolves it; a fall after the run beyond the cooldown opens the next event.
local function settle()
  while redis.call('HGET', meta, 'open') == '1' do
    local first_s = redis.call('HGET', meta, 'ev_first')
    local members = redis.call('ZRANGEBYSCORE', seqs, first_s, '+inf')
    local labels = {}
    for i = 1, #members, 1000 do
      local chunk = redis.call('HMGET', dec, unpack(members, i, math.min(i + 999, #members)))
      for j = 1, #chunk do labels[i + j - 1] = chunk[j] end
    end
    local last_s, run, prev_s, ev_falls, stop = nil, 0, nil, {}, nil
    for j = 1, #members do
      local s, v = tonumber(members[j]), labels[j]
      if v and string.sub(v, 1, 1) == '1' then
        last_s, run = members[j], 0
        table.insert(ev_falls, members[j])
      elseif v then
        if prev_s ~= nil and s == prev_s + 1 and run > 0 then run = run + 1 else run = 1 end
        if run >= R then stop = j; break end
      end
      prev_s = s
    end
    last_s = last_s or first_s
    redis.call('HSET', meta, 'ev_last', last_s)
    if not stop then return end
    local peak_s, peak = '0', nil
    for _, fs in ipairs(ev_falls) do
      local d = fall_details(fs)
      if peak == nil or tonumber(d.p) > peak then peak, peak_s = tonumber(d.p), d.p end
    end
    local f = redis.call('HMGET', meta, 'ev_id', 'ev_by', 'ev_models')
    emit('resolved', {event_id = f[1], first = first_s, last = last_s, confidence = peak_s,
      decided_by = f[2], model_versions = f[3], capture_end_ns = fall_details(first_s).cap,
      snapshot_b64 = '', windows = ev_falls})
    local cooldown = tonumber(last_s) + C
    redis.call('HSET', meta, 'open', '0', 'cooldown', fmt(cooldown))
    extra = extra .. '+resolved'
    for j = stop + 1, #members do
      local v = labels[j]
      if v and string.sub(v, 1, 1) == '1' and tonumber(members[j]) > cooldown then
        open_event(members[j])
        extra = extra .. '+opened'
        break
      end
    end
  end
end

if label == 1 then
  local cd = redis.call('HGET', meta, 'cooldown')
  if cd and seq <= tonumber(cd) then
    redis.call('HINCRBY', meta, 'cooldown_ignored', 1)
    result[3] = 'in_cooldown'
  elseif redis.call('HGET', meta, 'open') == '1' then
    if seq < tonumber(redis.call('HGET', meta, 'ev_first')) then
      redis.call('HSET', meta, 'ev_first', seq_s)
    end
    result[3] = 'extended'
  else
    open_event(seq_s)
    result[3] = 'opened'
  end
end
settle()
result[3] = result[3] .. extra
refresh_ttl()
return result
"""

# --------------------------------------------------------------------------------------
# Pending offloads. KEYS: pending zset, pending data hash.
_PENDING_ADD_LUA = r"""
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[3]) == 1 then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  return 1
end
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) end
return 0
"""
_PENDING_REMOVE_LUA = r"""
local n = 0
for i = 1, #ARGV do
  n = n + redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('HDEL', KEYS[2], ARGV[i])
end
return n
"""
# ARGV: now_ms, lease_until_ms, limit. Returns {member1, data1, member2, data2, ...}.
_PENDING_DUE_LUA = r"""
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


def _member(stream_id: str, seq: int) -> str:
    _check_seq(seq)
    return json.dumps([stream_id, seq], separators=(",", ":"))


def _parse_due(reply: Sequence[Any]) -> list[PendingEntry]:
    entries: list[PendingEntry] = []
    for member, data in zip(reply[::2], reply[1::2], strict=True):
        stream_id, seq = json.loads(member)
        entries.append(PendingEntry(str(stream_id), int(seq), bytes(data)))
    return entries


class _PendingLayout:
    """Keys, arguments and defaults shared by the async and sync pending stores."""

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
        _check_binary_client(client)
        self._layout = _PendingLayout(prefix, lease_s)
        self._client = client
        self._add = client.register_script(_PENDING_ADD_LUA)
        self._remove = client.register_script(_PENDING_REMOVE_LUA)
        self._due = client.register_script(_PENDING_DUE_LUA)

    async def _call(self, what: str, run: Callable[[], Awaitable[T]]) -> T:
        try:
            return await run()
        except redis.RedisError as exc:
            raise StateStoreError(f"pending offloads {what} failed: {exc}") from exc

    async def add(self, stream_id: str, seq: int, deadline_ns: int, fallback_result: bytes) -> bool:
        """Register a pending window due at `deadline_ns`; False if it was already pending."""
        member = _member(stream_id, seq)
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
        members = [_member(s, q) for s, q in windows]
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
        return _parse_due(reply)

    async def count(self) -> int:
        """Number of pending windows (leased or not)."""
        return int(await self._call("count", lambda: self._client.zcard(self._layout.keys[0])))


class SyncPendingOffloads:
    """The same store as `PendingOffloads` for synchronous `redis.Redis` clients."""

    def __init__(self, client: redis.Redis, *, prefix: str = "fw", lease_s: float = 10.0) -> None:
        _check_binary_client(client)
        self._layout = _PendingLayout(prefix, lease_s)
        self._client = client
        self._add = client.register_script(_PENDING_ADD_LUA)
        self._remove = client.register_script(_PENDING_REMOVE_LUA)
        self._due = client.register_script(_PENDING_DUE_LUA)

    def _call(self, what: str, run: Callable[[], T]) -> T:
        try:
            return run()
        except redis.RedisError as exc:
            raise StateStoreError(f"pending offloads {what} failed: {exc}") from exc

    def add(self, stream_id: str, seq: int, deadline_ns: int, fallback_result: bytes) -> bool:
        """See `PendingOffloads.add`."""
        args: list[str | int | bytes] = [
            _member(stream_id, seq),
            deadline_ns // 1_000_000,
            fallback_result,
        ]
        return bool(self._call("add", lambda: self._add(keys=self._layout.keys, args=args)))

    def remove(self, stream_id: str, seq: int) -> bool:
        """See `PendingOffloads.remove`."""
        return self.remove_many([(stream_id, seq)]) > 0

    def remove_many(self, windows: Sequence[tuple[str, int]]) -> int:
        """See `PendingOffloads.remove_many`."""
        if not windows:
            return 0
        members = [_member(s, q) for s, q in windows]
        return int(self._call("remove", lambda: self._remove(keys=self._layout.keys, args=members)))

    def due(self, now_ns: int | None = None, *, limit: int = 256) -> list[PendingEntry]:
        """See `PendingOffloads.due`."""
        args = self._layout.due_args(now_ns, limit)
        return _parse_due(self._call("due", lambda: self._due(keys=self._layout.keys, args=args)))

    def count(self) -> int:
        """See `PendingOffloads.count`."""
        return int(self._call("count", lambda: self._client.zcard(self._layout.keys[0])))
