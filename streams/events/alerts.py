"""Alerts: event facts from the tracker → typed alert records (`schemas.alerts.Alert`).

Inputs: `AlertFacts`, the immutable facts of one alert (written by the Lua tracker into
the outbox as JSON, or by the pure-Python reference model) and the event `source`.
Outputs: `PendingAlert` — the typed `Alert` (CloudEvents 1.0, `schemas/alert.v1.json`,
made by its one builder `schemas.alerts.build_alert`), its JSON bytes (`payload`, the
Kafka value) and the fields the events agent needs (alert id, stream, state, capture time).

Guarantees:
- `alert_id(stream, event_id, state)` is uuid5(`ALERT_NAMESPACE`, "stream:event_id:state");
  the Lua script computes the same value (tests check both agree), so a re-published
  alert carries the same CloudEvents `id` and consumers can dedupe on it.
- `build_alert` is a pure function of the facts: the CloudEvent `time` is the moment the
  facts were committed (`created_ms`), so a re-publish is byte-identical.
Failure modes: `AlertFacts.from_json` raises `ValueError` on malformed outbox JSON (a
deployment mismatch), `build_alert` `ValueError`/`OverflowError` on facts it cannot render
and `schemas.RecordValueError` on facts outside the alert's rules;
the events agent dead-letters such an outbox entry as `MalformedAlertError`, and an alert
too large for the alerts topic as `AlertTooLargeError` (both then leave the outbox).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas.alerts import ALERT_STATES, DATASCHEMA, Alert, rfc3339_from_ns
from schemas.alerts import build_alert as build_alert_record
from streams.core.errors import MessageSchemaError, MessageTooLargeError

__all__ = [
    "ALERT_NAMESPACE",
    "ALERT_STATES",
    "DATASCHEMA",
    "AlertFacts",
    "AlertTooLargeError",
    "MalformedAlertError",
    "PendingAlert",
    "alert_id",
    "build_alert",
    "rfc3339_from_ns",
]

#: Namespace of alert ids (uuid5 of a URL; never change it: ids would change).
ALERT_NAMESPACE = uuid.UUID("52a807e8-c289-5ce5-beb4-d5d3f54626df")


class AlertTooLargeError(MessageTooLargeError):
    """An alert whose CloudEvent exceeds the alerts topic's record limit (checked before
    sending, or refused by the producer or broker). Raised and handled by the events agent:
    the alert is dead-lettered and removed from the outbox, the alerts behind it go on.
    Operator: the dead letter's headers name the alert id; look for the result that carried
    an oversized snapshot or model_versions map."""


class MalformedAlertError(MessageSchemaError):
    """An outbox entry that cannot be turned into an alert (malformed JSON, facts that do
    not render). Raised and handled by the events agent like `AlertTooLargeError`.
    Operator: a deployment mismatch between the Lua script and `AlertFacts`."""


def alert_id(stream_id: str, event_id: str, state: str) -> str:
    """The CloudEvents id of an alert: stable for (stream, event, state)."""
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{stream_id}:{event_id}:{state}"))


@dataclass(frozen=True)
class AlertFacts:
    """Everything one alert says, as committed atomically with the state change."""

    alert_id: str
    event_id: str
    stream_id: str
    state: str
    first_window_seq: int
    last_window_seq: int
    windows: tuple[int, ...]
    decided_by: str
    confidence: float
    capture_end_ns: int
    snapshot_b64: str | None
    model_versions: Mapping[str, str] = field(default_factory=dict)
    created_ms: int = 0

    @classmethod
    def from_json(cls, data: bytes | str) -> AlertFacts:
        """Parse the outbox JSON written by the Lua tracker (numbers travel as strings)."""
        try:
            raw = json.loads(data)
            models = raw.get("model_versions") or "{}"
            versions = json.loads(models) if isinstance(models, str) else models
            windows = raw.get("windows") or []
            return cls(
                alert_id=str(raw["alert_id"]),
                event_id=str(raw["event_id"]),
                stream_id=str(raw["stream_id"]),
                state=str(raw["state"]),
                first_window_seq=int(raw["first"]),
                last_window_seq=int(raw["last"]),
                windows=tuple(sorted(int(w) for w in windows)),
                decided_by=str(raw["decided_by"]),
                confidence=float(raw["confidence"]),
                capture_end_ns=int(raw["capture_end_ns"]),
                snapshot_b64=str(raw["snapshot_b64"]) if raw.get("snapshot_b64") else None,
                model_versions={str(k): str(v) for k, v in dict(versions).items()},
                created_ms=int(raw["created_ms"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"malformed alert facts: {exc}") from exc


@dataclass(frozen=True)
class PendingAlert:
    """An alert ready to publish (value `payload`, key `stream_id`), then to ack by `alert_id`."""

    alert_id: str
    event_id: str
    stream_id: str
    state: str
    capture_end_ns: int
    alert: Alert
    payload: bytes
    facts: AlertFacts


def build_alert(facts: AlertFacts, source: str) -> PendingAlert:
    """The alert for `facts` (pure, deterministic; `schemas.alerts.build_alert` makes the
    record), with its bytes and the fields the events agent needs."""
    alert = build_alert_record(
        alert_id=facts.alert_id,
        source=source,
        stream_id=facts.stream_id,
        event_id=facts.event_id,
        state=facts.state,
        confidence=facts.confidence,
        first_window_seq=facts.first_window_seq,
        last_window_seq=facts.last_window_seq,
        windows=facts.windows,
        decided_by=facts.decided_by,
        capture_end_ns=facts.capture_end_ns,
        created_ms=facts.created_ms,
        snapshot_b64=facts.snapshot_b64,
        model_versions=facts.model_versions,
    )
    return PendingAlert(
        alert_id=facts.alert_id,
        event_id=facts.event_id,
        stream_id=facts.stream_id,
        state=facts.state,
        capture_end_ns=facts.capture_end_ns,
        alert=alert,
        payload=alert.encode(),
        facts=facts,
    )
