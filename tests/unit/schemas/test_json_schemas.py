"""JSON schemas shipped in schemas/: alert (CloudEvents) and dead-letter headers."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import jsonschema
import pytest


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(resources.files("schemas").joinpath(name).read_text())
    return document


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = load(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def sample_alert() -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "3f1f0f3e-5b0a-5c1e-9d5e-2f0a8f7d1c2b",
        "source": "fallwatch/edge/fallwatch-edge",
        "type": "io.fallwatch.fall.detected",
        "subject": "cam-1",
        "time": "2026-11-25T09:00:00.123456Z",
        "datacontenttype": "application/json",
        "dataschema": "fallwatch/alert/v1",
        "data": {
            "event_id": "cam-1:ab12",
            "stream_id": "cam-1",
            "state": "detected",
            "confidence": 0.91,
            "first_window_seq": 17,
            "last_window_seq": 17,
            "windows": [17],
            "decided_by": "cloud",
            "capture_time": "2026-11-25T08:59:59.500000Z",
            "snapshot_jpeg_b64": "/9j/2Q==",
            "model_versions": {"edge": "1.0", "cloud": "2.0"},
        },
    }


def test_sample_alert_is_valid() -> None:
    validator("alert.v1.json").validate(sample_alert())


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("specversion",), "0.3"),
        (("type",), "io.fallwatch.fall.maybe"),
        (("data", "state"), "open"),
        (("data", "confidence"), 1.5),
        (("data", "windows"), ["17"]),
        (("data", "decided_by"), "human"),
        (("time",), "yesterday"),
        (("id",), "not-a-uuid"),
    ],
)
def test_alert_schema_rejects_wrong_values(path: tuple[str, ...], value: Any) -> None:
    alert = sample_alert()
    target = alert
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert not validator("alert.v1.json").is_valid(alert)


def test_alert_schema_requires_snapshot_key_but_allows_null() -> None:
    alert = sample_alert()
    alert["data"]["snapshot_jpeg_b64"] = None
    assert validator("alert.v1.json").is_valid(alert)
    missing = copy.deepcopy(alert)
    del missing["data"]["snapshot_jpeg_b64"]
    assert not validator("alert.v1.json").is_valid(missing)


def test_dead_letter_header_schema() -> None:
    check = validator("dead_letter.v1.json")
    headers = {
        "fallwatch.dlq.source_topic": "fallwatch.frames",
        "fallwatch.dlq.partition": "3",
        "fallwatch.dlq.offset": "1234",
        "fallwatch.dlq.error_class": "WindowDecodeError",
        "fallwatch.dlq.error": "h264 payload does not decode",
    }
    check.validate(headers)
    assert not check.is_valid({**headers, "fallwatch.dlq.offset": "x"})
    assert not check.is_valid({k: v for k, v in headers.items() if k != "fallwatch.dlq.error"})
