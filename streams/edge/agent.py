"""Edge agent: frame windows → decode → edge model + switcher → route → results / offloads.

Inputs: raw records of the frames topic (Avro ``frame_window`` bytes, key = stream id),
consumed in batches of up to ``edge_batch_max`` records or ``edge_batch_wait_s`` seconds.
Outputs, per window (routing rule in ``streams.edge.routing``):
- confident: a ``result`` (decided_by="edge") on the results topic; if audit-sampled also an
  ``offload_request`` (reason="audit") on the offload topic;
- uncertain: ``PendingOffloads.add`` of the edge-fallback result FIRST, then an
  ``offload_request`` (reason="uncertain") — a crash in between leaves a pending entry the
  sweeper falls back on, never a lost window;
- bad input (tombstone, size cap, schema, a value outside the record rules of
  ``schemas.records`` — stream id, seq, times, fps, dimensions —, a window that would decode
  to more than ``max_window_decoded_bytes``, undecodable payload, a window the model's
  preprocessing rejects, an output record too large for the producer) → the dead-letter
  topic: original key, value and headers plus ``fallwatch.dlq.*`` headers (with ``reason``);
  the batch goes on with the other windows. A window's outputs are all encoded and
  size-checked before its first side effect, so it ends as its outputs or one dead letter.
A small JPEG of the middle frame (≤ ``snapshot_max_bytes``) rides on every fall result.

Guarantees: decoding, inference, routing and JPEG encoding (``streams.edge.inference``) run
in the single inference thread (the event loop keeps heartbeating); a batch's input offsets are acknowledged only
after every record it produced is acknowledged by the broker; replays produce the same
records (routing is deterministic, Redis writes are idempotent). One batch is pipelined:
the next batch is inferred while the previous one's records are being acknowledged; records
are queued on the producer in input order, so per-stream (per-partition) order holds.
Dependencies: ``EdgeBatchProcessor`` takes exactly what it uses — settings, the loaded
models (``streams.edge.deps.LoadedModels``), a pending store, the publisher, the retrier,
the metrics, the inference executor and the crash points; ``make_edge_agent`` builds it
from the started runtime's ``EdgeDeps``, tests build it with fakes.
Failure modes: a Kafka or Redis failure past the bounded retries, or a model that fails on
every window of a batch, stops the worker through ``EdgeRuntime.fatal`` without acking.
Metrics: windows in, windows routed by path, batch size, stage seconds (decode, edge,
switcher, route; publish = queueing until the broker acknowledged), end-to-end seconds for
edge results, dead letters by reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, Protocol

import schemas
from schemas.records import EdgeOutput, OffloadRequest, Result, build_result
from streams.core.crash_points import CrashPoints
from streams.core.errors import MessageSchemaError, PoisonMessageError
from streams.edge.inference import (
    BatchOutcome,
    InboundMessage,
    RoutedWindow,
    compute_batch,
)
from streams.kafka.topics import check_record_size, max_message_bytes

if TYPE_CHECKING:
    from faust.types import EventT, StreamT

    from streams.core.settings import Settings
    from streams.edge.deps import EdgeDeps, LoadedModels, Publisher, Retrier
    from streams.edge.metrics import EdgeMetrics
    from streams.edge.runtime import EdgeRuntime

__all__ = [
    "MIN_BATCH_WAIT_S",
    "EdgeBatchProcessor",
    "PendingWriter",
    "batch_wait_s",
    "build_offload",
    "edge_result",
    "make_edge_agent",
]

log = logging.getLogger(__name__)

_NS = 1_000_000_000
#: Smallest batch wait handed to faust (see ``batch_wait_s``).
MIN_BATCH_WAIT_S = 0.001


def edge_result(
    window: RoutedWindow,
    *,
    decided_by: str,
    model_versions: dict[str, str],
    latencies_s: dict[str, float],
) -> Result:
    """The ``result`` of the edge's own answer for ``window`` (``schemas.records.build_result``)."""
    return build_result(
        window.window,
        p_fall=window.p_fall,
        label=window.decision.label,
        decided_by=decided_by,
        switcher_score=window.switcher_score,
        model_versions=model_versions,
        latencies_s=latencies_s,
        produced_at_ns=time.time_ns(),
        snapshot_jpeg=window.snapshot_jpeg,
    )


