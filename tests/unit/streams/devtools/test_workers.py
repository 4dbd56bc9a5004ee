"""The one worker harness (streams.devtools.workers): metrics parsing, start-up failures."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.core.settings import Settings
from streams.devtools.workers import (
    WorkerProcess,
    WorkerStartError,
    free_port,
    isolated_settings,
    parse_metrics,
    wait_all_ready,
    worker_env,
)


def test_parse_metrics_reads_labelled_samples() -> None:
    text = (
        "# TYPE fallwatch_windows_in_total counter\n"
        'fallwatch_windows_in_total{worker="edge"} 12.0\n'
    )
    assert parse_metrics(text)[("fallwatch_windows_in_total", (("worker", "edge"),))] == 12.0


def test_isolated_settings_give_a_run_its_own_topics_groups_prefix_and_env() -> None:
    settings = isolated_settings(Settings(), "run-1", edge_http_port=7101)
    topics = [settings.topic_frames, settings.topic_results, settings.topic_deadletter]
    assert all("run-1" in t for t in topics)
    assert "run-1" in settings.edge_group and "run-1" in settings.cloud_group
    assert "run-1" in settings.redis_prefix
    env = worker_env(settings, {"PATH": "/bin"})
    assert env["PATH"] == "/bin"
    assert env["FALLWATCH_TOPIC_FRAMES"] == settings.topic_frames
    assert env["FALLWATCH_EDGE_HTTP_PORT"] == "7101"


def test_worker_env_hands_every_setting_to_the_child_secrets_in_clear(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Regression: workers got only topics/groups/prefix/ports from the harness and their
    Kafka/Redis connection from the parent's environment (a SecretStr gives '**********')."""
    ca = tmp_path / "ca.pem"
    secured = isolated_settings(
        Settings(
            kafka_bootstrap="127.0.0.1:29094",
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="fallwatch",
            kafka_sasl_password=SecretStr("kafka-secret"),
            kafka_ssl_cafile=ca,
            redis_url=SecretStr(f"rediss://:redis-secret@127.0.0.1:26380/0?ssl_ca_certs={ca}"),
            edge_model_sha256="ab" * 32,
        ),
        "run-3",
    )
    parent = {"PATH": "/bin", "FALLWATCH_SWITCHER_THRESHOLD": "0.3"}  # not in `secured`
    env = worker_env(secured, parent)
    assert env["FALLWATCH_KAFKA_SASL_PASSWORD"] == "kafka-secret"
    assert env["FALLWATCH_REDIS_URL"].startswith("rediss://:redis-secret@")
    assert env["FALLWATCH_KAFKA_SSL_CAFILE"] == str(ca)
    assert "FALLWATCH_SWITCHER_THRESHOLD" not in env and env["PATH"] == "/bin"
    for name in list(os.environ):
        if name.upper().startswith("FALLWATCH_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings() == secured  # the child builds exactly the caller's settings


def test_a_worker_that_exits_during_start_up_is_reported_with_its_log(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "print('model missing'); raise SystemExit(3)"]
    worker = WorkerProcess("edge", {}, free_port(), tmp_path / "edge.log", argv=argv)
    assert worker.stop() is None  # never started
    worker.start()
    with pytest.raises(WorkerStartError, match="status 3") as caught:
        worker.wait_ready(timeout_s=30)
    assert "model missing" in str(caught.value)
    assert worker.exited() == 3 and worker.stop() == 3


def test_a_worker_never_ready_times_out_and_stops_on_sigterm(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    worker = WorkerProcess("cloud", {}, free_port(), tmp_path / "cloud.log", argv=argv)
    worker.start()
    assert not worker.ready() and worker.metrics() == {}
    with pytest.raises(WorkerStartError, match="not ready"):
        wait_all_ready([worker], timeout_s=0.0)
    assert worker.stop(grace_s=10) == -signal.SIGTERM
    assert worker.logs().startswith("\n===== start #1")


def test_for_settings_reads_the_role_port_and_run_env(tmp_path: Path) -> None:
    settings = isolated_settings(Settings(), "run-2", cloud_http_port=7202, http_host="0.0.0.0")
    worker = WorkerProcess.for_settings("cloud", settings, tmp_path, extra_env={"X": "1"})
    assert (worker.port, worker.host) == (7202, "127.0.0.1")  # probes go to loopback
    assert worker.env["X"] == "1" and worker.env["FALLWATCH_REDIS_PREFIX"] == settings.redis_prefix
    assert worker.argv[-3:] == ["-m", "streams", "cloud"]
    assert worker.log_path == tmp_path / "cloud.log"
    with pytest.raises(ValueError):
        WorkerProcess("gateway", {}, 1, tmp_path / "x.log")
