"""Events agent: results → per-stream event logic (Redis) → CloudEvents alerts; outbox republish.

Inputs: raw records of the results topic (Avro ``result`` bytes, key = stream id) — edge,
cloud and edge-fallback decisions, possibly duplicated or out of order.
Outputs: alert JSON (CloudEvents 1.0, ``schemas/alert.v1.json``) on the alerts topic keyed
by stream id; undecodable results on the dead-letter topic (original bytes and headers).

Guarantees: ``EventTracker.apply`` is one atomic Lua call per result that both updates the
stream's state and writes any new alert into an outbox; we publish the outbox alerts, wait
for the broker's ack, then ``EventTracker.ack`` them, then ack the input offsets. A crash
anywhere replays the result (a no-op for the tracker: the decision is already recorded)
and the outbox republisher re-offers alerts that were committed but never acknowledged —
with the same CloudEvents id, so alert consumers can dedupe. Exactly one "detected" alert
per fall in effect, whatever the redeliveries.
Failure modes: Redis/Kafka past the bounded retries stop the worker (fatal, no ack).
Metrics: fallwatch_alerts_total{state}, end-to-end seconds path="alert", dead letters.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import schemas
from streams.core.errors import (
    DependencyError,
    MessageSchemaError,
    MessageTooLargeError,
    PoisonMessageError,
)
from streams.edge.agent import batch_wait_s
from streams.edge.inference import InboundMessage

if TYPE_CHECKING:
    from faust.types import StreamT

    from streams.edge.runtime import EdgeRuntime

__all__ = ["ResultsProcessor", "make_events_agent", "make_outbox_republisher"]

log = logging.getLogger(__name__)

#: Outbox alerts older than this and still unacknowledged are re-published.
OUTBOX_STALE_S = 5.0


class ResultsProcessor:
    """Applies a batch of result records to the event logic and publishes the alerts."""

    def __init__(self, runtime: EdgeRuntime) -> None:
        self.rt = runtime

    async def process(self, messages: Sequence[InboundMessage]) -> None:
        rt = self.rt
        tracker = rt.tracker
        if tracker is None:
            raise RuntimeError("edge runtime not started")
        dead: list[Awaitable[Any]] = []
        for message in messages:
            try:
                result = self._decode(message)
                # Value-rule violations (label not 0/1, unknown decided_by...) raise
                # MessageSchemaError here too: poison, not a reason to stop.
                outcome = await rt.with_retries(
                    "tracker_apply", partial(tracker.apply_result, result)
                )
            except PoisonMessageError as exc:
                dead.append(await rt.dead_letter(message, exc, worker="events"))
                continue
            if outcome.late_cloud:
                rt.metrics.late_cloud_result()
            if outcome.alerts:  # committed to the outbox, not yet published
                rt.crash_points.reach("events_after_commit")  # test-only (kill -9 e2e test)
            await self._publish_alerts(outcome.alerts)
        await rt.deliver(dead)

    def _decode(self, message: InboundMessage) -> dict[str, Any]:
        if message.value is None:
            raise MessageSchemaError("record has no value (tombstone)")
        try:
            return schemas.decode("result", message.value)
        except schemas.RecordTooLargeError as exc:
            raise MessageTooLargeError(str(exc)) from exc
        except schemas.SchemaError as exc:
            raise MessageSchemaError(str(exc)) from exc

    async def _publish_alerts(self, alerts: Sequence[Any]) -> None:
        if not alerts:
            return
        rt = self.rt
        tracker = rt.tracker
        assert tracker is not None
        futures = [
            await rt.publish(rt.settings.topic_alerts, alert.stream_id.encode(), alert.payload)
            for alert in alerts
        ]
        await rt.deliver(futures)
        ids = [alert.alert_id for alert in alerts]
        await rt.with_retries("tracker_ack", lambda: tracker.ack(ids))
        for alert in alerts:
            rt.metrics.alert(alert.state, getattr(alert, "capture_end_ns", None))
        log.info("alerts_published", extra={"count": len(alerts), "alert_ids": ids})

    async def republish_outbox(self) -> int:
        """Publish outbox alerts committed but never acknowledged (crash in between)."""
        tracker = self.rt.tracker
        if tracker is None:
            return 0
        stale = await self.rt.with_retries(
            "tracker_outbox", lambda: tracker.unacked(older_than_s=OUTBOX_STALE_S)
        )
        if stale:
            log.warning("outbox_republish", extra={"count": len(stale)})
            await self._publish_alerts(stale)
        return len(stale)


def make_events_agent(runtime: EdgeRuntime) -> Callable[[StreamT[bytes]], Awaitable[None]]:
    """The Faust agent function for the results topic, bound to ``runtime``."""
    processor = ResultsProcessor(runtime)
    settings = runtime.settings

    async def events(stream: StreamT[bytes]) -> None:
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
    """The Faust timer function that re-offers unacknowledged outbox alerts."""
    processor = ResultsProcessor(runtime)

    async def outbox_republisher() -> None:
        if runtime.fatal_error is not None or runtime.tracker is None:
            return
        try:
            await processor.republish_outbox()
        except DependencyError as exc:
            await runtime.fatal(exc, where="outbox_republisher")
        except Exception:  # keep ticking: the outbox entries stay and are retried
            log.exception("outbox_republish_failed")

    return outbox_republisher
