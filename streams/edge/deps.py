"""The edge worker's dependencies as explicit objects, each with non-optional fields.

Inputs: ``Settings``, a producer source (the Faust app's producer), the loaded models, the
Redis stores, the edge metrics and the Redis-outage hold.
Outputs (what the processors take in their constructors, and tests build with fakes):
- ``LoadedModels``: edge model + switcher + threshold + model versions (``load`` loads and
  cross-checks them; run it in the inference thread);
- ``RedisState``: ``PendingOffloads`` + ``EventTracker`` on one Redis client;
- ``Publisher``: ``publish`` (queue one record, return its delivery future), ``deliver``
  (wait for a batch's futures), ``dead_letter`` (queue an input unchanged with
  ``fallwatch.dlq.*`` headers);
- ``Retrier``: ``with_retries`` (bounded retries of a ``DependencyError``, an unbounded
  hold of a Redis outage);
- ``EdgeDeps``: all of the above plus settings, metrics, crash points and the inference
  executor, built by ``EdgeRuntime`` when its ``start()`` completes.

Guarantees: ``Publisher.publish`` maps a record over the producer's size limit to
``MessageTooLargeError`` (poison) and every other refusal to ``PublishError``
(dependency); ``deliver`` raises ``PublishError`` when any record was not acknowledged.
``Retrier.with_retries`` retries a ``DependencyError`` ``RETRY_ATTEMPTS`` times with
exponential backoff, and holds a Redis outage (``StateStoreError`` that says Redis is
unavailable) with capped backoff for as long as it lasts (``RedisOutage``).
Failure modes: ``ModelLoadError`` from ``LoadedModels.load``; ``PublishError`` and
``MessageTooLargeError`` from the publisher; the last ``DependencyError`` after the retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from streams.core.crash_points import CrashPoints
from streams.core.errors import DependencyError, MessageTooLargeError, StateStoreError
from streams.core.settings import Settings
from streams.edge.metrics import EdgeMetrics
from streams.events.client import RedisOutage, redis_unavailable
from streams.kafka.deadletter import dead_letter_headers, merge_headers, poison_reason

if TYPE_CHECKING:
    from models.runtime.onnx_models import EdgeModel, Switcher
    from streams.edge.inference import InboundMessage
    from streams.events.state import PendingOffloads
    from streams.events.tracker import EventTracker

__all__ = [
    "RETRY_ATTEMPTS",
    "EdgeDeps",
    "Headers",
    "LoadedModels",
    "PublishError",
    "Publisher",
    "RecordProducer",
    "RedisState",
    "Retrier",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Attempts (with exponential backoff from 0.1 s: ~3 s in total) before a dependency
#: failure becomes fatal for the worker.
RETRY_ATTEMPTS = 5
_RETRY_BASE_S = 0.1
Headers = list[tuple[str, bytes]]


class PublishError(DependencyError):
    """Raised by ``Publisher.publish``/``deliver`` when Kafka did not take or acknowledge a
    record (after aiokafka's own idempotent retries). Operator: check broker health and
    ISR; the worker restarts and replays the unacknowledged input."""


@dataclass(frozen=True, slots=True)
class LoadedModels:
    """The edge model and switcher of one worker, checked to belong together."""

    edge: EdgeModel
    switcher: Switcher
    threshold: float
    versions: Mapping[str, str]

    @classmethod
    def load(cls, settings: Settings) -> LoadedModels:
        """Load both models (blocking: run in the inference thread); the switcher must be
        distilled for this edge; the threshold is the setting, else the switcher's own."""
        from models.runtime.onnx_models import EdgeModel, Switcher

        threads = settings.inference_threads
        edge = EdgeModel.load(
            settings.edge_model_path, threads=threads, file_sha256=settings.edge_model_sha256
        )
        switcher = Switcher.load(
            settings.switcher_model_path,
            threads=threads,
            file_sha256=settings.switcher_model_sha256,
        )
        switcher.check_edge(edge)
        configured = settings.switcher_threshold
        return cls(
            edge=edge,
            switcher=switcher,
            threshold=switcher.threshold if configured is None else configured,
            versions={
                "edge": f"{edge.meta.name}@{edge.meta.version}",
                "switcher": f"{switcher.meta.name}@{switcher.meta.version}",
            },
        )


@dataclass(frozen=True, slots=True)
class RedisState:
    """The edge worker's state in Redis: pending offloads and the event tracker."""

    pending: PendingOffloads
    tracker: EventTracker


class RecordProducer(Protocol):
    """What the publisher needs of Faust's producer."""

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Headers | None,
    ) -> Awaitable[Any]: ...


class Publisher:
    """Queues records on the idempotent producer and waits for their acknowledgements."""

    def __init__(
        self, settings: Settings, producer: Callable[[], RecordProducer], metrics: EdgeMetrics
    ) -> None:
        self._settings = settings
        self._producer = producer
        self._metrics = metrics

    async def publish(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers | None = None
    ) -> Awaitable[Any]:
        """Queue one record; returns its delivery future.

        ``MessageTooLargeError`` (poison) for a record over the producer's size limit,
        ``PublishError`` (dependency) for any other refusal."""
        from faust.exceptions import ProducerSendError

        try:
            return await self._producer().send(
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
        self._metrics.dead_letter(reason)
        return await self.publish(
            self._settings.topic_deadletter, message.key, message.value, headers
        )


class Retrier:
    """Retries of the operations on Kafka and Redis (see the module docstring)."""

    def __init__(self, outage: RedisOutage) -> None:
        self.outage = outage

    async def with_retries(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        """Run ``op``; retry a ``DependencyError`` with backoff ``RETRY_ATTEMPTS`` times,
        a ``StateStoreError`` (Redis) for as long as Redis is away (``RedisOutage``)."""
        try:
            return await self.bounded(what, op, hold_redis=True)
        except StateStoreError as exc:
            if not redis_unavailable(exc):
                raise
            return await self.outage.hold(what, op)

    async def bounded(
        self, what: str, op: Callable[[], Awaitable[T]], *, hold_redis: bool = False
    ) -> T:
        """Run ``op`` with at most ``RETRY_ATTEMPTS`` attempts; with ``hold_redis`` a Redis
        outage is raised at once (for ``with_retries`` to hold)."""
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


@dataclass(frozen=True, slots=True)
class EdgeDeps:
    """Everything the edge worker's processors are built from, once the runtime started."""

    settings: Settings
    models: LoadedModels
    state: RedisState
    publisher: Publisher
    retrier: Retrier
    metrics: EdgeMetrics
    crash_points: CrashPoints
    executor: Executor
