"""Metrics definitions and JSON logging (streams.core.metrics, streams.core.logs)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY, generate_latest

from streams.core import metrics
from streams.core.errors import POISON_REASONS
from streams.core.logs import configure_logging

# --- metrics -------------------------------------------------------------------------

ALL_METRICS = [
    getattr(metrics, name)
    for name in metrics.__all__
    if name.isupper() and hasattr(getattr(metrics, name), "_name")
]


def test_metric_names_follow_conventions() -> None:
    metrics.preinitialize()
    text = generate_latest(REGISTRY).decode()
    assert len(ALL_METRICS) == 15
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
