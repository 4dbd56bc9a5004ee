"""Redis clients of the service, built from `Settings`, and riding out a Redis outage.

Inputs: `Settings` (`redis_url`, `redis_socket_timeout_s`, `redis_connect_timeout_s`,
`redis_health_check_interval_s`, `redis_ssl_cafile`, `redis_retry_max_backoff_s`).
Outputs:
- `async_redis(settings)` / `sync_redis(settings)`: the one way the workers, the sweeper,
  the cloud worker's pending remover and the dev tools open Redis. Binary replies
  (`decode_responses=False`), socket and connect timeouts (a blackholed or SIGSTOPped
  Redis raises `redis.TimeoutError` instead of hanging the event loop's task forever),
  a health check on idle connections, and the CA bundle for a `rediss://` URL.
- `RedisOutage`: `hold(what, op)` runs `op` and, while it raises a `StateStoreError`
  that means Redis is unavailable (`redis_unavailable`: connection refused or reset,
  timeout, LOADING its AOF after a restart...), retries it with exponential backoff capped at `redis_retry_max_backoff_s`, for as long
  as Redis stays away; `active` is True meanwhile (the workers' /readyz reports not
  ready). The caller's batch is held, so nothing is acknowledged and consumption pauses.
Guarantees: no client is created at import; every operation held is idempotent on our
side (Lua scripts keyed by window, HSETNX, acks by id), so a retry after a timeout whose
command did run on the server changes nothing.
Failure modes: none raised by `hold` while Redis is unavailable (it waits); a command
Redis refused (a script error) or any other exception from `op` propagates at once. Logs `redis_outage_started` / `redis_outage_ended` (with
its duration) once per outage, and a `redis_outage_retry` warning at most every 10 s;
`fallwatch_redis_outage_active{worker}` is 1 meanwhile and `fallwatch_redis_outages_total{worker}`
counts the outages (`worker` is `edge` or `cloud`: `ValueError` for another name).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis
import redis.asyncio

from streams.core.errors import StateStoreError
from streams.core.metrics import REDIS_OUTAGE_ACTIVE, REDIS_OUTAGES, check_label
from streams.core.settings import Settings

__all__ = [
    "RedisOutage",
    "async_redis",
    "redis_client_options",
    "redis_unavailable",
    "sync_redis",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

_FIRST_BACKOFF_S = 0.1
_LOG_EVERY_S = 10.0
#: Replies of a Redis that is there but cannot serve yet (loading its AOF, out of memory,
#: a replica without its primary): an outage, unlike a script or type error.
_UNAVAILABLE_REPLIES = ("LOADING", "OOM", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "READONLY")


def redis_unavailable(exc: BaseException) -> bool:
    """Whether `exc` (a `StateStoreError` or a redis-py error) means Redis is away or not
    serving yet (connection, timeout, loading...), as opposed to a command it refused."""
    cause = exc.__cause__ if isinstance(exc, StateStoreError) else exc
    if isinstance(cause, redis.ConnectionError | redis.TimeoutError):
        return True
    if isinstance(cause, redis.ResponseError):
        return str(cause).upper().startswith(_UNAVAILABLE_REPLIES)
    return isinstance(cause, OSError)


def redis_client_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments every Redis client gets (besides the URL)."""
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_socket_timeout_s,
        "socket_connect_timeout": settings.redis_connect_timeout_s,
        "health_check_interval": settings.redis_health_check_interval_s,
        "decode_responses": False,
    }
    if settings.redis_ssl_cafile is not None:
        options["ssl_ca_certs"] = str(settings.redis_ssl_cafile)
    return options


def async_redis(settings: Settings) -> redis.asyncio.Redis:
    """An asyncio client for `settings.redis_url` (connects on first use)."""
    url = settings.redis_url.get_secret_value()
    return redis.asyncio.Redis.from_url(url, **redis_client_options(settings))


def sync_redis(settings: Settings) -> redis.Redis:
    """A blocking client for `settings.redis_url` (dev tools and clean-up)."""
    return redis.Redis.from_url(
        settings.redis_url.get_secret_value(), **redis_client_options(settings)
    )


class RedisOutage:
    """Holds an operation through a Redis outage (see the module docstring)."""

    def __init__(self, max_backoff_s: float, *, worker: str) -> None:
        self._max_backoff_s = max_backoff_s
        self._worker = check_label("worker", worker)
        self._since: float | None = None
        self.outages = 0
        self._active_gauge = REDIS_OUTAGE_ACTIVE.labels(worker=worker)
        self._outages_counter = REDIS_OUTAGES.labels(worker=worker)

    @property
    def active(self) -> bool:
        """True from the first failed attempt until an operation succeeds again."""
        return self._since is not None

    async def hold(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        """`op()`, retried with capped backoff while it raises a `StateStoreError` that
        `redis_unavailable` accepts; any other error propagates."""
        delay = _FIRST_BACKOFF_S
        last_log = 0.0
        while True:
            try:
                value = await op()
            except StateStoreError as exc:
                if not redis_unavailable(exc):
                    raise
                now = time.monotonic()
                if self._since is None:
                    self._since, last_log = now, now
                    self.outages += 1
                    self._outages_counter.inc()
                    self._active_gauge.set(1)
                    log.error(
                        "redis_outage_started",
                        extra={"worker": self._worker, "op": what, "error": repr(exc)},
                    )
                elif now - last_log >= _LOG_EVERY_S:
                    last_log = now
                    log.warning(
                        "redis_outage_retry",
                        extra={
                            "worker": self._worker,
                            "op": what,
                            "down_s": round(now - self._since, 1),
                            "error": repr(exc),
                        },
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff_s)
                continue
            if self._since is not None:
                log.warning(
                    "redis_outage_ended",
                    extra={
                        "worker": self._worker,
                        "op": what,
                        "down_s": round(time.monotonic() - self._since, 1),
                    },
                )
                self._since = None
                self._active_gauge.set(0)
            return value
