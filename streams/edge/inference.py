"""Edge inference step: frames records → decoded windows → edge model + switcher → routes.

Inputs: consumed frames records (``InboundMessage``: value, key, headers and source
position), the loaded ``EdgeModel`` and ``Switcher``, the switcher threshold and ``Settings``
(size/dimension caps, fall threshold, audit rate, snapshot cap).
Output: a ``BatchOutcome`` — per good window its record, P(fall), switcher score, routing
decision (``streams.edge.routing``), embedding and, for falls, a JPEG snapshot of the middle
frame (≤ ``snapshot_max_bytes``); per bad record the poison error that rejects it.

Guarantees: pure CPU work, no I/O, safe to run in the inference thread; every per-record
problem (tombstone, size cap, schema, impossible dimensions, undecodable payload, a window
the model's preprocessing rejects, even an unexpected decoder exception) becomes a
``PoisonMessageError`` entry and the other windows of the batch are still answered.
Failure modes: ``InferenceError`` only when onnxruntime fails on every window of the batch
(the model pair is broken, not the input); the caller treats that as fatal.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

import schemas
from models.runtime.errors import InferenceError, ModelsError
from schemas.records import FrameWindow, RecordValueError, parse_frame_window
from streams.core.errors import (
    MessageSchemaError,
    MessageTooLargeError,
    MessageValueError,
    PoisonMessageError,
    WindowDecodeError,
)
from streams.core.video import decode_window, snapshot_jpeg
from streams.edge.routing import RoutingDecision, route_window

if TYPE_CHECKING:
    from faust.types import EventT

    from models.runtime.onnx_models import EdgeModel, Switcher
    from streams.core.settings import Settings

__all__ = [
    "BatchOutcome",
    "InboundMessage",
    "RoutedWindow",
    "compute_batch",
    "decode_frame_message",
]


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One consumed record with everything a dead letter needs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp_s: float | None = None

    @classmethod
    def from_event(cls, event: EventT[Any]) -> InboundMessage:
        message = event.message
        raw_headers: Any = message.headers or []
        pairs = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
        headers = [(str(k), bytes(v) if v is not None else b"") for k, v in pairs]
        value = message.value
        key = message.key
        return cls(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=bytes(key) if isinstance(key, bytes | bytearray | memoryview) else None,
            value=bytes(value) if isinstance(value, bytes | bytearray | memoryview) else None,
            headers=headers,
            timestamp_s=message.timestamp,
        )


@dataclass(slots=True)
class RoutedWindow:
    """A decoded window with the edge's answer and its route."""

    message: InboundMessage
    window: FrameWindow
    decision: RoutingDecision
    p_fall: float
    switcher_score: float
    embedding: list[float] | None
    snapshot_jpeg: bytes | None
    decode_s: float


@dataclass(slots=True)
class BatchOutcome:
    """What the inference thread produced for one batch."""

    routed: list[RoutedWindow] = field(default_factory=list)
    poisoned: list[tuple[InboundMessage, PoisonMessageError]] = field(default_factory=list)
    decode_s: float = 0.0
    edge_s: float = 0.0
    switcher_s: float = 0.0


def decode_frame_message(
    message: InboundMessage, settings: Settings
) -> tuple[FrameWindow, np.ndarray]:
    """Validate and decode one frames record → (frame window, RGB frames).

    Raises only ``PoisonMessageError`` subclasses: ``MessageValueError`` for a record that
    breaks a rule of ``schemas.records`` (stream id, seq, times, fps, dimensions, codec).
    """
    value = message.value
    if value is None:
        raise MessageSchemaError("record has no value (tombstone)")
    if len(value) > settings.max_window_bytes:
        raise MessageTooLargeError(
            f"record is {len(value)} bytes, cap is {settings.max_window_bytes}"
        )
    try:
        window = parse_frame_window(value, max_bytes=settings.max_window_bytes)
    except schemas.RecordTooLargeError as exc:
        raise MessageTooLargeError(str(exc)) from exc
    except RecordValueError as exc:
        raise MessageValueError(str(exc)) from exc
    except schemas.SchemaError as exc:
        raise MessageSchemaError(str(exc)) from exc
    frames = decode_window(
        window.payload,
        window.codec,
        window.width,
        window.height,
        window.frame_count,
        max_frames=settings.max_window_frames,
        max_pixels=settings.max_window_pixels,
        max_decoded_bytes=settings.max_window_decoded_bytes,
    )
    return window, frames


