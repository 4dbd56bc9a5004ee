"""Pinned model digests (FALLWATCH_EDGE_MODEL_SHA256 / _CLOUD_ / _SWITCHER_): a worker refuses
to start with a model file whose sha256 differs, with a clear error and exit status 1."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from models.runtime.errors import ModelLoadError
from models.runtime.onnx_models import CloudModel, EdgeModel, Switcher
from streams import cli
from streams.core.settings import Settings, get_settings
from tests.onnx_test_models import (
    build_margin_switcher,
    build_mean_pixel_cloud,
    build_mean_pixel_edge,
)

# Nothing listens here: a worker that reached Kafka before checking the pin would fail
# with a different (topic setup) error, after seconds of retries.
_NO_BROKER = "127.0.0.1:9"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def models(tmp_path: Path) -> dict[str, Path]:
    return {
        "edge": build_mean_pixel_edge(tmp_path / "edge.onnx"),
        "cloud": build_mean_pixel_cloud(tmp_path / "cloud.onnx"),
        "switcher": build_margin_switcher(tmp_path / "switcher.onnx"),
    }


@pytest.fixture
def worker_env(monkeypatch: pytest.MonkeyPatch, models: dict[str, Path]) -> Iterator[None]:
    monkeypatch.setattr(cli, "_setup_logging", lambda level, json_logs: None)
    monkeypatch.setenv("FALLWATCH_KAFKA_BOOTSTRAP", _NO_BROKER)
    for role, path in models.items():
        monkeypatch.setenv(f"FALLWATCH_{role.upper()}_MODEL_PATH", str(path))
        monkeypatch.delenv(f"FALLWATCH_{role.upper()}_MODEL_SHA256", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_settings_take_a_sha256_hex_digest_or_nothing() -> None:
    digest = "AB" * 32
    assert Settings(edge_model_sha256=digest).edge_model_sha256 == "ab" * 32
    assert Settings(cloud_model_sha256="  ").cloud_model_sha256 is None
    assert Settings().switcher_model_sha256 is None  # not pinned by default
    with pytest.raises(ValidationError, match="sha256 hex digest"):
        Settings(switcher_model_sha256="abc123")
    with pytest.raises(ValidationError, match="sha256 hex digest"):
        Settings(edge_model_sha256="g" * 64)


def test_load_accepts_the_pinned_file_and_refuses_any_other(models: dict[str, Path]) -> None:
    for cls, role in ((EdgeModel, "edge"), (CloudModel, "cloud"), (Switcher, "switcher")):
        path = models[role]
        assert cls.load(path, file_sha256=sha256(path).upper()).meta.role == role
        other = sha256(models["edge" if role != "edge" else "cloud"])
        with pytest.raises(ModelLoadError, match=f"{role} model sha256 {other} is pinned"):
            cls.load(path, file_sha256=other)


@pytest.mark.parametrize("role", ["edge", "switcher", "cloud"])
def test_a_worker_with_a_mismatched_pin_exits_1_before_connecting(
    role: str,
    models: dict[str, Path],
    worker_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wrong = hashlib.sha256(b"another model").hexdigest()
    monkeypatch.setenv(f"FALLWATCH_{role.upper()}_MODEL_SHA256", wrong)
    command = "cloud" if role == "cloud" else "edge"
    assert cli.main([command]) == 1
    err = capsys.readouterr().err
    assert f"fallwatch {command}: {models[role]}: file sha256 is {sha256(models[role])}" in err
    assert f"{role} model sha256 {wrong} is pinned; refusing" in err
