"""A synchronous pending-offload store for tests: the same keys and Lua as the workers' one.

`streams.events.state.PendingOffloads` is asyncio-only (the workers are async); tests that
drive the store from plain synchronous code (lease expiry, concurrent sweepers) use this
twin on a `redis.Redis` client. It shares `PendingLayout` and the `PENDING_*_LUA` scripts,
so it cannot drift from the production store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import redis

from streams.core.errors import StateStoreError
from streams.events.state import (
    PENDING_ADD_LUA,
    PENDING_DUE_LUA,
    PENDING_REMOVE_LUA,
    PendingEntry,
    PendingLayout,
    check_binary_client,
    parse_due,
    pending_member,
)

__all__ = ["SyncPendingOffloads"]

T = TypeVar("T")


class SyncPendingOffloads:
    """The same store as `PendingOffloads` for synchronous `redis.Redis` clients."""

    def __init__(self, client: redis.Redis, *, prefix: str = "fw", lease_s: float = 10.0) -> None:
        check_binary_client(client)
        self._layout = PendingLayout(prefix, lease_s)
        self._client = client
        self._add = client.register_script(PENDING_ADD_LUA)
        self._remove = client.register_script(PENDING_REMOVE_LUA)
        self._due = client.register_script(PENDING_DUE_LUA)

    def _call(self, what: str, run: Callable[[], T]) -> T:
        try:
            return run()
        except redis.RedisError as exc:
            raise StateStoreError(f"pending offloads {what} failed: {exc}") from exc

    def add(self, stream_id: str, seq: int, deadline_ns: int, fallback_result: bytes) -> bool:
        """See `PendingOffloads.add`."""
        args: list[str | int | bytes] = [
            pending_member(stream_id, seq),
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
        members = [pending_member(s, q) for s, q in windows]
        return int(self._call("remove", lambda: self._remove(keys=self._layout.keys, args=members)))

    def due(self, now_ns: int | None = None, *, limit: int = 256) -> list[PendingEntry]:
        """See `PendingOffloads.due`."""
        args = self._layout.due_args(now_ns, limit)
        return parse_due(self._call("due", lambda: self._due(keys=self._layout.keys, args=args)))

    def count(self) -> int:
        """See `PendingOffloads.count`."""
        return int(self._call("count", lambda: self._client.zcard(self._layout.keys[0])))