def _infer(
    edge: EdgeModel, switcher: Switcher, windows: list[np.ndarray]
) -> tuple[Any, np.ndarray, float, float]:
    started = time.perf_counter()
    out = edge.predict(windows)
    edge_done = time.perf_counter()
    scores = switcher.score(out)
    return out, scores, edge_done - started, time.perf_counter() - edge_done


def compute_batch(
    messages: Sequence[InboundMessage],
    *,
    edge: EdgeModel,
    switcher: Switcher,
    threshold: float,
    settings: Settings,
) -> BatchOutcome:
    """Decode, infer, score, route and snapshot a batch (blocking; run in the executor).

    Per-window problems become ``poisoned`` entries; only onnxruntime failing on every window
    of the batch raises (``InferenceError``: the model pair is broken, not the input).
    """
    outcome = BatchOutcome()
    decoded: list[tuple[InboundMessage, FrameWindow, np.ndarray, float]] = []
    for message in messages:
        started = time.perf_counter()
        try:
            window, frames = decode_frame_message(message, settings)
        except PoisonMessageError as exc:
            outcome.poisoned.append((message, exc))
            continue
        except Exception as exc:  # a decoder bug must not take the batch down with it
            outcome.poisoned.append((message, _as_decode_error(exc)))
            continue
        elapsed = time.perf_counter() - started
        outcome.decode_s += elapsed
        decoded.append((message, window, frames, elapsed))
    if not decoded:
        return outcome
    windows = [frames for _, _, frames, _ in decoded]
    try:
        out, scores, outcome.edge_s, outcome.switcher_s = _infer(edge, switcher, windows)
        per_window: list[tuple[Any, float, int] | ModelsError] = [
            (out, float(scores[i]), i) for i in range(len(windows))
        ]
    except ModelsError:
        # Isolate the window(s) the model rejects; the others still get an answer.
        per_window = []
        for one in windows:
            try:
                single, single_scores, edge_s, switcher_s = _infer(edge, switcher, [one])
            except ModelsError as exc:
                per_window.append(exc)
                continue
            outcome.edge_s += edge_s
            outcome.switcher_s += switcher_s
            per_window.append((single, float(single_scores[0]), 0))
        failures = [item for item in per_window if isinstance(item, ModelsError)]
        if len(failures) == len(per_window) and all(
            isinstance(f, InferenceError) for f in failures
        ):
            # Not the input's fault (those raise WindowError): the model pair is broken.
            raise InferenceError(f"model failed on every window: {failures[0]!r}") from failures[0]
    for (message, window, frames, decode_s), item in zip(decoded, per_window, strict=True):
        if isinstance(item, ModelsError):
            outcome.poisoned.append((message, _as_decode_error(item)))
            continue
        edge_out, score, row = item
        p_fall = float(edge_out.p_fall[row])
        decision = route_window(
            p_fall=p_fall,
            switcher_score=score,
            threshold=threshold,
            fall_threshold=settings.fall_threshold,
            audit_rate=settings.audit_rate,
            stream_id=window.stream_id,
            window_seq=window.window_seq,
        )
        embedding = edge_out.embedding[row]
        outcome.routed.append(
            RoutedWindow(
                message=message,
                window=window,
                decision=decision,
                p_fall=p_fall,
                switcher_score=score,
                embedding=[float(v) for v in embedding] if embedding.size else None,
                snapshot_jpeg=(
                    snapshot_jpeg(frames, settings.snapshot_max_bytes) if decision.is_fall else None
                ),
                decode_s=decode_s,
            )
        )
    return outcome


def _as_decode_error(exc: BaseException) -> WindowDecodeError:
    error = WindowDecodeError(f"{type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
