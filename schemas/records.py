"""Typed wire records: frame window, offload request and result, each with one builder/parser.

Inputs: framed Avro bytes (``parse_*``) or the values of a record (the dataclasses and
``build_result``). Outputs: frozen dataclasses, and framed bytes (``encode``).

Rules every parsed record obeys (docs/CONTRACTS.md, "Wire formats"), beyond the Avro types:
- ``stream_id``: 1-128 characters of ``[A-Za-z0-9._:-]`` (``STREAM_ID_RULE``), so a key, a
  Redis key and a log field stay small and printable;
- ``window_seq``: an integer in [0, 2**53) (Lua numbers are doubles);
- ``capture_start_ns``/``capture_end_ns`` (and the other ``*_ns`` times): non-negative
  int64, and ``capture_end_ns >= capture_start_ns``;
- ``fps``: finite, in (0, ``MAX_FPS``]; ``width``/``height`` in [1, ``MAX_DIMENSION``],
  ``frame_count`` in [1, ``MAX_FRAME_COUNT``] (the workers' own, smaller caps from settings
  are checked by ``streams.core.video.decode_window``); ``codec`` one of ``CODECS``;
- offload ``reason`` one of ``OFFLOAD_REASONS``; result ``label`` 0 or 1 and ``decided_by``
  one of ``DECIDED_BY``.

Guarantees: ``parse_*`` raise only ``schemas.SchemaError`` — ``RecordValueError`` for a
record that decodes but breaks a rule above, with a message naming the field — for any
input bytes; a record that parsed re-encodes unchanged. ``build_result`` is the only
place a result is made (edge, edge-fallback and cloud answers).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final, TypeVar

from schemas import decode, encode
from schemas.registry import SchemaError

__all__ = [
    "CODECS",
    "DECIDED_BY",
    "MAX_DIMENSION",
    "MAX_FPS",
    "MAX_FRAME_COUNT",
    "MAX_SEQ",
    "OFFLOAD_REASONS",
    "STREAM_ID_RULE",
    "EdgeOutput",
    "FrameWindow",
    "OffloadRequest",
    "RecordValueError",
    "Result",
    "build_result",
    "check_stream_id",
    "parse_frame_window",
    "parse_offload_request",
    "parse_result",
]

CODECS: Final[tuple[str, ...]] = ("h264", "mjpeg", "raw-gray8")
OFFLOAD_REASONS: Final[tuple[str, ...]] = ("uncertain", "audit")
DECIDED_BY: Final[tuple[str, ...]] = ("edge", "cloud", "edge-fallback")
#: Largest window seq (exclusive bound 2**53: Redis Lua numbers are doubles).
MAX_SEQ: Final[int] = 2**53 - 1
MAX_FPS: Final[float] = 120.0
#: Largest width or height of a frame, whatever the pixel cap (FFmpeg's sanity region).
MAX_DIMENSION: Final[int] = 8192
#: Largest frame count any window may declare (the worker setting is usually far lower).
MAX_FRAME_COUNT: Final[int] = 1024
_INT64_MAX: Final[int] = 2**63 - 1
_R = TypeVar("_R")
STREAM_ID_RULE: Final[str] = "1-128 characters of [A-Za-z0-9._:-]"
_STREAM_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RecordValueError(SchemaError):
    """A record that decodes with its schema but carries a value outside the contract.

    Raised by ``parse_*`` and by ``check_stream_id``. Consumers dead-letter it (reason
    ``invalid``); operators fix the producer named by the stream id / source partition.
    """


def check_stream_id(value: object) -> str:
    """``value`` when it is a valid stream id (``STREAM_ID_RULE``), else ``RecordValueError``."""
    if not isinstance(value, str) or _STREAM_ID.fullmatch(value) is None:
        text = value if isinstance(value, str) else str(type(value).__name__)
        shown = repr(text[:40]) + ("..." if len(text) > 40 else "")
        raise RecordValueError(
            f"stream_id {shown} (length {len(text)}) breaks the rule: {STREAM_ID_RULE}"
        )
    return value


def _int(name: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RecordValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _time_ns(name: str, value: object) -> int:
    return _int(name, value, 0, _INT64_MAX)


def _one_of(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise RecordValueError(f"{name} must be one of {allowed}, got {str(value)[:40]!r}")
    return value


def _float(name: str, value: object) -> float:
    if not isinstance(value, float | int) or isinstance(value, bool):
        raise RecordValueError(f"{name} must be a number, got {type(value).__name__}")
    return float(value)


@dataclass(frozen=True, slots=True)
class FrameWindow:
    """One window of encoded video from one stream (``frame_window`` v1)."""

    stream_id: str
    window_seq: int
    capture_start_ns: int
    capture_end_ns: int
    fps: float
    width: int
    height: int
    frame_count: int
    codec: str
    payload: bytes

    def __post_init__(self) -> None:
        check_stream_id(self.stream_id)
        _int("window_seq", self.window_seq, 0, MAX_SEQ)
        _time_ns("capture_start_ns", self.capture_start_ns)
        _time_ns("capture_end_ns", self.capture_end_ns)
        if self.capture_end_ns < self.capture_start_ns:
            raise RecordValueError(
                f"capture_end_ns {self.capture_end_ns} is before capture_start_ns "
                f"{self.capture_start_ns}"
            )
        fps = _float("fps", self.fps)
        if not (math.isfinite(fps) and 0.0 < fps <= MAX_FPS):
            raise RecordValueError(f"fps must be finite and in (0, {MAX_FPS}], got {fps!r}")
        _int("width", self.width, 1, MAX_DIMENSION)
        _int("height", self.height, 1, MAX_DIMENSION)
        _int("frame_count", self.frame_count, 1, MAX_FRAME_COUNT)
        _one_of("codec", self.codec, CODECS)
        if not isinstance(self.payload, bytes):
            raise RecordValueError(f"payload must be bytes, got {type(self.payload).__name__}")

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> FrameWindow:
        """The validated window of a decoded ``frame_window`` dict."""
        return cls(**{name: record[name] for name in _FRAME_WINDOW_FIELDS})

    def to_avro(self) -> dict[str, Any]:
        return asdict(self)

    def encode(self, *, max_bytes: int | None = None) -> bytes:
        return encode("frame_window", self.to_avro(), max_bytes=max_bytes)


_FRAME_WINDOW_FIELDS: Final[tuple[str, ...]] = tuple(FrameWindow.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class EdgeOutput:
    """What the edge model and switcher said about an offloaded window."""

    p_fall: float
    switcher_score: float
    threshold: float
    embedding: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class OffloadRequest:
    """A window the edge sends to the cloud (``offload_request`` v1)."""

    window: FrameWindow
    edge: EdgeOutput
    reason: str
    model_versions: Mapping[str, str]
    offloaded_at_ns: int
    deadline_ns: int

    def __post_init__(self) -> None:
        _one_of("reason", self.reason, OFFLOAD_REASONS)
        _time_ns("offloaded_at_ns", self.offloaded_at_ns)
        _time_ns("deadline_ns", self.deadline_ns)

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> OffloadRequest:
        edge = record["edge"]
        embedding = edge.get("embedding")
        return cls(
            window=FrameWindow.from_avro(record["window"]),
            edge=EdgeOutput(
                p_fall=_float("edge.p_fall", edge["p_fall"]),
                switcher_score=_float("edge.switcher_score", edge["switcher_score"]),
                threshold=_float("edge.threshold", edge["threshold"]),
                embedding=None if embedding is None else tuple(float(v) for v in embedding),
            ),
            reason=record["reason"],
            model_versions=dict(record["model_versions"]),
            offloaded_at_ns=record["offloaded_at_ns"],
            deadline_ns=record["deadline_ns"],
        )

    def to_avro(self) -> dict[str, Any]:
        edge = self.edge
        return {
            "window": self.window.to_avro(),
            "edge": {
                "p_fall": edge.p_fall,
                "switcher_score": edge.switcher_score,
                "threshold": edge.threshold,
                "embedding": None if edge.embedding is None else list(edge.embedding),
            },
            "reason": self.reason,
            "model_versions": dict(self.model_versions),
            "offloaded_at_ns": self.offloaded_at_ns,
            "deadline_ns": self.deadline_ns,
        }

    def encode(self, *, max_bytes: int | None = None) -> bytes:
        return encode("offload_request", self.to_avro(), max_bytes=max_bytes)


@dataclass(frozen=True, slots=True)
class Result:
    """One final decision for one window (``result`` v1); made only by ``build_result``."""

    stream_id: str
    window_seq: int
    capture_start_ns: int
    capture_end_ns: int
    p_fall: float
    label: int
    decided_by: str
    switcher_score: float | None
    model_versions: Mapping[str, str]
    latencies_s: Mapping[str, float]
    produced_at_ns: int
    snapshot_jpeg: bytes | None

    def __post_init__(self) -> None:
        check_stream_id(self.stream_id)
        _int("window_seq", self.window_seq, 0, MAX_SEQ)
        _time_ns("capture_start_ns", self.capture_start_ns)
        _time_ns("capture_end_ns", self.capture_end_ns)
        _int("label", self.label, 0, 1)
        _one_of("decided_by", self.decided_by, DECIDED_BY)
        _time_ns("produced_at_ns", self.produced_at_ns)

    @property
    def key(self) -> bytes:
        """The Kafka key of the result (the stream id)."""
        return self.stream_id.encode("ascii")

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> Result:
        return cls(
            **{
                **{name: record[name] for name in _RESULT_FIELDS},
                "model_versions": dict(record["model_versions"]),
                "latencies_s": dict(record["latencies_s"]),
            }
        )

    def to_avro(self) -> dict[str, Any]:
        record = {name: getattr(self, name) for name in _RESULT_FIELDS}
        record["model_versions"] = dict(self.model_versions)
        record["latencies_s"] = dict(self.latencies_s)
        return record

    def encode(self, *, max_bytes: int | None = None) -> bytes:
        return encode("result", self.to_avro(), max_bytes=max_bytes)


_RESULT_FIELDS: Final[tuple[str, ...]] = tuple(Result.__dataclass_fields__)


def build_result(
    window: FrameWindow,
    *,
    p_fall: float,
    label: int,
    decided_by: str,
    switcher_score: float | None,
    model_versions: Mapping[str, str],
    latencies_s: Mapping[str, float],
    produced_at_ns: int,
    snapshot_jpeg: bytes | None = None,
) -> Result:
    """The one builder of a result for ``window``: the window's identity and capture times
    unchanged; the snapshot is kept only on a fall (label 1)."""
    return Result(
        stream_id=window.stream_id,
        window_seq=window.window_seq,
        capture_start_ns=window.capture_start_ns,
        capture_end_ns=window.capture_end_ns,
        p_fall=float(p_fall),
        label=label,
        decided_by=decided_by,
        switcher_score=None if switcher_score is None else float(switcher_score),
        model_versions=dict(model_versions),
        latencies_s={k: float(v) for k, v in latencies_s.items()},
        produced_at_ns=produced_at_ns,
        snapshot_jpeg=snapshot_jpeg if label == 1 else None,
    )


def _parse(kind: str, data: bytes, max_bytes: int | None) -> dict[str, Any]:
    return decode(kind, data, max_bytes=max_bytes)


def _validated(kind: str, build: Callable[[dict[str, Any]], _R], record: dict[str, Any]) -> _R:
    try:
        return build(record)
    except SchemaError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a shape decode allowed
        raise RecordValueError(f"{kind} record is not usable: {exc!r}") from exc


def parse_frame_window(data: bytes, *, max_bytes: int | None = None) -> FrameWindow:
    """Decode and validate a framed ``frame_window``; only ``SchemaError`` on bad input."""
    record = _parse("frame_window", data, max_bytes)
    return _validated("frame_window", FrameWindow.from_avro, record)


def parse_offload_request(data: bytes, *, max_bytes: int | None = None) -> OffloadRequest:
    """Decode and validate a framed ``offload_request``; only ``SchemaError`` on bad input."""
    record = _parse("offload_request", data, max_bytes)
    return _validated("offload_request", OffloadRequest.from_avro, record)


def parse_result(data: bytes, *, max_bytes: int | None = None) -> Result:
    """Decode and validate a framed ``result``; only ``SchemaError`` on bad input."""
    return _validated("result", Result.from_avro, _parse("result", data, max_bytes))
