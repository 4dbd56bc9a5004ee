"""Small aiohttp server for a worker's operational endpoints: /metrics, /livez, /readyz.

Used by the edge worker (Faust) and the cloud worker alike; it knows nothing about either.

Inputs: named readiness checks (``async () -> bool``), a host and port (port 0 = pick a free
one, see ``HealthServer.port``), a prometheus registry.
Outputs:
- ``GET /livez``  → 200 ``{"live": true}`` while the event loop answers (a blocked loop
  makes the probe time out, which is exactly what a liveness probe should see).
- ``GET /readyz`` → 200 when every check returns True within ``check_timeout_s``, else 503;
  the JSON body lists each check's result so an operator sees which dependency is down.
- ``GET /metrics`` → prometheus text exposition of the registry.
Guarantees: checks run concurrently and are bounded by a timeout; a check that raises or
times out counts as "not ready" (never as ready); ``mark_unready(reason)`` pins readiness to
503 for a worker that is shutting down or has lost a dependency for good.
Failure modes: ``HealthServerError`` from ``start()`` when the address cannot be bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from streams.core.errors import FallwatchError

__all__ = ["HealthCheck", "HealthServer", "HealthServerError"]

log = logging.getLogger(__name__)

HealthCheck = Callable[[], Awaitable[bool]]


class HealthServerError(FallwatchError):
    """Raised by ``HealthServer.start`` when the HTTP port cannot be bound (already in use,
    no permission). Operator: give each worker its own port (settings ``edge_http_port`` /
    ``cloud_http_port``) or stop the process holding it."""


class HealthServer:
    """Serve /livez, /readyz and /metrics on ``host:port`` until ``stop()``."""

    def __init__(
        self,
        checks: Mapping[str, HealthCheck],
        host: str,
        port: int,
        *,
        registry: CollectorRegistry = REGISTRY,
        check_timeout_s: float = 2.0,
    ) -> None:
        self._checks = dict(checks)
        self._host = host
        self._port = port
        self._registry = registry
        self._check_timeout_s = check_timeout_s
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None
        self._unready_reason: str | None = None

    @property
    def port(self) -> int:
        """The bound port (differs from the requested one when that was 0)."""
        if self._bound_port is None:
            raise RuntimeError("HealthServer is not started")
        return self._bound_port

    def mark_unready(self, reason: str) -> None:
        """Make /readyz answer 503 from now on (worker stopping or dependency lost)."""
        self._unready_reason = reason

    async def start(self) -> None:
        """Bind and start serving. Raises HealthServerError if the address is unavailable."""
        app = web.Application()
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise HealthServerError(f"cannot bind {self._host}:{self._port}: {exc}") from exc
        self._runner = runner
        addresses = runner.addresses
        self._bound_port = int(addresses[0][1]) if addresses else self._port
        log.info("health_server_started", extra={"host": self._host, "port": self._bound_port})

    async def stop(self) -> None:
        """Stop serving; idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def check_all(self) -> dict[str, bool]:
        """Run every check concurrently; a raise or a timeout counts as False."""
        names = list(self._checks)
        results = await asyncio.gather(
            *(self._run_check(name, self._checks[name]) for name in names)
        )
        return dict(zip(names, results, strict=True))

    async def _run_check(self, name: str, check: HealthCheck) -> bool:
        try:
            return bool(await asyncio.wait_for(check(), timeout=self._check_timeout_s))
        except Exception as exc:  # any failure of a probe means "not ready"
            log.warning("readiness_check_failed", extra={"check": name, "error": repr(exc)})
            return False

    async def _livez(self, _request: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def _readyz(self, _request: web.Request) -> web.Response:
        results = await self.check_all()
        ready = all(results.values()) and self._unready_reason is None
        body: dict[str, object] = {"ready": ready, "checks": results}
        if self._unready_reason is not None:
            body["reason"] = self._unready_reason
        return web.json_response(body, status=200 if ready else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        payload = generate_latest(self._registry)
        response = web.Response(body=payload)
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        response.charset = "utf-8"
        return response
