"""The typed alert record (schemas.alerts): one builder, its rules, its JSON schema."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.alerts import Alert, build_alert
from schemas.records import DECIDED_BY, RecordValueError

ALERT_ID = "3f1f0f3e-5b0a-5c1e-9d5e-2f0a8f7d1c2b"
CAPTURE_NS = 1_764_061_199_500_000_000  # 2025-11-25T08:59:59.5Z
CREATED_MS = 1_764_061_200_123


def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(resources.files("schemas").joinpath("alert.v1.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def values(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "alert_id": ALERT_ID,
        "source": "fallwatch/edge/fallwatch-edge",
        "stream_id": "cam-1",
        "event_id": "ab12-1",
        "state": "detected",
        "confidence": 0.91,
        "first_window_seq": 17,
        "last_window_seq": 17,
        "windows": (17,),
        "decided_by": "cloud",
        "capture_end_ns": CAPTURE_NS,
        "created_ms": CREATED_MS,
        "snapshot_b64": "/9j/2Q==",
        "model_versions": {"edge": "e@1", "cloud": "c@2"},
    }
    return base | changes


def test_the_built_alert_is_the_documented_cloudevent_byte_for_byte() -> None:
    alert = build_alert(**values())
    expected = {
        "specversion": "1.0",
        "id": ALERT_ID,
        "source": "fallwatch/edge/fallwatch-edge",
        "type": "io.fallwatch.fall.detected",
        "subject": "cam-1",
        "time": "2025-11-25T09:00:00.123000Z",
        "datacontenttype": "application/json",
        "dataschema": "fallwatch/alert/v1",
        "data": {
            "event_id": "ab12-1",
            "stream_id": "cam-1",
            "state": "detected",
            "confidence": 0.91,
            "first_window_seq": 17,
            "last_window_seq": 17,
            "windows": [17],
            "decided_by": "cloud",
            "capture_time": "2025-11-25T08:59:59.500000Z",
            "snapshot_jpeg_b64": "/9j/2Q==",
            "model_versions": {"edge": "e@1", "cloud": "c@2"},
        },
    }
    assert alert.to_json() == expected
    assert alert.encode() == json.dumps(expected, separators=(",", ":"), sort_keys=True).encode()
    assert alert.key == b"cam-1"
    validator().validate(json.loads(alert.encode()))


@given(
    state=st.sampled_from(["detected", "resolved"]),
    decided_by=st.sampled_from(DECIDED_BY),
    confidence=st.floats(allow_nan=False, min_value=-2.0, max_value=2.0),
    windows=st.lists(st.integers(0, 2**53 - 1), max_size=8, unique=True).map(sorted),
    snapshot=st.one_of(st.none(), st.just("/9j/2Q==")),
    capture_ns=st.integers(0, 2**62),
    created_ms=st.integers(0, 2**42),
)
def test_every_built_alert_validates_against_the_json_schema(
    state: str,
    decided_by: str,
    confidence: float,
    windows: list[int],
    snapshot: str | None,
    capture_ns: int,
    created_ms: int,
) -> None:
    alert = build_alert(
        **values(
            state=state,
            decided_by=decided_by,
            confidence=confidence,
            windows=windows,
            first_window_seq=windows[0] if windows else 0,
            last_window_seq=windows[-1] if windows else 0,
            snapshot_b64=snapshot,
            capture_end_ns=capture_ns,
            created_ms=created_ms,
        )
    )
    document = json.loads(alert.encode())
    validator().validate(document)
    assert 0.0 <= document["data"]["confidence"] <= 1.0
    assert document["type"] == f"io.fallwatch.fall.{state}"
    assert build_alert(**values(state=state, decided_by=decided_by)) == build_alert(
        **values(state=state, decided_by=decided_by)
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"state": "open"},
        {"decided_by": "human"},
        {"alert_id": "not-a-uuid"},
        {"alert_id": ALERT_ID.upper()},
        {"source": ""},
        {"event_id": ""},
        {"stream_id": ""},
        {"windows": (18, 17)},
        {"windows": (-1,)},
        {"first_window_seq": -1},
    ],
)
def test_values_outside_the_alert_rules_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(RecordValueError):
        build_alert(**values(**changes))


def test_the_alert_record_is_immutable() -> None:
    alert = build_alert(**values())
    assert isinstance(alert, Alert)
    with pytest.raises(AttributeError):
        alert.subject = "cam-2"  # type: ignore[misc]
