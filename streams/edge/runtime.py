"""The edge worker's lifecycle: starts its dependencies and hands them out as ``EdgeDeps``.

Inputs: ``Settings`` and the Faust app (for its producer).
Owns: the single-thread inference executor, the health server (/metrics, /livez,
/readyz), the Redis client, the metrics, and the ``Publisher`` and ``Retrier``
(``streams.edge.deps``). ``start()`` loads the models (``LoadedModels``, in the inference
thread, ``inference_threads`` onnxruntime threads) and connects Redis (``RedisState``),
then builds ``deps``: one frozen ``EdgeDeps`` with non-optional fields, from which
``streams.edge.app`` builds the processors (each takes exactly the parts it uses).

Guarantees:
- ``start()`` finishes before any agent consumes (called from ``EdgeApp.on_start``); a model
  that fails to load or a Redis that stays down past the retries raises, and the worker
  does not start. ``deps`` raises ``RuntimeError`` before that.
- ``Publisher.publish`` returns the delivery future; callers ``deliver`` all of a batch's
  futures before acknowledging its input offsets (at-least-once: nothing is acked before
  it is on the broker).
- ``Retrier.with_retries`` retries a ``DependencyError`` with exponential backoff, a bounded
  number of times; after that ``fatal`` marks readiness failed, records the error for
  ``run_edge_worker`` and stops the worker WITHOUT acknowledging the batch in flight
  (docs/ARCHITECTURE.md, "Known traps": never let an exception escape an agent — faust
  would skip the offset). A Redis error (``StateStoreError``) is not bounded: the agent or
  timer holds its batch and retries with capped backoff (``streams.events.client.
  RedisOutage``) while /readyz reports Redis not ready, and goes on when Redis is back; so
  a Redis outage or restart pauses consumption instead of stopping the worker.
Failure modes: ``ModelLoadError`` and ``StateStoreError`` (Redis down at start-up past the
bounded retries) from ``start``; ``PublishError`` from ``Publisher.deliver``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from aiokafka.client import AIOKafkaClient

from streams.core.crash_points import CrashPoints
from streams.core.health import HealthServer
from streams.core.settings import Settings
from streams.edge.deps import (
    RETRY_ATTEMPTS,
    EdgeDeps,
    LoadedModels,
    Publisher,
    PublishError,
    RedisState,
    Retrier,
)
from streams.edge.metrics import EdgeMetrics
from streams.events.client import RedisOutage
from streams.kafka.security import aiokafka_security
from streams.kafka.topics import service_topics

if TYPE_CHECKING:
    import faust
    from redis.asyncio import Redis

__all__ = ["RETRY_ATTEMPTS", "EdgeRuntime", "PublishError"]

log = logging.getLogger(__name__)


def _inference_executor() -> ThreadPoolExecutor:
    # One thread: onnxruntime sessions are used from one thread at a time, and the
    # intra-op threads (settings.inference_threads) are the only parallelism we want.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-inference")


class EdgeRuntime:
    """Shared run-time state of one edge worker process (see module docstring)."""

    def __init__(self, settings: Settings, app: faust.App) -> None:
        self.settings = settings
        self.app = app
        self.executor = _inference_executor()
        self.redis: Redis | None = None
        self._models: LoadedModels | None = None
        self._deps: EdgeDeps | None = None
        self.health = HealthServer(
            {
                "kafka": self._kafka_ready,
                "consumer_group": self._group_ready,
                "redis": self._redis_ready,
                "models": self._models_ready,
            },
            settings.http_host,
            settings.edge_http_port,
        )
        self.metrics = EdgeMetrics()
        self.crash_points = CrashPoints.from_settings(settings)  # test-only; inert by default
        self.fatal_error: BaseException | None = None
        self.redis_outage = RedisOutage(settings.redis_retry_max_backoff_s, worker="edge")
        self.retrier = Retrier(self.redis_outage)
        # Read per record: Faust creates its producer lazily.
        self.publisher = Publisher(settings, lambda: self.app.producer, self.metrics)
        self._worker: faust.Worker | None = None
        self._kafka_probe: AIOKafkaClient | None = None

    @property
    def deps(self) -> EdgeDeps:
        """The started worker's dependencies; ``RuntimeError`` before ``start()`` completed."""
        if self._deps is None:
            raise RuntimeError("edge runtime not started")
        return self._deps

    @property
    def started(self) -> bool:
        """True once ``start()`` completed (and until ``stop()``)."""
        return self._deps is not None

    # ---- lifecycle -------------------------------------------------------------------

    def attach_worker(self, worker: faust.Worker) -> None:
        """Let ``fatal`` record its error on the worker so the process exits non-zero."""
        self._worker = worker

    async def start(self) -> None:
        """Load models, connect Redis, start the health server (idempotent)."""
        if self._deps is not None:
            return
        if getattr(self.executor, "_shutdown", False):  # restarted after stop()
            self.executor = _inference_executor()
        self.metrics.preinitialize()
        try:
            await self.health.start()
            loop = asyncio.get_running_loop()
            self._models = models = await loop.run_in_executor(
                self.executor, LoadedModels.load, self.settings
            )
            state = await self._connect_state()
        except Exception as exc:
            # Recorded so run_edge_worker reports the cause; the worker does not start.
            self.fatal_error = exc
            self.health.mark_unready(f"start-up failed: {type(exc).__name__}")
            log.critical("edge_runtime_start_failed", extra={"error": repr(exc)}, exc_info=exc)
            raise
        self._deps = EdgeDeps(
            settings=self.settings,
            models=models,
            state=state,
            publisher=self.publisher,
            retrier=self.retrier,
            metrics=self.metrics,
            crash_points=self.crash_points,
            executor=self.executor,
        )
        log.info(
            "edge_runtime_started",
            extra={
                "threshold": models.threshold,
                "model_versions": dict(models.versions),
                "health_port": self.health.port,
            },
        )

    async def stop(self) -> None:
        """Release clients and threads; safe to call more than once."""
        self.health.mark_unready("stopping")
        await self.health.stop()
        probe, self._kafka_probe = self._kafka_probe, None
        if probe is not None:
            await probe.close()
        client, self.redis = self.redis, None
        if client is not None:
            await client.aclose()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self._deps = None

    async def _connect_state(self) -> RedisState:
        from streams.events.client import async_redis
        from streams.events.state import PendingOffloads
        from streams.events.tracker import EventTracker

        # Timeouts turn a hung Redis into StateStoreError (held and retried), not a stall.
        self.redis = async_redis(self.settings)
        redis = self.redis
        # Start-up stays bounded: a worker that never reached Redis does not start.
        await self.retrier.bounded("redis_ping", lambda: self._ping(redis))
        return RedisState(
            pending=PendingOffloads(redis, prefix=self.settings.redis_prefix),
            tracker=EventTracker(redis, settings=self.settings),
        )

    @staticmethod
    async def _ping(redis: Redis) -> bool:
        from redis.exceptions import RedisError

        from streams.core.errors import StateStoreError

        try:
            return bool(await redis.ping())
        except RedisError as exc:
            raise StateStoreError(f"redis ping failed: {exc}") from exc

    # ---- readiness -------------------------------------------------------------------

    async def _models_ready(self) -> bool:
        return self._models is not None

    async def _redis_ready(self) -> bool:
        if self.redis is None or self.redis_outage.active:
            return False  # an operation is being held until Redis answers it
        return await self._ping(self.redis)

    async def _group_ready(self) -> bool:
        """Joined the edge consumer group (one rebalance completed) and not rebalancing now.

        Metadata alone says the broker is up, not that this worker consumes: until the
        first assignment, and during every rebalance, it processes nothing. An empty
        assignment (more workers than partitions) still counts as ready: a standby."""
        return self.app.rebalancing_count > 0 and not self.app.rebalancing

    async def _kafka_ready(self) -> bool:
        """Broker metadata reachable and every service topic present."""
        if self._kafka_probe is None:
            probe = AIOKafkaClient(
                bootstrap_servers=self.settings.kafka_bootstrap,
                client_id=f"{self.settings.edge_group}-readiness",
                **aiokafka_security(self.settings),
            )
            try:
                await probe.bootstrap()
            except Exception:
                await probe.close()
                raise
            self._kafka_probe = probe
        metadata = await self._kafka_probe.fetch_all_metadata()
        topics = metadata.topics()
        return bool(metadata.brokers()) and all(t in topics for t in service_topics(self.settings))

    # ---- stopping ---------------------------------------------------------------------

    async def fatal(self, exc: BaseException, *, where: str) -> None:
        """Stop the worker because of ``exc``; never returns while the worker runs.

        Readiness turns 503 at once; the error is recorded so ``run_edge_worker`` raises
        and the process exits non-zero. The caller's batch is NOT acknowledged: the agent
        waits here until the shutdown cancels it, so the windows are replayed after restart.
        """
        if self.fatal_error is None:
            self.fatal_error = exc
            self.health.mark_unready(f"fatal in {where}: {type(exc).__name__}")
            log.critical("worker_fatal", extra={"where": where, "error": repr(exc)}, exc_info=exc)
            if self._worker is not None:
                self._worker.crash_reason = exc
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # faust warns about late reconfiguration
                # Otherwise faust's stop waits for this batch's acks — forever, as the batch
                # is deliberately never acked; only acked offsets get committed either way.
                self.app.conf.stream_wait_empty = False
            # A signal gives the same orderly shutdown as an operator's SIGTERM: consumer
            # stopped, only acknowledged offsets committed, producer flushed.
            os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.Event().wait()
