"""Redis clients from settings, and riding out a Redis outage (issue 19 item 4)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis
from pydantic import ValidationError

from streams.cloud.pending import RedisPendingRemover
from streams.core.errors import StateStoreError
from streams.core.settings import Settings
from streams.events.client import (
    RedisOutage,
    async_redis,
    redis_client_options,
    redis_unavailable,
    sync_redis,
)


def _down(error: Exception) -> StateStoreError:
    try:
        raise error
    except Exception as exc:
        try:
            raise StateStoreError(f"failed: {exc}") from exc
        except StateStoreError as wrapped:
            return wrapped


def test_every_client_gets_timeouts_health_check_and_binary_replies() -> None:
    settings = Settings(
        redis_socket_timeout_s=1.5, redis_connect_timeout_s=0.5, redis_health_check_interval_s=7
    )
    for client in (async_redis(settings), sync_redis(settings)):
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 1.5
        assert kwargs["socket_connect_timeout"] == 0.5
        assert kwargs["health_check_interval"] == 7
        assert kwargs["decode_responses"] is False
        assert "ssl_ca_certs" not in kwargs


def test_ssl_cafile_is_passed_to_every_client_with_rediss(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked before connecting")
    settings = Settings(redis_url="rediss://:pw@127.0.0.1:16380/0", redis_ssl_cafile=ca)
    assert redis_client_options(settings)["ssl_ca_certs"] == str(ca)
    for client in (async_redis(settings), sync_redis(settings)):
        assert client.connection_pool.connection_kwargs["ssl_ca_certs"] == str(ca)


def test_ssl_cafile_is_refused_with_a_plain_url_or_a_missing_file(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(ValidationError, match="rediss://"):
        Settings(redis_url="redis://127.0.0.1:16379/0", redis_ssl_cafile=ca)
    with pytest.raises(ValidationError, match="not a file"):
        Settings(redis_url="rediss://127.0.0.1:16380/0", redis_ssl_cafile=tmp_path / "nope.pem")


def test_ssl_cafile_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    monkeypatch.setenv("FALLWATCH_REDIS_URL", "rediss://127.0.0.1:16380/0")
    monkeypatch.setenv("FALLWATCH_REDIS_SSL_CAFILE", str(ca))
    assert Settings().redis_ssl_cafile == ca


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (redis.ConnectionError("refused"), True),
        (redis.TimeoutError("timed out"), True),
        (redis.BusyLoadingError("LOADING Redis is loading the dataset in memory"), True),
        (redis.ResponseError("OOM command not allowed"), True),
        (redis.ResponseError("ERR Error running script"), False),
        (redis.ResponseError("WRONGTYPE Operation against a key"), False),
    ],
)
def test_outage_means_redis_away_not_a_refused_command(error: Exception, outage: bool) -> None:
    assert redis_unavailable(_down(error)) is outage


async def test_hold_retries_through_an_outage_and_reports_it() -> None:
    outage = RedisOutage(0.01, worker="edge")
    calls: list[bool] = []
    seen_active: list[bool] = []

    async def op() -> str:
        seen_active.append(outage.active)
        calls.append(True)
        if len(calls) <= 4:
            raise _down(redis.ConnectionError("Connection refused"))
        return "done"

    assert await outage.hold("op", op) == "done"
    assert len(calls) == 5
    assert seen_active == [False, True, True, True, True]
    assert not outage.active and outage.outages == 1


async def test_hold_does_not_swallow_a_refused_command() -> None:
    outage = RedisOutage(0.01, worker="edge")

    async def op() -> None:
        raise _down(redis.ResponseError("ERR Error running script"))

    with pytest.raises(StateStoreError):
        await outage.hold("op", op)
    assert not outage.active


async def test_cloud_pending_remover_holds_the_batch_and_is_not_ready_meanwhile() -> None:
    remover = RedisPendingRemover(
        Settings(redis_url="redis://127.0.0.1:1/0", redis_retry_max_backoff_s=0.01)
    )
    failures = 3
    removed: list[list[tuple[str, int]]] = []

    class FlakyPending:
        async def remove_many(self, keys: list[tuple[str, int]]) -> int:
            nonlocal failures
            if failures:
                failures -= 1
                raise _down(redis.TimeoutError("Timeout reading from socket"))
            removed.append(list(keys))
            return len(keys)

    remover._pending = FlakyPending()  # type: ignore[assignment]  # the Redis part, faked
    task = asyncio.create_task(remover.remove_many([("cam", 1)]))
    while not remover.outage.active and not task.done():
        await asyncio.sleep(0)
    assert await remover.ping() is False  # not ready while the batch is held
    await task
    assert removed == [[("cam", 1)]]
    assert not remover.outage.active
    await remover.close()


async def test_edge_runtime_holds_redis_errors_and_bounds_the_others() -> None:
    from streams.edge.runtime import RETRY_ATTEMPTS, EdgeRuntime

    runtime = EdgeRuntime(Settings(redis_retry_max_backoff_s=0.01), app=object())  # type: ignore[arg-type]  # no Faust needed
    runtime.redis = async_redis(Settings(redis_url="redis://127.0.0.1:1/0"))
    attempts = 0
    readiness: list[bool] = []

    async def through_an_outage() -> str:
        nonlocal attempts
        attempts += 1
        if attempts > 1:
            readiness.append(await runtime._redis_ready())
        if attempts <= RETRY_ATTEMPTS + 3:  # longer than the bounded retries
            raise _down(redis.ConnectionError("Connection refused"))
        return "applied"

    assert await runtime.retrier.with_retries("tracker_apply", through_an_outage) == "applied"
    assert readiness and not any(readiness)
    assert not runtime.redis_outage.active

    refused = 0

    async def refused_command() -> None:
        nonlocal refused
        refused += 1
        raise _down(redis.ResponseError("ERR Error running script"))

    with pytest.raises(StateStoreError):
        await runtime.retrier.with_retries("tracker_apply", refused_command)
    assert refused == RETRY_ATTEMPTS
    await runtime.redis.aclose()
    runtime.executor.shutdown(wait=False)
