"""Typed alert record: a fall alert as CloudEvents 1.0 structured JSON (``alert.v1.json``).

Inputs: the values of one alert (``build_alert``: ids, state, the event's windows, who
decided, confidence, capture end, created time, snapshot, model versions).
Outputs: a frozen ``Alert`` (with ``AlertData``), its CloudEvent as a dict (``to_json``)
and its bytes (``encode``: compact, sorted-key UTF-8 JSON, the Kafka value).

Rules (``schemas/alert.v1.json``): ``id`` a lower-case uuid; ``source`` and ``subject``
(the stream id) non-empty; ``state`` one of ``ALERT_STATES`` (its CloudEvents ``type``
follows from it); ``decided_by`` one of ``schemas.records.DECIDED_BY``; window seqs
non-negative with ``windows`` ascending; ``confidence`` clamped into [0, 1] by the builder;
``time`` and ``capture_time`` RFC 3339 UTC with microseconds.

Guarantees: ``build_alert`` is the only place an alert is made and is a pure function of
its arguments, so re-building an alert from the same facts is byte-identical (the events
agent re-publishes unacknowledged alerts with the same bytes and id); a built alert
validates against ``alert.v1.json`` (tests check it).
Failure modes: ``RecordValueError`` (a ``SchemaError``) for a value outside the rules above;
``OverflowError``/``ValueError`` from ``rfc3339_from_ns`` for a time no calendar renders.
This module imports only the standard library and ``schemas.records``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from schemas.records import DECIDED_BY, RecordValueError

__all__ = [
    "ALERT_STATES",
    "ALERT_TYPES",
    "DATASCHEMA",
    "SPECVERSION",
    "Alert",
    "AlertData",
    "build_alert",
    "rfc3339_from_ns",
]

ALERT_STATES: Final[tuple[str, ...]] = ("detected", "resolved")
#: CloudEvents ``type`` of each alert state.
ALERT_TYPES: Final[Mapping[str, str]] = {
    "detected": "io.fallwatch.fall.detected",
    "resolved": "io.fallwatch.fall.resolved",
}
DATASCHEMA: Final[str] = "fallwatch/alert/v1"
SPECVERSION: Final[str] = "1.0"
_CONTENT_TYPE: Final[str] = "application/json"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def rfc3339_from_ns(epoch_ns: int) -> str:
    """RFC 3339 UTC time with microseconds, e.g. ``2026-11-25T09:00:00.123456Z``."""
    seconds, rest_ns = divmod(int(epoch_ns), 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=rest_ns // 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _seq(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RecordValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class AlertData:
    """The ``data`` of an alert CloudEvent (what alerting systems read)."""

    event_id: str
    stream_id: str
    state: str
    confidence: float
    first_window_seq: int
    last_window_seq: int
    windows: tuple[int, ...]
    decided_by: str
    capture_time: str
    snapshot_jpeg_b64: str | None
    model_versions: Mapping[str, str]

    def __post_init__(self) -> None:
        if not self.event_id or not self.stream_id:
            raise RecordValueError("alert event_id and stream_id must not be empty")
        if self.state not in ALERT_STATES:
            raise RecordValueError(f"alert state must be one of {ALERT_STATES}, got {self.state!r}")
        if self.decided_by not in DECIDED_BY:
            raise RecordValueError(
                f"decided_by must be one of {DECIDED_BY}, got {self.decided_by!r}"
            )
        if not 0.0 <= self.confidence <= 1.0:
            raise RecordValueError(f"confidence must be in [0, 1], got {self.confidence!r}")
        _seq("first_window_seq", self.first_window_seq)
        _seq("last_window_seq", self.last_window_seq)
        for seq in self.windows:
            _seq("windows[]", seq)
        if list(self.windows) != sorted(self.windows):
            raise RecordValueError("alert windows must be ascending")

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "stream_id": self.stream_id,
            "state": self.state,
            "confidence": self.confidence,
            "first_window_seq": self.first_window_seq,
            "last_window_seq": self.last_window_seq,
            "windows": list(self.windows),
            "decided_by": self.decided_by,
            "capture_time": self.capture_time,
            "snapshot_jpeg_b64": self.snapshot_jpeg_b64,
            "model_versions": dict(self.model_versions),
        }


@dataclass(frozen=True, slots=True)
class Alert:
    """One fall alert (``alert.v1.json``); made only by ``build_alert``."""

    id: str
    source: str
    subject: str
    time: str
    data: AlertData

    def __post_init__(self) -> None:
        if _UUID.fullmatch(self.id) is None:
            raise RecordValueError(f"alert id must be a lower-case uuid, got {self.id[:40]!r}")
        if not self.source:
            raise RecordValueError("alert source must not be empty")
        if self.subject != self.data.stream_id:
            raise RecordValueError("alert subject must be its stream id")

    @property
    def type(self) -> str:
        """The CloudEvents ``type``, from the state."""
        return ALERT_TYPES[self.data.state]

    @property
    def key(self) -> bytes:
        """The Kafka key of the alert (the stream id)."""
        return self.subject.encode("utf-8")

    def to_json(self) -> dict[str, Any]:
        """The CloudEvent as a JSON-ready dict."""
        return {
            "specversion": SPECVERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "time": self.time,
            "datacontenttype": _CONTENT_TYPE,
            "dataschema": DATASCHEMA,
            "data": self.data.to_json(),
        }

    def encode(self) -> bytes:
        """The Kafka value: compact, sorted-key UTF-8 JSON (deterministic bytes)."""
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True).encode("utf-8")


def build_alert(
    *,
    alert_id: str,
    source: str,
    stream_id: str,
    event_id: str,
    state: str,
    confidence: float,
    first_window_seq: int,
    last_window_seq: int,
    windows: Sequence[int],
    decided_by: str,
    capture_end_ns: int,
    created_ms: int,
    snapshot_b64: str | None,
    model_versions: Mapping[str, str],
) -> Alert:
    """The one builder of an alert: ``time`` is when the facts were committed
    (``created_ms``), ``capture_time`` the capture end of the event's first fall window,
    ``confidence`` clamped into [0, 1]."""
    return Alert(
        id=alert_id,
        source=source,
        subject=stream_id,
        time=rfc3339_from_ns(created_ms * 1_000_000),
        data=AlertData(
            event_id=event_id,
            stream_id=stream_id,
            state=state,
            confidence=min(1.0, max(0.0, confidence)),
            first_window_seq=first_window_seq,
            last_window_seq=last_window_seq,
            windows=tuple(windows),
            decided_by=decided_by,
            capture_time=rfc3339_from_ns(capture_end_ns),
            snapshot_jpeg_b64=snapshot_b64,
            model_versions=dict(model_versions),
        ),
    )
