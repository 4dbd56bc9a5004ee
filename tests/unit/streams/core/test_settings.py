"""Settings: environment parsing, validation, masking, caching."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr, ValidationError

from streams.core.errors import SettingsError
from streams.core.settings import Settings, get_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import os

    for name in list(os.environ):
        if name.upper().startswith("FALLWATCH_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_defaults_match_contract() -> None:
    s = Settings()
    assert s.kafka_bootstrap == "127.0.0.1:19092"
    assert s.topic_frames == "fallwatch.frames"
    assert s.topic_partitions == 8
    assert s.redis_url.get_secret_value() == "redis://127.0.0.1:16379/0"
    assert s.max_window_bytes == 900_000
    assert s.edge_model_path.name == "edge.onnx"


def test_environment_overrides_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FALLWATCH_REDIS_PREFIX", "test-123")
    monkeypatch.setenv("FALLWATCH_TOPIC_PARTITIONS", "3")
    monkeypatch.setenv("FALLWATCH_SWITCHER_THRESHOLD", "0.25")
    monkeypatch.setenv("FALLWATCH_LOG_LEVEL", "debug")
    s = get_settings()
    assert (s.redis_prefix, s.topic_partitions, s.switcher_threshold) == ("test-123", 3, 0.25)
    assert s.log_level == "DEBUG"


def test_get_settings_is_cached_and_frozen() -> None:
    s = get_settings()
    assert get_settings() is s
    with pytest.raises(ValidationError):
        s.topic_partitions = 2


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TOPIC_PARTITIONS", "0"),
        ("FALL_THRESHOLD", "1.5"),
        ("AUDIT_RATE", "-0.1"),
        ("SWITCHER_THRESHOLD", "2"),
        ("EDGE_BATCH_MAX", "0"),
        ("EDGE_BATCH_WAIT_S", "-1"),
        ("REDIS_URL", "http://localhost"),
        ("GATEWAY_WIDTH", "161"),
        ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        ("TOPIC_RESULTS", "fallwatch.frames"),
        ("CLOUD_HTTP_PORT", "6066"),
        ("LOG_LEVEL", "LOUD"),
        ("EDGE_HTTP_PORT", "70000"),
    ],
)
def test_broken_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"FALLWATCH_{name}", value)
    with pytest.raises(SettingsError):
        get_settings()


def test_errors_and_summaries_never_leak_secrets(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FALLWATCH_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FALLWATCH_KAFKA_SASL_PASSWORD", "hunter2-kafka")
    with pytest.raises(SettingsError) as info:
        get_settings()
    assert "hunter2" not in str(info.value)

    s = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="svc",
        kafka_sasl_password=SecretStr("hunter2-kafka"),
        redis_url=SecretStr("redis://user:hunter2-redis@redis.example:6380/1"),
    )
    masked = s.masked()
    dumped = json.dumps(masked)
    assert "hunter2" not in dumped
    assert masked["redis_url"].startswith("redis://user:") and "redis.example:6380/1" in dumped
    assert masked["kafka_sasl_username"] == "svc"
    assert set(masked) == set(Settings.model_fields)
    with caplog.at_level(logging.INFO, logger="streams.core.settings"):
        s.log_summary()
    record = caplog.records[-1]
    assert record.getMessage() == "settings"
    assert "hunter2" not in json.dumps(record.settings)  # type: ignore[attr-defined]
