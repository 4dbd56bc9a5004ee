"""Events agent: results → per-stream event logic (Redis) → CloudEvents alerts; outbox republish.

Inputs: raw records of the results topic (Avro ``result`` bytes, key = stream id) — edge,
cloud and edge-fallback decisions, possibly duplicated or out of order — read as typed
``schemas.records.Result`` (``parse_result``).
Outputs: alerts (``schemas.alerts.Alert``, CloudEvents 1.0 JSON, ``schemas/alert.v1.json``)
on the alerts topic keyed by stream id; results that do not parse (or break a record rule:
reason ``invalid``) on the dead-letter topic (original bytes and headers).
Dependencies: ``ResultsProcessor`` takes settings, the ``EventTracker``, the publisher, the
retrier, the metrics and the crash points (``streams.edge.deps``); the agent and the timer
build it from the started runtime's ``EdgeDeps``.

Guarantees: ``EventTracker.apply`` is one atomic Lua call per result that both updates the
stream's state and writes any new alert into an outbox; we publish the outbox alerts, wait
for the broker's ack, then ``EventTracker.ack`` them, then ack the input offsets. A crash
anywhere replays the result (a no-op for the tracker: the decision is already recorded)
and the outbox republisher re-offers alerts that were committed but never acknowledged —
with the same CloudEvents id, so alert consumers can dedupe. Exactly one "detected" alert
per fall in effect, whatever the redeliveries. The outbox cannot be blocked: an alert that
can never be published (its CloudEvent over the alerts topic's record limit, refused by the
producer or broker as too large, or an outbox entry that does not build) is dead-lettered
(`fallwatch.alert_id` header; the value is the CloudEvent when it fits, else empty) and
acknowledged, and the alerts behind it go out.
Failure modes: Redis/Kafka past the bounded retries stop the worker (fatal, no ack).
Metrics: fallwatch_alerts_total{state}, end-to-end seconds path="alert", dead letters.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from aiokafka.errors import MessageSizeTooLargeError

import schemas
from schemas.records import RecordValueError, Result, parse_result
from streams.core.crash_points import CrashPoints
from streams.core.errors import (
    DependencyError,
    MessageSchemaError,
    MessageTooLargeError,
    MessageValueError,
    PoisonMessageError,
)
from streams.edge.agent import batch_wait_s
from streams.edge.deps import PublishError
from streams.edge.inference import InboundMessage
from streams.events.alerts import AlertTooLargeError, PendingAlert
from streams.kafka.deadletter import dead_letter_headers, merge_headers, poison_reason
from streams.kafka.topics import max_message_bytes

if TYPE_CHECKING:
    from faust.types import StreamT

    from streams.core.settings import Settings
    from streams.edge.deps import EdgeDeps, Publisher, Retrier
    from streams.edge.metrics import EdgeMetrics
    from streams.edge.runtime import EdgeRuntime
    from streams.events.tracker import EventTracker

__all__ = [
    "ResultsProcessor",
    "make_events_agent",
    "make_outbox_republisher",
    "parse_result_message",
]

log = logging.getLogger(__name__)

#: Outbox alerts older than this and still unacknowledged are re-published.
OUTBOX_STALE_S = 5.0
#: Kafka record overhead (batch and record headers, our headers) kept free under the limit.
_RECORD_OVERHEAD_BYTES = 4096


@dataclass(frozen=True)
class _Unpublishable:
    """An outbox entry that will never reach the alerts topic, and why."""

    alert_id: str
    stream_id: str
    body: bytes
    error: BaseException

    @classmethod
    def of(cls, alert: PendingAlert, error: BaseException) -> _Unpublishable:
        return cls(alert.alert_id, alert.stream_id, alert.payload, error)


def _too_large(exc: BaseException) -> bool:
    """Whether `exc` (or an error it wraps: faust's ProducerSendError, our PublishError)
    says the record is too large, which no retry can fix."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, MessageSizeTooLargeError | AlertTooLargeError):
            return True
        seen = seen.__cause__
    return False


class ResultsProcessor:
    """Applies a batch of result records to the event logic and publishes the alerts."""

    def __init__(
        self,
        settings: Settings,
        tracker: EventTracker,
        publisher: Publisher,
        retrier: Retrier,
        metrics: EdgeMetrics,
        *,
        crash_points: CrashPoints | None = None,
    ) -> None:
        self.settings = settings
        self.tracker = tracker
        self.publisher = publisher
        self.retrier = retrier
        self.metrics = metrics
        self.crash_points = crash_points or CrashPoints()

    @classmethod
    def from_deps(cls, deps: EdgeDeps) -> ResultsProcessor:
        """The processor of a started edge worker."""
        return cls(
            deps.settings,
            deps.state.tracker,
            deps.publisher,
            deps.retrier,
            deps.metrics,
            crash_points=deps.crash_points,
        )

    async def process(self, messages: Sequence[InboundMessage]) -> None:
        tracker = self.tracker
        dead: list[Awaitable[Any]] = []
        for message in messages:
            try:
                result = parse_result_message(message)
                # A p_fall outside [0, 1] raises MessageSchemaError here: poison, not a
                # reason to stop.
                outcome = await self.retrier.with_retries(
                    "tracker_apply", partial(tracker.apply_result, result)
                )
            except PoisonMessageError as exc:
                dead.append(await self.publisher.dead_letter(message, exc, worker="events"))
                continue
            if outcome.late_cloud:
                self.metrics.late_cloud_result()
            if outcome.alerts:  # committed to the outbox, not yet published
                self.crash_points.reach("events_after_commit")  # test-only (kill -9 e2e test)
            await self._publish_alerts(outcome.alerts)
        await self.publisher.deliver(dead)

    async def _publish_alerts(
        self, alerts: Sequence[PendingAlert], broken: Sequence[_Unpublishable] = ()
    ) -> None:
        """Publish `alerts`, dead-letter those that can never be published (and `broken`),
        then acknowledge all of them in the outbox. A transient Kafka error raises."""
        if not alerts and not broken:
            return
        publisher, tracker = self.publisher, self.tracker
        limit = max_message_bytes(self.settings) - _RECORD_OVERHEAD_BYTES
        unpublishable = list(broken)
        sent: list[tuple[PendingAlert, Awaitable[Any]]] = []
        for alert in alerts:
            key = alert.stream_id.encode()
            if len(alert.payload) + len(key) > limit:
                error = AlertTooLargeError(f"alert of {len(alert.payload)} bytes > {limit}")
                unpublishable.append(_Unpublishable.of(alert, error))
                continue
            try:
                sent.append(
                    (alert, await publisher.publish(self.settings.topic_alerts, key, alert.payload))
                )
            except Exception as exc:
                if not _too_large(exc):
                    raise
                unpublishable.append(_Unpublishable.of(alert, exc))
        results = await asyncio.gather(*(f for _, f in sent), return_exceptions=True)
        published: list[PendingAlert] = []
        for (alert, _), outcome in zip(sent, results, strict=True):
            if isinstance(outcome, BaseException):
                if not _too_large(outcome):
                    raise PublishError(f"alert {alert.alert_id} not delivered: {outcome!r}") from (
                        outcome
                    )
                unpublishable.append(_Unpublishable.of(alert, outcome))
            else:
                published.append(alert)
        await publisher.deliver([await self._dead_letter_alert(u, limit) for u in unpublishable])
        ids = [a.alert_id for a in published] + [u.alert_id for u in unpublishable]
        await self.retrier.with_retries("tracker_ack", lambda: tracker.ack(ids))
        for alert in published:
            self.metrics.alert(alert.state, alert.capture_end_ns)
        if published:
            log.info(
                "alerts_published",
                extra={"count": len(published), "alert_ids": [a.alert_id for a in published]},
            )

    async def _dead_letter_alert(self, entry: _Unpublishable, limit: int) -> Awaitable[Any]:
        settings = self.settings
        reason = poison_reason(entry.error)
        headers = merge_headers(
            [("fallwatch.alert_id", entry.alert_id.encode())],
            dead_letter_headers(
                source_topic=settings.topic_alerts,
                partition=-1,
                offset=-1,
                error=entry.error,
                worker="events",
            ),
        )
        log.error(
            "alert_dead_lettered",
            extra={
                "alert_id": entry.alert_id,
                "stream_id": entry.stream_id,
                "reason": reason,
                "bytes": len(entry.body),
                "error_class": type(entry.error).__name__,
            },
        )
        self.metrics.dead_letter(reason)
        value = entry.body if len(entry.body) <= limit // 2 else b""
        key = entry.stream_id.encode()[: limit // 4] or None
        return await self.publisher.publish(settings.topic_deadletter, key, value, headers)

    async def republish_outbox(self) -> int:
        """Publish outbox alerts committed but never acknowledged (crash in between);
        dead-letter and drop the entries that cannot become alerts."""
        tracker = self.tracker
        batch = await self.retrier.with_retries(
            "tracker_outbox", lambda: tracker.unacked_entries(older_than_s=OUTBOX_STALE_S)
        )
        broken = [_Unpublishable(b.alert_id, "", b.body, b.error) for b in batch.broken]
        if batch.alerts or broken:
            log.warning(
                "outbox_republish", extra={"count": len(batch.alerts), "broken": len(broken)}
            )
            await self._publish_alerts(batch.alerts, broken)
        if batch.orphans:
            orphans = batch.orphans
            await self.retrier.with_retries("tracker_ack", lambda: tracker.ack(orphans))
        return len(batch.alerts)


def parse_result_message(message: InboundMessage) -> Result:
    """The typed ``Result`` of a results record; ``PoisonMessageError`` when it is not one
    (tombstone, over the size cap, not a framed result, or a value outside the record's
    rules: ``MessageValueError``, reason ``invalid``)."""
    if message.value is None:
        raise MessageSchemaError("record has no value (tombstone)")
    try:
        return parse_result(message.value)
    except schemas.RecordTooLargeError as exc:
        raise MessageTooLargeError(str(exc)) from exc
    except RecordValueError as exc:
        raise MessageValueError(str(exc)) from exc
    except schemas.SchemaError as exc:
        raise MessageSchemaError(str(exc)) from exc


def make_events_agent(runtime: EdgeRuntime) -> Callable[[StreamT[bytes]], Awaitable[None]]:
    """The Faust agent function for the results topic; its processor is built from
    ``runtime.deps`` when the agent starts (after ``EdgeRuntime.start``)."""
    settings = runtime.settings

    async def events(stream: StreamT[bytes]) -> None:
        processor = ResultsProcessor.from_deps(runtime.deps)
        # Explicit acks after the side effects, as in the edge agent (faust-streaming #315).
        # StreamT omits noack_take; the agent always gets a faust.Stream, which has it.
        async for batch in stream.noack_take(  # type: ignore[attr-defined]
            settings.edge_batch_max, within=batch_wait_s(settings)
        ):
            taken = list(batch)
            try:
                await processor.process([InboundMessage.from_event(e) for e in taken])
            except DependencyError as exc:
                await runtime.fatal(exc, where="events_agent")
            except Exception as exc:  # a bug: never ack what we did not handle
                await runtime.fatal(exc, where="events_agent")
            for event in taken:
                await stream.ack(event)

    return events


def make_outbox_republisher(runtime: EdgeRuntime) -> Callable[[], Awaitable[None]]:
    """The Faust timer function that re-offers unacknowledged outbox alerts (with the
    started runtime's dependencies; nothing before ``start()`` or after a fatal error)."""

    async def outbox_republisher() -> None:
        if runtime.fatal_error is not None or not runtime.started:
            return
        try:
            await ResultsProcessor.from_deps(runtime.deps).republish_outbox()
        except DependencyError as exc:
            await runtime.fatal(exc, where="outbox_republisher")
        except Exception:  # keep ticking: the outbox entries stay and are retried
            log.exception("outbox_republish_failed")

    return outbox_republisher
