"""Unit tests of streams.core.health.HealthServer (loopback only, port 0, no broker)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter

from streams.core.health import HealthCheck, HealthServer, HealthServerError


def _check(result: bool) -> HealthCheck:
    async def check() -> bool:
        return result

    return check


async def _raises() -> bool:
    raise ConnectionError("broker gone")


async def _hangs() -> bool:
    await asyncio.sleep(30)
    return True


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., HealthServer]]:
    servers: list[HealthServer] = []

    def make(checks: dict[str, HealthCheck], **kwargs: object) -> HealthServer:
        server = HealthServer(checks, "127.0.0.1", 0, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


async def _get(server: HealthServer, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{server.port}{path}") as response,
    ):
        return response.status, await response.text()


async def test_ready_only_when_every_check_passes(serve: Callable[..., HealthServer]) -> None:
    ok = serve({"kafka": _check(True), "redis": _check(True)})
    await ok.start()
    status, body = await _get(ok, "/readyz")
    assert status == 200 and json.loads(body)["checks"] == {"kafka": True, "redis": True}

    down = serve({"kafka": _check(True), "redis": _check(False)})
    await down.start()
    status, body = await _get(down, "/readyz")
    assert status == 503 and json.loads(body)["checks"]["redis"] is False


async def test_a_raising_or_hanging_check_means_not_ready(
    serve: Callable[..., HealthServer],
) -> None:
    server = serve({"kafka": _raises, "models": _hangs}, check_timeout_s=0.2)
    await server.start()
    status, body = await _get(server, "/readyz")
    assert status == 503
    assert json.loads(body)["checks"] == {"kafka": False, "models": False}


async def test_mark_unready_pins_503_and_liveness_stays_up(
    serve: Callable[..., HealthServer],
) -> None:
    server = serve({"models": _check(True)})
    await server.start()
    server.mark_unready("fatal in edge_agent")
    status, body = await _get(server, "/readyz")
    assert status == 503 and json.loads(body)["reason"] == "fatal in edge_agent"
    assert (await _get(server, "/livez"))[0] == 200


async def test_metrics_expose_the_given_registry(serve: Callable[..., HealthServer]) -> None:
    registry = CollectorRegistry()
    Counter("fallwatch_unit_probe_total", "probe", registry=registry).inc(3)
    server = serve({}, registry=registry)
    await server.start()
    status, text = await _get(server, "/metrics")
    assert status == 200
    assert "fallwatch_unit_probe_total 3.0" in text


async def test_port_in_use_is_a_clear_error(serve: Callable[..., HealthServer]) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        server = HealthServer({}, "127.0.0.1", held.getsockname()[1])
        with pytest.raises(HealthServerError, match="cannot bind"):
            await server.start()
