"""Cloud worker batches: offload requests → large model (batched) → results and dead letters.

Inputs: consumed `offload_request` records (schemas v1); the model, producer, pending
store and metrics are injected (`streams.cloud.service` builds them). Outputs, per batch:
- reason="uncertain": one `result` (decided_by="cloud", label from `fall_threshold`,
  JPEG snapshot when a fall) on the results topic keyed by stream id; once every delivery
  is acknowledged, the windows' pending entries are removed (`PendingOffloads.remove_many`),
  so the edge fallback sweeper will not answer them.
- reason="audit": no result; edge/cloud agreement is counted
  (`fallwatch_audit_agreement_total{agree}`).
- A message that can never be processed (bad bytes, size cap, a value outside the record
  rules of `schemas.records`, a window that would decode to more than
  `max_window_decoded_bytes`, undecodable window, model rejects the window, a result too
  large to write) → dead-letter topic, original bytes + `fallwatch.dlq.*` headers
  (`streams.kafka.deadletter`, with `reason`), and the batch goes on. Poison is never
  retried: only Kafka and Redis failures are.
- The model itself failing (`InferenceError`, not a rejected window) on
  `cloud_max_model_failures` windows in a row → `CloudModelFailingError` before anything
  of that batch is published: a broken model must stop the worker (not-ready, exit
  non-zero), not dead-letter every offload while /readyz says ready.
Stages are timed separately (`fallwatch_stage_seconds{stage=decode|cloud|publish}`).

Guarantees: `process` never commits (the caller commits after it returns), so offsets move
only past records whose result or dead letter was acknowledged and whose pending entry was
removed. Failure modes: `CloudWorkerError` when a delivery fails or Redis stays down past
the retries, `CloudModelFailingError` as above (either way the batch is not committed and
is replayed after a restart; the edge fallback answers its windows meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

import schemas
from schemas.records import (
    OffloadRequest,
    RecordValueError,
    Result,
    build_result,
    parse_offload_request,
)
from streams.cloud.metrics import CloudMetrics
from streams.cloud.pending import PendingRemover
from streams.core.crash_points import CrashPoints
from streams.core.errors import (
    FallwatchError,
    MessageSchemaError,
    MessageTooLargeError,
    MessageValueError,
    PoisonMessageError,
    WindowDecodeError,
)
from streams.core.settings import Settings
from streams.core.video import snapshot_jpeg
from streams.kafka.deadletter import dead_letter_headers, merge_headers, poison_reason

__all__ = [
    "BatchOutcome",
    "CloudModelFailingError",
    "CloudWorker",
    "CloudWorkerError",
    "DecodedOffload",
    "ProbabilityModel",
]

log = logging.getLogger(__name__)

#: Attempts (backoff from 0.2 s, capped at 2 s) before a Redis failure is fatal.
REMOVE_ATTEMPTS = 5

Frames = NDArray[np.uint8]


class CloudWorkerError(FallwatchError):
    """Raised by the cloud worker when Kafka refuses a delivery or Redis stays down past
    the retries. The worker stops without committing the batch in flight (it is replayed
    after a restart). Operator: check broker and Redis health (`make status`), restart."""


class CloudModelFailingError(CloudWorkerError):
    """Raised by `CloudWorker.process` when the cloud model failed (onnxruntime error, not a
    rejected window) on `cloud_max_model_failures` windows in a row. The worker reports
    not-ready and exits non-zero. Operator: read the `cloud_model_failing` log line; check
    the model file and its onnxruntime against the cloud image, roll back the model."""


class ProbabilityModel(Protocol):
    """What the worker needs of `models.runtime.onnx_models.CloudModel`."""

    def predict(self, windows: Sequence[Frames]) -> Any: ...


@dataclass
class DecodedOffload:
    """One consumed offload request, decoded, with the consumer record it came from."""

    record: Any
    request: OffloadRequest
    frames: Frames


@dataclass
class BatchOutcome:
    """What one batch produced (returned for logging and tests)."""

    results: int = 0
    audits: int = 0
    dead_letters: int = 0
    late: int = 0
    removed: list[tuple[str, int]] = field(default_factory=list)


class CloudWorker:
    """Processes batches of consumed records; Kafka/Redis/model are injected."""

    def __init__(
        self,
        settings: Settings,
        model: ProbabilityModel,
        model_version: str,
        producer: Any,
        pending: PendingRemover,
        metrics: CloudMetrics,
        *,
        executor: ThreadPoolExecutor,
        clock_ns: Callable[[], int] = time.time_ns,
        crash_points: CrashPoints | None = None,
    ) -> None:
        self._settings = settings
        self._model = model
        self._version = model_version
        self._producer = producer
        self._pending = pending
        self._metrics = metrics
        self._executor = executor
        self._clock_ns = clock_ns
        self._crash_points = crash_points or CrashPoints()
        #: Windows in a row on which the model raised InferenceError (reset by a success).
        self.model_failures_in_row = 0

    # -- decoding -------------------------------------------------------------------
    def _decode(self, record: Any) -> DecodedOffload:
        from streams.core.video import decode_window
        from streams.kafka.topics import max_message_bytes

        value: bytes = record.value or b""
        if len(value) > max_message_bytes(self._settings):
            raise MessageTooLargeError(f"offload request of {len(value)} bytes")
        try:
            request = parse_offload_request(value)
        except RecordValueError as exc:
            raise MessageValueError(str(exc)) from exc
        except schemas.SchemaError as exc:
            raise MessageSchemaError(str(exc)) from exc
        window = request.window
        if len(window.payload) > self._settings.max_window_bytes:
            raise MessageTooLargeError(f"window payload of {len(window.payload)} bytes")
        frames = decode_window(
            window.payload,
            window.codec,
            window.width,
            window.height,
            window.frame_count,
            max_frames=self._settings.max_window_frames,
            max_pixels=self._settings.max_window_pixels,
            max_decoded_bytes=self._settings.max_window_decoded_bytes,
        )
        return DecodedOffload(record, request, frames)

    def _decode_all(
        self, records: Sequence[Any]
    ) -> tuple[list[DecodedOffload], list[tuple[Any, BaseException]]]:
        good: list[DecodedOffload] = []
        bad: list[tuple[Any, BaseException]] = []
        for record in records:
            try:
                good.append(self._decode(record))
            except PoisonMessageError as exc:
                bad.append((record, exc))
            except Exception as exc:  # a decoder bug must not stop the worker: poison too
                error = WindowDecodeError(f"{type(exc).__name__}: {exc}")
                error.__cause__ = exc
                bad.append((record, error))
        return good, bad

    # -- inference --------------------------------------------------------------------
    def _p_fall(self, frames: Sequence[Frames]) -> NDArray[np.float64]:
        out = self._model.predict(list(frames))
        return np.asarray(out.probs, dtype=np.float64)[:, 1]

    def _infer_all(
        self, items: list[DecodedOffload]
    ) -> tuple[list[tuple[DecodedOffload, float]], list[tuple[DecodedOffload, BaseException]]]:
        """Batch inference; if the batch fails, isolate the windows the model rejects."""
        from models.runtime.errors import InferenceError, ModelsError

        if not items:
            return [], []
        try:
            p = self._p_fall([i.frames for i in items])
            self.model_failures_in_row = 0
            return list(zip(items, (float(v) for v in p), strict=True)), []
        except ModelsError:
            log.warning("cloud_batch_failed_isolating", extra={"size": len(items)})
        ok: list[tuple[DecodedOffload, float]] = []
        bad: list[tuple[DecodedOffload, BaseException]] = []
        for item in items:
            try:
                ok.append((item, float(self._p_fall([item.frames])[0])))
                self.model_failures_in_row = 0
            except ModelsError as exc:
                bad.append((item, exc))
                if isinstance(exc, InferenceError):  # the model broke, not the window
                    self.model_failures_in_row += 1
        return ok, bad

    def _cpu_stage(
        self, records: Sequence[Any]
    ) -> tuple[list[tuple[DecodedOffload, float]], list[tuple[Any, BaseException]], float, float]:
        t0 = time.perf_counter()
        good, bad = self._decode_all(records)
        t1 = time.perf_counter()
        scored, rejected = self._infer_all(good)
        t2 = time.perf_counter()
        bad += [(item.record, exc) for item, exc in rejected]
        return scored, bad, t1 - t0, t2 - t1

    # -- one batch ----------------------------------------------------------------------
    async def process(self, records: Sequence[Any]) -> BatchOutcome:
        """Decode, infer, publish and await delivery, remove pending entries.

        Does NOT commit: the caller commits after this returns. Raises CloudWorkerError
        when a delivery or the pending removal fails for good.
        """
        from aiokafka.errors import KafkaError

        loop = asyncio.get_running_loop()
        outcome = BatchOutcome()
        self._metrics.windows_in(len(records))
        scored, bad, decode_s, infer_s = await loop.run_in_executor(
            self._executor, self._cpu_stage, records
        )
        self._metrics.stage("decode", decode_s)
        self._check_model_health()
        if scored:
            self._metrics.stage("cloud", infer_s)
            self._metrics.batch(len(scored))
        t_pub = time.perf_counter()
        try:
            uncertain = await self._publish_batch(scored, bad, infer_s, outcome)
        except KafkaError as exc:
            raise CloudWorkerError(f"delivery to Kafka failed: {exc!r}") from exc
        self._metrics.stage("publish", time.perf_counter() - t_pub)
        if uncertain:  # results acknowledged, pending entries and offsets not yet settled
            self._crash_points.reach("cloud_after_publish")  # test-only (kill -9 e2e test)
        await self._remove_pending(uncertain)
        outcome.removed = uncertain
        return outcome

    def _check_model_health(self) -> None:
        """``CloudModelFailingError`` once the model failed on too many windows in a row."""
        limit = self._settings.cloud_max_model_failures
        if self.model_failures_in_row >= limit:
            log.critical(
                "cloud_model_failing",
                extra={"failures_in_row": self.model_failures_in_row, "limit": limit},
            )
            raise CloudModelFailingError(
                f"cloud model {self._version} failed on {self.model_failures_in_row} windows "
                f"in a row (limit {limit})"
            )

    async def _publish_batch(
        self,
        scored: list[tuple[DecodedOffload, float]],
        bad: list[tuple[Any, BaseException]],
        infer_s: float,
        outcome: BatchOutcome,
    ) -> list[tuple[str, int]]:
        """Dead letters, audits and results of one batch, every delivery awaited; returns
        the (stream, seq) of the results published (their pending entries to remove)."""
        deliveries: list[Awaitable[Any]] = []
        for record, exc in bad:
            deliveries.append(await self._dead_letter(record, exc))
            outcome.dead_letters += 1
        per_window_s = infer_s / max(1, len(scored))
        uncertain: list[tuple[str, int]] = []
        for item, p_fall in scored:
            label = int(p_fall >= self._settings.fall_threshold)
            if item.request.reason != "uncertain":
                edge_label = int(item.request.edge.p_fall >= self._settings.fall_threshold)
                self._metrics.audit(edge_label == label)
                outcome.audits += 1
                continue
            delivery, window = await self._answer(item, p_fall, label, per_window_s, outcome)
            deliveries.append(delivery)
            if window is not None:
                uncertain.append(window)
        await asyncio.gather(*deliveries)
        return uncertain

    async def _answer(
        self,
        item: DecodedOffload,
        p_fall: float,
        label: int,
        infer_s: float,
        outcome: BatchOutcome,
    ) -> tuple[Awaitable[Any], tuple[str, int] | None]:
        """Send the result of one uncertain window (or its dead letter when no result can be
        written); returns the delivery and the (stream, seq) answered (None: dead letter)."""
        try:
            result = self._result(item, p_fall, label, infer_s)
            value = self._encode(result)
        except PoisonMessageError as exc:
            # A valid request we still cannot answer: never crash-loop on it.
            dead_letter = await self._dead_letter(item.record, exc)
            outcome.dead_letters += 1
            return dead_letter, None
        if result.produced_at_ns > item.request.deadline_ns:
            outcome.late += 1
            self._metrics.late()
        delivery = await self._producer.send(
            self._settings.topic_results, value=value, key=result.key
        )
        self._metrics.result(result.capture_end_ns)
        outcome.results += 1
        return delivery, (result.stream_id, result.window_seq)

    def _result(self, item: DecodedOffload, p_fall: float, label: int, infer_s: float) -> Result:
        request = item.request
        now = self._clock_ns()
        snapshot = None
        if label == 1 and self._settings.snapshot_max_bytes > 0:
            snapshot = snapshot_jpeg(item.frames, self._settings.snapshot_max_bytes)
        try:
            return build_result(
                request.window,
                p_fall=p_fall,
                label=label,
                decided_by="cloud",
                switcher_score=request.edge.switcher_score,
                model_versions={**request.model_versions, "cloud": self._version},
                latencies_s={
                    "cloud": infer_s,
                    "offload_queue": max(0.0, (now - request.offloaded_at_ns) / 1e9),
                },
                produced_at_ns=now,
                snapshot_jpeg=snapshot,
            )
        except RecordValueError as exc:
            raise MessageValueError(str(exc)) from exc

    def _encode(self, result: Result) -> bytes:
        """The result's bytes; ``PoisonMessageError`` when it cannot be written (schema or
        size: an oversized output is a dead letter of its input, not a producer error)."""
        from streams.kafka.topics import check_record_size, max_message_bytes

        try:
            value = result.encode(max_bytes=max_message_bytes(self._settings))
        except schemas.SchemaError as exc:
            raise MessageSchemaError(f"result cannot be encoded: {exc}") from exc
        check_record_size(result.key, value, self._settings)
        return value

    async def _dead_letter(self, record: Any, exc: BaseException) -> Awaitable[Any]:
        reason = poison_reason(exc)  # bounded label set: model rejections count as poison
        self._metrics.dead_letter(reason)
        log.warning(
            "offload_dead_lettered",
            extra={
                "reason": reason,
                "partition": record.partition,
                "offset": record.offset,
                "error_class": type(exc).__name__,
                "error": str(exc)[:300],
            },
        )
        headers = merge_headers(
            getattr(record, "headers", None) or (),
            dead_letter_headers(
                source_topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                error=exc,
                worker="cloud",
            ),
        )
        fut: Awaitable[Any] = await self._producer.send(
            self._settings.topic_deadletter,
            value=record.value or b"",
            key=record.key,
            headers=headers,
        )
        return fut

    async def _remove_pending(self, keys: list[tuple[str, int]]) -> None:
        if not keys:
            return
        delay = 0.2
        for attempt in range(1, REMOVE_ATTEMPTS + 1):
            try:
                await self._pending.remove_many(keys)
                return
            except (ValueError, TypeError) as exc:  # a bad key is no outage: never retry it
                raise CloudWorkerError(f"pending removal refused the keys: {exc!r}") from exc
            except Exception as exc:  # any Redis failure: retry, then give up loudly
                if attempt == REMOVE_ATTEMPTS:
                    raise CloudWorkerError(f"removing pending offloads failed: {exc!r}") from exc
                log.warning("pending_remove_retry", extra={"attempt": attempt, "error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
