"""Everything the edge worker's agents and timers share at run time, built at start-up.

Inputs: ``Settings`` and the Faust app (for its producer).
Holds: the edge model and switcher (loaded in the inference thread, ``inference_threads``
onnxruntime threads), the single-thread inference executor, the Redis client with
``PendingOffloads`` and ``EventTracker``, the health server (/metrics, /livez, /readyz), and
the publish/dead-letter/retry/fatal helpers the agents use.

Guarantees:
- ``start()`` finishes before any agent consumes (called from ``EdgeApp.on_start``); a model
  that fails to load or a Redis that stays down past the retries raises, and the worker
  does not start.
- ``publish`` returns the delivery future; callers ``deliver`` all of a batch's futures
  before acknowledging its input offsets (at-least-once: nothing is acked before it is on
  the broker).
- ``with_retries`` retries a ``DependencyError`` with exponential backoff, a bounded number
  of times; after that ``fatal`` marks readiness failed, records the error for
  ``run_edge_worker`` and stops the worker WITHOUT acknowledging the batch in flight
  (docs/ARCHITECTURE.md, "Known traps": never let an exception escape an agent — faust
  would skip the offset). A Redis error (``StateStoreError``) is not bounded: the agent or
  timer holds its batch and retries with capped backoff (``streams.events.client.
  RedisOutage``) while /readyz reports Redis not ready, and goes on when Redis is back; so
  a Redis outage or restart pauses consumption instead of stopping the worker.
Failure modes: ``ModelLoadError`` and ``StateStoreError`` (Redis down at start-up past the
bounded retries) from ``start``; ``PublishError`` from ``deliver``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import warnings
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from streams.core.crash_points import CrashPoints
from streams.core.errors import DependencyError, MessageTooLargeError, StateStoreError
from streams.core.health import HealthServer
from streams.core.settings import Settings
from streams.edge.metrics import EdgeMetrics
from streams.events.client import RedisOutage, redis_unavailable
from streams.kafka.deadletter import dead_letter_headers, merge_headers, poison_reason
from streams.kafka.security import aiokafka_security
from streams.kafka.topics import service_topics

if TYPE_CHECKING:
    import faust
    from redis.asyncio import Redis

    from models.runtime.onnx_models import EdgeModel, Switcher
    from streams.edge.inference import InboundMessage
    from streams.events.state import PendingOffloads
    from streams.events.tracker import EventTracker

__all__ = ["RETRY_ATTEMPTS", "EdgeRuntime", "PublishError"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Attempts (with exponential backoff from 0.1 s: ~3 s in total) before a dependency
#: failure becomes fatal for the worker.
RETRY_ATTEMPTS = 5
_RETRY_BASE_S = 0.1
Headers = list[tuple[str, bytes]]


def _inference_executor() -> ThreadPoolExecutor:
    # One thread: onnxruntime sessions are used from one thread at a time, and the
    # intra-op threads (settings.inference_threads) are the only parallelism we want.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-inference")


class PublishError(DependencyError):
    """Raised by ``EdgeRuntime.deliver`` when Kafka did not acknowledge a produced record
    (after aiokafka's own idempotent retries). Operator: check broker health and ISR; the
    worker restarts and replays the unacknowledged input."""


class EdgeRuntime:
    """Shared run-time state of one edge worker process (see module docstring)."""

    def __init__(self, settings: Settings, app: faust.App) -> None:
        self.settings = settings
        self.app = app
        self.executor = _inference_executor()
        self.edge: EdgeModel | None = None
        self.switcher: Switcher | None = None
        self.threshold = 1.0
        self.model_versions: dict[str, str] = {}
        self.redis: Redis | None = None
        self.pending: PendingOffloads | None = None
        self.tracker: EventTracker | None = None
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
        self._worker: faust.Worker | None = None
        self._kafka_probe: AIOKafkaClient | None = None
        self._started = False

    # ---- lifecycle -------------------------------------------------------------------

    def attach_worker(self, worker: faust.Worker) -> None:
        """Let ``fatal`` record its error on the worker so the process exits non-zero."""
        self._worker = worker

    async def start(self) -> None:
        """Load models, connect Redis, start the health server (idempotent)."""
        if self._started:
            return
        if getattr(self.executor, "_shutdown", False):  # restarted after stop()
            self.executor = _inference_executor()
        self.metrics.preinitialize()
        try:
            await self.health.start()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.executor, self._load_models)
            await self._connect_state()
        except Exception as exc:
            # Recorded so run_edge_worker reports the cause; the worker does not start.
            self.fatal_error = exc
            self.health.mark_unready(f"start-up failed: {type(exc).__name__}")
            log.critical("edge_runtime_start_failed", extra={"error": repr(exc)}, exc_info=exc)
            raise
        self._started = True
        log.info(
            "edge_runtime_started",
            extra={
                "threshold": self.threshold,
                "model_versions": self.model_versions,
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
        self._started = False

    def _load_models(self) -> None:
        from models.runtime.onnx_models import EdgeModel, Switcher

        s = self.settings
        threads = s.inference_threads
        self.edge = EdgeModel.load(
            s.edge_model_path, threads=threads, file_sha256=s.edge_model_sha256
        )
        self.switcher = Switcher.load(
            s.switcher_model_path, threads=threads, file_sha256=s.switcher_model_sha256
        )
        self.switcher.check_edge(self.edge)
        configured = self.settings.switcher_threshold
        self.threshold = self.switcher.threshold if configured is None else configured
        self.model_versions = {
            "edge": f"{self.edge.meta.name}@{self.edge.meta.version}",
            "switcher": f"{self.switcher.meta.name}@{self.switcher.meta.version}",
        }

    async def _connect_state(self) -> None:
        from streams.events.client import async_redis
        from streams.events.state import PendingOffloads
        from streams.events.tracker import EventTracker

        # Timeouts turn a hung Redis into StateStoreError (held and retried), not a stall.
        self.redis = async_redis(self.settings)
        redis = self.redis
        # Start-up stays bounded: a worker that never reached Redis does not start.
        await self._bounded_retries("redis_ping", lambda: self._ping(redis))
        self.pending = PendingOffloads(redis, prefix=self.settings.redis_prefix)
        self.tracker = EventTracker(redis, settings=self.settings)

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
        return self.edge is not None and self.switcher is not None

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

    # ---- side effects ----------------------------------------------------------------

    async def publish(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers | None = None
    ) -> Awaitable[Any]:
        """Queue one record on the idempotent producer; returns its delivery future.

        ``MessageTooLargeError`` (poison) for a record over the producer's size limit,
        ``PublishError`` (dependency) for any other refusal."""
        from faust.exceptions import ProducerSendError

        try:
            return await self.app.producer.send(
                topic, key=key, value=value, partition=None, timestamp=None, headers=headers
            )
        except (KafkaError, ProducerSendError) as exc:
            # Faust wraps aiokafka's KafkaError in ProducerSendError (not a KafkaError): a
            # record over the size limit is the input's fault (callers check sizes first with
            # check_record_size; this is the backstop), anything else is the broker's.
            cause = exc.__cause__ if isinstance(exc, ProducerSendError) else exc
            if isinstance(cause, MessageSizeTooLargeError):
                raise MessageTooLargeError(f"record for {topic} too large: {cause!r}") from exc
            raise PublishError(f"cannot queue a record for {topic}: {exc!r}") from exc

    async def deliver(self, futures: Iterable[Awaitable[Any]]) -> None:
        """Wait until every queued record is acknowledged by the broker (acks=all)."""
        pending = list(futures)
        if not pending:
            return
        results = await asyncio.gather(*pending, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise PublishError(
                f"{len(errors)} of {len(pending)} records not delivered: {errors[0]!r}"
            ) from errors[0]

    async def with_retries(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        """Run ``op``; retry a ``DependencyError`` with backoff ``RETRY_ATTEMPTS`` times,
        a ``StateStoreError`` (Redis) for as long as Redis is away (``RedisOutage``)."""
        try:
            return await self._bounded_retries(what, op, hold_redis=True)
        except StateStoreError as exc:
            if not redis_unavailable(exc):
                raise
            return await self.redis_outage.hold(what, op)

    async def _bounded_retries(
        self, what: str, op: Callable[[], Awaitable[T]], *, hold_redis: bool = False
    ) -> T:
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            try:
                return await op()
            except StateStoreError as exc:
                if hold_redis and redis_unavailable(exc):
                    raise  # straight to the outage hold, which logs and backs off
                if attempt == RETRY_ATTEMPTS:
                    raise
                await asyncio.sleep(_RETRY_BASE_S * 2 ** (attempt - 1))
            except DependencyError as exc:
                if attempt == RETRY_ATTEMPTS:
                    raise
                delay = _RETRY_BASE_S * 2 ** (attempt - 1)
                log.warning(
                    "dependency_retry",
                    extra={"op": what, "attempt": attempt, "delay_s": delay, "error": repr(exc)},
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

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

    async def dead_letter(
        self, message: InboundMessage, exc: BaseException, *, worker: str
    ) -> Awaitable[Any]:
        """Queue ``message`` unchanged (key, value, its own headers) on the dead-letter topic
        with ``fallwatch.dlq.*`` headers saying where it came from and why; returns the
        delivery future."""
        reason = poison_reason(exc)
        headers = merge_headers(
            message.headers,
            dead_letter_headers(
                source_topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                error=exc,
                worker=worker,
            ),
        )
        log.warning(
            "dead_letter",
            extra={
                "worker": worker,
                "reason": reason,
                "source_topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
                "error_class": type(exc).__name__,
                "error": str(exc)[:200],
            },
        )
        self.metrics.dead_letter(reason)
        return await self.publish(
            self.settings.topic_deadletter, message.key, message.value, headers
        )