def build_offload(
    window: RoutedWindow,
    *,
    reason: str,
    threshold: float,
    model_versions: dict[str, str],
    offloaded_at_ns: int,
    deadline_ns: int,
) -> OffloadRequest:
    """The ``offload_request`` for ``window`` (the original window, unchanged)."""
    return OffloadRequest(
        window=window.window,
        edge=EdgeOutput(
            p_fall=window.p_fall,
            switcher_score=window.switcher_score,
            threshold=threshold,
            embedding=None if window.embedding is None else tuple(window.embedding),
        ),
        reason=reason,
        model_versions=dict(model_versions),
        offloaded_at_ns=offloaded_at_ns,
        deadline_ns=deadline_ns,
    )


class PendingWriter(Protocol):
    """What the edge agent needs of ``streams.events.state.PendingOffloads``."""

    async def add(
        self, stream_id: str, seq: int, deadline_ns: int, fallback_result: bytes
    ) -> bool: ...


class EdgeBatchProcessor:
    """Turns a batch of frames records into delivered side effects (see module docstring)."""

    def __init__(
        self,
        settings: Settings,
        models: LoadedModels,
        pending: PendingWriter,
        publisher: Publisher,
        retrier: Retrier,
        metrics: EdgeMetrics,
        *,
        executor: Executor,
        crash_points: CrashPoints | None = None,
    ) -> None:
        self.settings = settings
        self.models = models
        self.pending = pending
        self.publisher = publisher
        self.retrier = retrier
        self.metrics = metrics
        self.executor = executor
        self.crash_points = crash_points or CrashPoints()

    @classmethod
    def from_deps(cls, deps: EdgeDeps) -> EdgeBatchProcessor:
        """The processor of a started edge worker."""
        return cls(
            deps.settings,
            deps.models,
            deps.state.pending,
            deps.publisher,
            deps.retrier,
            deps.metrics,
            executor=deps.executor,
            crash_points=deps.crash_points,
        )

    async def compute(self, messages: Sequence[InboundMessage]) -> BatchOutcome:
        """decode → infer → route (``streams.edge.inference``) in the inference thread."""
        models, settings = self.models, self.settings
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor,
            lambda: compute_batch(
                messages,
                edge=models.edge,
                switcher=models.switcher,
                threshold=models.threshold,
                settings=settings,
            ),
        )

    async def publish(self, outcome: BatchOutcome) -> list[Awaitable[Any]]:
        """Queue every side effect of the batch (dead letters, pending entries, results,
        offload requests) in order; returns the delivery futures."""
        publisher = self.publisher
        futures: list[Awaitable[Any]] = []
        for message, error in outcome.poisoned:
            futures.append(await publisher.dead_letter(message, error, worker="edge"))
        latencies = {
            "decode": outcome.decode_s,
            "edge": outcome.edge_s,
            "switcher": outcome.switcher_s,
        }
        for window in outcome.routed:
            try:
                futures.extend(await self._publish_window(window, latencies))
            except PoisonMessageError as exc:  # an output of this window cannot be written
                futures.append(await publisher.dead_letter(window.message, exc, worker="edge"))
        return futures

    async def process(self, messages: Sequence[InboundMessage]) -> None:
        """compute → publish → wait for delivery (the unpipelined path, used by tests)."""
        outcome = await self.compute(messages)
        started = time.perf_counter()
        await self.publisher.deliver(await self.publish(outcome))
        self.metrics.edge_batch(
            outcome, size=len(messages), publish_s=time.perf_counter() - started
        )

    def _encode(self, kind: str, record: Result | OffloadRequest, key: bytes) -> bytes:
        """Encode one output of a window; ``PoisonMessageError`` when it cannot be written
        (checked here, before any side effect of the window, so a window ends as its outputs
        or as one dead letter, never both)."""
        try:
            value = record.encode(max_bytes=max_message_bytes(self.settings))
        except schemas.SchemaError as exc:
            raise MessageSchemaError(f"{kind} for this window cannot be encoded: {exc}") from exc
        check_record_size(key, value, self.settings)
        return value

    async def _publish_window(
        self, window: RoutedWindow, latencies: dict[str, float]
    ) -> list[Awaitable[Any]]:
        settings, publisher = self.settings, self.publisher
        frame_window = window.window
        key = frame_window.stream_id.encode("ascii")  # the stream id rule: ASCII only
        decision = window.decision
        now_ns = time.time_ns()
        deadline_ns = now_ns + int(settings.cloud_deadline_s * _NS)
        versions = dict(self.models.versions)

        def offload(reason: str) -> bytes:
            request = build_offload(
                window,
                reason=reason,
                threshold=self.models.threshold,
                model_versions=versions,
                offloaded_at_ns=now_ns,
                deadline_ns=deadline_ns,
            )
            return self._encode("offload_request", request, key)

        if decision.path == "offload":
            fallback = edge_result(
                window, decided_by="edge-fallback", model_versions=versions, latencies_s=latencies
            )
            fallback_bytes = self._encode("result", fallback, key)
            request = offload("uncertain")
            pending = self.pending
            stream_id, seq = frame_window.stream_id, frame_window.window_seq
            # Pending FIRST: if we die before the request is out, the sweeper falls back.
            await self.retrier.with_retries(
                "pending_add", lambda: pending.add(stream_id, seq, deadline_ns, fallback_bytes)
            )
            self.crash_points.reach("edge_after_pending")  # test-only (kill -9 e2e test)
            return [await publisher.publish(settings.topic_offload, key, request)]
        result = edge_result(
            window, decided_by="edge", model_versions=versions, latencies_s=latencies
        )
        outputs = [(settings.topic_results, self._encode("result", result, key))]
        if decision.offload_reason == "audit":
            outputs.append((settings.topic_offload, offload("audit")))
        return [await publisher.publish(topic, key, value) for topic, value in outputs]


