"""Edge inference: frames records → decode stage → infer stage → route stage → a batch outcome.

Inputs: consumed frames records (``InboundMessage``: value, key, headers and source
position), the loaded ``EdgeModel`` and ``Switcher``, the switcher threshold and ``Settings``
(size/dimension caps, fall threshold, audit rate, snapshot cap).
Stages, each a function and each timed (as the cloud worker times its stages):
- ``decode_stage``: validate and decode every record (``DecodeStage``);
- ``infer_stage``: edge model + switcher on the batch, isolating the windows the model
  rejects (``InferStage``: edge and switcher seconds);
- ``route_stage``: route each window (``streams.edge.routing``) and snapshot its falls
  (``RouteStage``).
``compute_batch`` runs the three and returns a ``BatchOutcome`` — per good window its
record, P(fall), switcher score, routing decision, embedding and, for falls, a JPEG
snapshot of the middle frame (≤ ``snapshot_max_bytes``); per bad record the poison error
that rejects it; the seconds of each stage (decode, edge, switcher, route).

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
from typing import TYPE_CHECKING, Any, TypeAlias

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
    from models.runtime.onnx_models import EdgeOutput as ModelOutput
    from streams.core.settings import Settings

__all__ = [
    "BatchOutcome",
    "DecodeStage",
    "DecodedWindow",
    "InboundMessage",
    "InferStage",
    "RouteStage",
    "RoutedWindow",
    "WindowScore",
    "compute_batch",
    "decode_frame_message",
    "decode_stage",
    "infer_stage",
    "route_stage",
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
    """What the inference thread produced for one batch, with the seconds of each stage
    (``edge_s`` + ``switcher_s`` are the infer stage; 0 when no window decoded) and the CPU
    seconds the computing thread spent on the whole batch (``cpu_s``, ``time.thread_time``)."""

    routed: list[RoutedWindow] = field(default_factory=list)
    poisoned: list[tuple[InboundMessage, PoisonMessageError]] = field(default_factory=list)
    decode_s: float = 0.0
    edge_s: float = 0.0
    switcher_s: float = 0.0
    route_s: float = 0.0
    cpu_s: float = 0.0


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


@dataclass(slots=True)
class DecodedWindow:
    """A frames record that decoded: its window and RGB frames."""

    message: InboundMessage
    window: FrameWindow
    frames: np.ndarray
    decode_s: float


@dataclass(slots=True)
class DecodeStage:
    """Output of ``decode_stage``: the windows that decoded and the records that did not."""

    decoded: list[DecodedWindow] = field(default_factory=list)
    poisoned: list[tuple[InboundMessage, PoisonMessageError]] = field(default_factory=list)
    seconds: float = 0.0


#: One window's model output: (batch output, switcher score, row in that output), or the
#: model's error for this window alone.
WindowScore: TypeAlias = "tuple[ModelOutput, float, int] | ModelsError"


@dataclass(slots=True)
class InferStage:
    """Output of ``infer_stage``: one ``WindowScore`` per decoded window, in order."""

    scores: list[WindowScore] = field(default_factory=list)
    edge_s: float = 0.0
    switcher_s: float = 0.0


@dataclass(slots=True)
class RouteStage:
    """Output of ``route_stage``: routed windows and the windows the model rejected."""

    routed: list[RoutedWindow] = field(default_factory=list)
    poisoned: list[tuple[InboundMessage, PoisonMessageError]] = field(default_factory=list)
    seconds: float = 0.0


def decode_stage(messages: Sequence[InboundMessage], settings: Settings) -> DecodeStage:
    """Validate and decode every record; each bad one becomes a ``poisoned`` entry (even an
    unexpected decoder exception: a decoder bug must not take the batch down)."""
    stage = DecodeStage()
    started = time.perf_counter()
    for message in messages:
        one_started = time.perf_counter()
        try:
            window, frames = decode_frame_message(message, settings)
        except PoisonMessageError as exc:
            stage.poisoned.append((message, exc))
            continue
        except Exception as exc:
            stage.poisoned.append((message, _as_decode_error(exc)))
            continue
        stage.decoded.append(
            DecodedWindow(message, window, frames, time.perf_counter() - one_started)
        )
    stage.seconds = time.perf_counter() - started
    return stage


def _infer(
    edge: EdgeModel, switcher: Switcher, windows: list[np.ndarray]
) -> tuple[ModelOutput, np.ndarray, float, float]:
    started = time.perf_counter()
    out = edge.predict(windows)
    edge_done = time.perf_counter()
    scores = switcher.score(out)
    return out, scores, edge_done - started, time.perf_counter() - edge_done


def infer_stage(windows: list[np.ndarray], edge: EdgeModel, switcher: Switcher) -> InferStage:
    """Edge model + switcher on the whole batch; if that fails, on each window alone so
    the windows the model rejects are isolated and the others still get an answer.

    ``InferenceError`` only when onnxruntime fails on every window (not the input's fault:
    those raise ``WindowError``; the model pair is broken)."""
    stage = InferStage()
    if not windows:
        return stage
    try:
        out, scores, stage.edge_s, stage.switcher_s = _infer(edge, switcher, windows)
        stage.scores = [(out, float(scores[i]), i) for i in range(len(windows))]
        return stage
    except ModelsError:
        pass
    for one in windows:
        try:
            single, single_scores, edge_s, switcher_s = _infer(edge, switcher, [one])
        except ModelsError as exc:
            stage.scores.append(exc)
            continue
        stage.edge_s += edge_s
        stage.switcher_s += switcher_s
        stage.scores.append((single, float(single_scores[0]), 0))
    failures = [item for item in stage.scores if isinstance(item, ModelsError)]
    if len(failures) == len(stage.scores) and all(isinstance(f, InferenceError) for f in failures):
        raise InferenceError(f"model failed on every window: {failures[0]!r}") from failures[0]
    return stage


def route_stage(
    decoded: list[DecodedWindow],
    scores: list[WindowScore],
    *,
    threshold: float,
    settings: Settings,
) -> RouteStage:
    """Route each scored window (``streams.edge.routing``) and JPEG-snapshot the falls; a
    window the model rejected becomes a ``poisoned`` entry (``WindowDecodeError``)."""
    stage = RouteStage()
    started = time.perf_counter()
    for item, score in zip(decoded, scores, strict=True):
        if isinstance(score, ModelsError):
            stage.poisoned.append((item.message, _as_decode_error(score)))
            continue
        edge_out, switcher_score, row = score
        p_fall = float(edge_out.p_fall[row])
        window = item.window
        decision = route_window(
            p_fall=p_fall,
            switcher_score=switcher_score,
            threshold=threshold,
            fall_threshold=settings.fall_threshold,
            audit_rate=settings.audit_rate,
            stream_id=window.stream_id,
            window_seq=window.window_seq,
        )
        embedding = edge_out.embedding[row]
        snapshot = (
            snapshot_jpeg(item.frames, settings.snapshot_max_bytes) if decision.is_fall else None
        )
        stage.routed.append(
            RoutedWindow(
                message=item.message,
                window=window,
                decision=decision,
                p_fall=p_fall,
                switcher_score=switcher_score,
                embedding=[float(v) for v in embedding] if embedding.size else None,
                snapshot_jpeg=snapshot,
                decode_s=item.decode_s,
            )
        )
    stage.seconds = time.perf_counter() - started
    return stage


def compute_batch(
    messages: Sequence[InboundMessage],
    *,
    edge: EdgeModel,
    switcher: Switcher,
    threshold: float,
    settings: Settings,
) -> BatchOutcome:
    """decode → infer → route a batch (blocking; run in the executor), each stage timed.

    Per-window problems become ``poisoned`` entries (decode failures first, then windows
    the model rejected, each in input order); only onnxruntime failing on every window of
    the batch raises (``InferenceError``: the model pair is broken, not the input).
    """
    cpu_started = time.thread_time()
    decoded = decode_stage(messages, settings)
    outcome = BatchOutcome(poisoned=decoded.poisoned, decode_s=decoded.seconds)
    if decoded.decoded:
        inferred = infer_stage([d.frames for d in decoded.decoded], edge, switcher)
        outcome.edge_s, outcome.switcher_s = inferred.edge_s, inferred.switcher_s
        routed = route_stage(
            decoded.decoded, inferred.scores, threshold=threshold, settings=settings
        )
        outcome.routed = routed.routed
        outcome.poisoned.extend(routed.poisoned)
        outcome.route_s = routed.seconds
    outcome.cpu_s = time.thread_time() - cpu_started
    return outcome


def _as_decode_error(exc: BaseException) -> WindowDecodeError:
    error = WindowDecodeError(f"{type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
