"""The cloud worker's view of the edge's pending-offload store: remove answered windows.

Inputs: `Settings` (Redis URL and key prefix). Outputs: `PendingRemover` (the protocol the
worker depends on) and `build_pending(settings)`, its Redis implementation on
`streams.events.state.PendingOffloads`: once the cloud's result is on the broker, the
window's pending entry is removed so the edge fallback sweeper does not answer it too.

Guarantees: no client is created at import; `build_pending` connects lazily (on first
use), with the service's socket timeouts, health check and TLS CA
(`streams.events.client.async_redis`); `remove_many` removes a whole batch in one atomic
Lua call. While Redis is unavailable (down, restarting, loading its AOF, blackholed)
`remove_many` holds the batch and retries with capped backoff until Redis answers
(`RedisOutage`), and `ping` reports False, so the worker pauses (nothing committed,
/readyz not ready) and goes on afterwards instead of exiting.
Failure modes: other Redis errors (a refused command) propagate from `remove_many`
(the worker retries a few times, then stops); `ping` raises when Redis does not answer.
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
        from streams.events.client import RedisOutage, async_redis
        from streams.events.state import PendingOffloads

        self._redis = async_redis(settings)
        self._pending = PendingOffloads(self._redis, prefix=settings.redis_prefix)
        self.outage = RedisOutage(settings.redis_retry_max_backoff_s, worker="cloud")

    async def remove_many(self, keys: Sequence[tuple[str, int]]) -> None:
        pending = self._pending
        # One atomic Lua call for the whole batch, held through an outage (idempotent).
        await self.outage.hold("pending_remove", lambda: pending.remove_many(keys))

    async def ping(self) -> bool:
        if self.outage.active:
            return False  # a batch is being held until Redis answers it
        return bool(await self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()


def build_pending(settings: Settings) -> PendingRemover:
    """The Redis-backed pending-offload store (connects lazily, on first use)."""
    return RedisPendingRemover(settings)
