"""The cloud worker's view of the edge's pending-offload store: remove answered windows.

Inputs: `Settings` (Redis URL and key prefix). Outputs: `PendingRemover` (the protocol the
worker depends on) and `build_pending(settings)`, its Redis implementation on
`streams.events.state.PendingOffloads`: once the cloud's result is on the broker, the
window's pending entry is removed so the edge fallback sweeper does not answer it too.

Guarantees: no client is created at import; `build_pending` connects lazily (on first
use); `remove_many` removes a whole batch in one atomic Lua call.
Failure modes: Redis errors propagate from `remove_many`/`ping` (the worker retries).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from streams.core.settings import Settings

__all__ = ["PendingRemover", "RedisPendingRemover", "build_pending"]


class PendingRemover(Protocol):
    """The part of the pending-offload store the cloud worker uses."""

    async def remove_many(self, keys: Sequence[tuple[str, int]]) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class RedisPendingRemover:
    """`PendingRemover` on `streams.events.state.PendingOffloads` over an asyncio Redis client."""

    def __init__(self, settings: Settings) -> None:
        from redis.asyncio import Redis

        from streams.events.state import PendingOffloads

        self._redis = Redis.from_url(settings.redis_url.get_secret_value())
        self._pending = PendingOffloads(self._redis, prefix=settings.redis_prefix)

    async def remove_many(self, keys: Sequence[tuple[str, int]]) -> None:
        await self._pending.remove_many(keys)  # one atomic Lua call for the whole batch

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()


def build_pending(settings: Settings) -> PendingRemover:
    """The Redis-backed pending-offload store (connects lazily, on first use)."""
    return RedisPendingRemover(settings)
