"""Metrics definitions, JSON logging and dead-letter headers."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from importlib import resources

import jsonschema
import pytest
from prometheus_client import REGISTRY, generate_latest

from streams.core import metrics
from streams.core.errors import (
    POISON_REASONS,
    MessageSchemaError,
    PoisonMessageError,
    WindowDecodeError,
    WindowDimensionsError,
)
from streams.core.logs import configure_logging
from streams.kafka.deadletter import (
    MAX_ERROR_CHARS,
    REQUIRED_HEADERS,
    dead_letter_headers,
    merge_headers,
    parse_headers,
    poison_reason,
)

# --- metrics -------------------------------------------------------------------------

ALL_METRICS = [
    getattr(metrics, name)
    for name in metrics.__all__
    if name.isupper() and hasattr(getattr(metrics, name), "_name")
]


def test_metric_names_follow_conventions() -> None:
    metrics.preinitialize()
    text = generate_latest(REGISTRY).decode()
    assert len(ALL_METRICS) == 13
    for metric in ALL_METRICS:
        name = metric._name
        assert name.startswith("fallwatch_"), name
        assert not any(unit in name for unit in ("_ms", "millis", "_us")), name
        if metric._type == "counter":
            # prometheus-client stores the base name and exposes `<base>_total`.
            assert f"\n{name}_total" in text, name
        if metric._type == "histogram" and "size" not in name:
            assert name.endswith("_seconds"), name


def test_preinitialize_exposes_every_bounded_series() -> None:
    metrics.preinitialize()
    text = generate_latest(REGISTRY).decode()
    for reason in POISON_REASONS:
        assert f'fallwatch_dead_letters_total{{reason="{reason}"}}' in text
    for path in metrics.END_TO_END_PATHS:
        assert f'fallwatch_end_to_end_seconds_bucket{{le="0.15",path="{path}"}}' in text
    for stage in metrics.STAGES:
        assert f'fallwatch_stage_seconds_count{{stage="{stage}"}}' in text
    assert "fallwatch_pending_offloads " in text


def test_counters_count() -> None:
    before = metrics.ALERTS.labels(state="detected")._value.get()
    metrics.ALERTS.labels(state="detected").inc()
    assert metrics.ALERTS.labels(state="detected")._value.get() == before + 1


def test_end_to_end_buckets_bracket_the_latency_target() -> None:
    assert 0.15 in metrics.END_TO_END_BUCKETS
    assert min(metrics.STAGE_BUCKETS) <= 0.001 and max(metrics.STAGE_BUCKETS) >= 1.0
    assert max(metrics.END_TO_END_BUCKETS) > 5.0  # above the cloud deadline


def test_check_label_bounds_values() -> None:
    assert metrics.check_label("reason", "decode") == "decode"
    with pytest.raises(ValueError):
        metrics.check_label("reason", "something-new")
    with pytest.raises(ValueError):
        metrics.check_label("colour", "red")


# --- logging -------------------------------------------------------------------------


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def test_json_logs_carry_event_and_fields(restore_root_logging: None) -> None:
    out = io.StringIO()
    configure_logging("INFO", stream=out)
    logging.getLogger("streams.test").info("dead_letter", extra={"reason": "decode", "offset": 7})
    logging.getLogger("streams.test").debug("hidden")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 1
    line = lines[0]
    assert line["message"] == "dead_letter"
    assert (line["reason"], line["offset"], line["level"], line["logger"]) == (
        "decode",
        7,
        "INFO",
        "streams.test",
    )
    assert line["time"].endswith("Z") and "T" in line["time"]


def test_configure_twice_does_not_duplicate_and_quiets_libraries(
    restore_root_logging: None,
) -> None:
    out = io.StringIO()
    configure_logging("DEBUG", stream=out)
    configure_logging("DEBUG", stream=out)
    logging.getLogger("streams.test").debug("once")
    logging.getLogger("kafka.conn").info("chatty")
    assert out.getvalue().count('"once"') == 1
    assert "chatty" not in out.getvalue()
    with pytest.raises(ValueError):
        configure_logging("LOUD")


def test_plain_text_mode(restore_root_logging: None) -> None:
    out = io.StringIO()
    configure_logging("INFO", json=False, stream=out)
    logging.getLogger("streams.test").warning("plain_event")
    assert "WARNING streams.test plain_event" in out.getvalue()


# --- dead letters --------------------------------------------------------------------


def header_schema() -> jsonschema.Draft202012Validator:
    schema = json.loads(resources.files("schemas").joinpath("dead_letter.v1.json").read_text())
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (WindowDecodeError("bad h264"), "decode"),
        (WindowDimensionsError("too big"), "dimensions"),
        (MessageSchemaError("bad avro"), "schema"),
        (PoisonMessageError("?"), "poison"),
        (ValueError("not ours"), "poison"),
    ],
)
def test_headers_match_schema_and_name_the_reason(error: Exception, reason: str) -> None:
    headers = dead_letter_headers(
        source_topic="fallwatch.frames",
        partition=3,
        offset=42,
        error=error,
        worker="edge",
        now_ns=5,
    )
    parsed = parse_headers(headers)
    header_schema().validate(parsed)
    assert all(name in parsed for name in REQUIRED_HEADERS)
    assert parsed["fallwatch.dlq.partition"] == "3"
    assert parsed["fallwatch.dlq.offset"] == "42"
    assert parsed["fallwatch.dlq.error_class"] == type(error).__name__
    assert parsed["fallwatch.dlq.reason"] == reason == poison_reason(error)
    assert parsed["fallwatch.dlq.worker"] == "edge"
    assert all(isinstance(v, bytes) for _, v in headers)


def test_error_text_is_bounded_and_unprintable_errors_survive() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("boom")

    long_headers = parse_headers(
        dead_letter_headers(source_topic="t", partition=0, offset=0, error=ValueError("x" * 10_000))
    )
    assert len(long_headers["fallwatch.dlq.error"]) == MAX_ERROR_CHARS
    odd = parse_headers(
        dead_letter_headers(source_topic="t", partition=0, offset=0, error=Unprintable())
    )
    assert "Unprintable" in odd["fallwatch.dlq.error"]
    header_schema().validate(odd)


def test_merge_replaces_stale_dead_letter_headers_and_keeps_others() -> None:
    old = [("trace-id", b"abc"), ("fallwatch.dlq.offset", b"1"), ("empty", None)]
    new = dead_letter_headers(source_topic="t", partition=1, offset=9, error=ValueError("e"))
    merged = merge_headers(old, new)
    assert ("trace-id", b"abc") in merged and ("empty", b"") in merged
    assert [v for k, v in merged if k == "fallwatch.dlq.offset"] == [b"9"]