def batch_wait_s(settings: Settings) -> float:
    """``edge_batch_wait_s`` as a ``take`` timeout: faust treats 0 as "no timeout" and would
    hold a partial batch until it is full, so 0 becomes 1 ms."""
    return max(settings.edge_batch_wait_s, MIN_BATCH_WAIT_S)


def make_edge_agent(runtime: EdgeRuntime) -> Callable[[StreamT[bytes]], Awaitable[None]]:
    """The Faust agent function for the frames topic; its processor is built from
    ``runtime.deps`` when the agent starts (after ``EdgeRuntime.start``)."""
    settings = runtime.settings

    async def complete(
        publisher: Publisher,
        events: list[EventT[Any]],
        outcome: BatchOutcome,
        futures: list[Awaitable[Any]],
        stream: StreamT[bytes],
        started: float,
    ) -> None:
        """Wait for the batch's records on the broker, then ack its input offsets."""
        try:
            await publisher.deliver(futures)
        except Exception as exc:
            await runtime.fatal(exc, where="edge_agent")
        runtime.metrics.edge_batch(
            outcome, size=len(events), publish_s=time.perf_counter() - started
        )
        for event in events:
            await stream.ack(event)

    async def edge(stream: StreamT[bytes]) -> None:
        processor = EdgeBatchProcessor.from_deps(runtime.deps)
        # noack_take: faust's take()/take_events() ack a batch when the generator resumes,
        # even after an exception (faust-streaming #315); here we ack explicitly, and only
        # after every record the batch produced has been delivered.
        # One batch of pipelining: batch N+1 is decoded and inferred in the inference thread
        # while batch N's records are being acknowledged by the broker.
        in_flight: asyncio.Future[None] | None = None
        # StreamT omits noack_take; the agent always gets a faust.Stream, which has it.
        async for taken in stream.noack_take(  # type: ignore[attr-defined]
            settings.edge_batch_max, within=batch_wait_s(settings)
        ):
            events = list(taken)
            try:
                computing = asyncio.ensure_future(
                    processor.compute([InboundMessage.from_event(e) for e in events])
                )
                if in_flight is not None:
                    await in_flight
                outcome = await computing
                started = time.perf_counter()
                futures = await processor.publish(outcome)
            except Exception as exc:
                # Per-message problems never get here (they are dead-lettered); what does is a
                # dependency down past its retries, a broken model, or a bug: stop without
                # acking, so the batch is replayed after the restart.
                await runtime.fatal(exc, where="edge_agent")
            in_flight = asyncio.ensure_future(
                complete(processor.publisher, events, outcome, futures, stream, started)
            )

    return edge
