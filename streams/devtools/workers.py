"""The one harness that starts edge and cloud worker processes (demo, load_tests, tests).

Inputs: base ``Settings`` (Kafka/Redis addresses, models) and a run id, or, for tests that
configure workers only through ``FALLWATCH_*`` variables, an environment dict.
Outputs:
- ``isolated_settings(base, run_id)`` / ``isolated_run(base, run_id)``: ``Settings`` whose
  topics, consumer groups and Redis prefix carry the run id (``isolated_run`` also picks
  two free loopback HTTP ports); ``worker_env(settings, base_env)``: the environment that
  hands ALL of those settings (connection details and secrets included) to a worker
  subprocess.
- ``WorkerProcess``: one ``python -m streams edge|cloud`` subprocess (or another command
  line given as ``argv``) logging to a file: ``start`` (again after a stop: restart),
  ``wait_ready`` polls its ``/readyz``, ``kill9`` sends SIGKILL to exactly that pid,
  ``stop`` sends SIGTERM then SIGKILL after a grace period, ``metrics()`` scrapes
  ``/metrics`` into ``{(name, sorted labels): value}``.
- ``wait_all_ready(workers, timeout_s)``: waits for several workers at once.
- ``cleanup_run(settings, run_id)``: deletes the run's topics (Faust's internal ones too)
  and Redis keys; best effort, never raises.

Guarantees: workers start with the interpreter running this module and the repository
root as working directory, so they import the same ``streams`` as their caller (and its
``PYTHONPATH``); every process started here is stopped through its own handle (no broad
kills); readiness and metrics are read on loopback unless the settings name another host.
Failure modes: ``WorkerStartError`` when a worker exits during start-up or is not ready in
time (the message names its log file and shows its tail).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from streams.core.errors import FallwatchError
from streams.core.settings import Settings

__all__ = [
    "LOOPBACK",
    "REPO_ROOT",
    "MetricSamples",
    "WorkerProcess",
    "WorkerStartError",
    "cleanup_run",
    "free_port",
    "isolated_run",
    "isolated_settings",
    "new_run_id",
    "parse_metrics",
    "settings_env",
    "wait_all_ready",
    "worker_env",
]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
MetricSamples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
STOP_GRACE_S = 20.0
_POLL_S = 0.25


class WorkerStartError(FallwatchError):
    """Raised by ``wait_all_ready``/``WorkerProcess.wait_ready`` when a worker exits during
    start-up or never reports ready. Operator: read the worker log named in the message
    (``make status`` for the stack)."""


def new_run_id(hint: str) -> str:
    """``<hint>-<utc time>-<6 hex>``: unique, Kafka- and Redis-friendly."""
    return f"{hint}-{time.strftime('%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def free_port(host: str = LOOPBACK) -> int:
    """A currently free TCP port on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def isolated_settings(settings: Settings, run_id: str, **extra: Any) -> Settings:
    """Settings with run-unique topics, groups and Redis prefix (validated)."""
    updates = {
        "topic_frames": f"fallwatch.{run_id}.frames",
        "topic_offload": f"fallwatch.{run_id}.offload",
        "topic_results": f"fallwatch.{run_id}.results",
        "topic_alerts": f"fallwatch.{run_id}.alerts",
        "topic_deadletter": f"fallwatch.{run_id}.deadletter",
        "edge_group": f"fallwatch-edge-{run_id}",
        "cloud_group": f"fallwatch-cloud-{run_id}",
        "redis_prefix": f"fwdemo-{run_id}",
        **extra,
    }
    return type(settings).model_validate({**settings.model_dump(), **updates})


def isolated_run(base: Settings, run_id: str, **extra: Any) -> Settings:
    """``isolated_settings`` on ``http_host`` (loopback unless given) with two free ports."""
    host = str(extra.pop("http_host", LOOPBACK))
    edge_port = free_port(host)
    cloud_port = free_port(host)
    while cloud_port == edge_port:
        cloud_port = free_port(host)
    return isolated_settings(
        base,
        run_id,
        http_host=host,
        edge_http_port=edge_port,
        cloud_http_port=cloud_port,
        **extra,
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """Every setting as the ``FALLWATCH_*`` variable that gives a child the same value.

    Secrets are written in clear (``SecretStr.get_secret_value``: ``str()`` would hand the
    child the mask ``**********``); settings that are None are left out (see ``worker_env``).
    """
    env: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[f"FALLWATCH_{name.upper()}"] = str(value)
    return env


def worker_env(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """Environment for a worker subprocess: ``base`` with EVERY setting of ``settings``.

    The child reads its configuration from these variables through
    ``streams.core.settings``, so it gets exactly ``settings`` — connection details and
    secrets (Kafka SASL/TLS, the Redis URL with its password) as well as the run's topics,
    groups and ports — whatever the caller's own environment says. A setting that is None
    is removed from ``base`` (a parent's variable must not fill it in the child).
    Other variables (PATH, PYTHONPATH, ...) are inherited from ``base``.
    """
    given = settings_env(settings)
    env = dict(base)
    for name in type(settings).model_fields:
        env.pop(f"FALLWATCH_{name.upper()}", None)
    env.update(given)
    return env


def _probe_host(host: str) -> str:
    return LOOPBACK if host in ("", "0.0.0.0", "::") else host


class WorkerProcess:
    """One worker subprocess with its log file and HTTP port (see the module docstring)."""

    def __init__(
        self,
        role: str,
        env: Mapping[str, str],
        port: int,
        log_path: Path,
        *,
        host: str = LOOPBACK,
        argv: Sequence[str] | None = None,
    ) -> None:
        if role not in ("edge", "cloud"):
            raise ValueError(f"role must be edge or cloud, got {role!r}")
        self.role = role
        self.env = dict(env)
        self.port = port
        self.host = _probe_host(host)
        self.log_path = log_path
        self.argv = list(argv) if argv is not None else [sys.executable, "-m", "streams", role]
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @classmethod
    def for_settings(
        cls,
        role: str,
        settings: Settings,
        log_dir: Path,
        *,
        extra_env: Mapping[str, str] | None = None,
    ) -> WorkerProcess:
        """A ``fallwatch <role>`` worker on ``settings`` (``worker_env``), logging to
        ``log_dir/<role>.log``."""
        env = worker_env(settings, os.environ)
        env.update(extra_env or {})
        port = settings.edge_http_port if role == "edge" else settings.cloud_http_port
        return cls(role, env, port, log_dir / f"{role}.log", host=settings.http_host)

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self) -> None:
        """Start (or restart) the subprocess; its output is appended to ``log_path``."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"{self.role} worker already running (pid {self.proc.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with self.log_path.open("ab") as log_file:
            log_file.write(f"\n===== start #{self.starts} at {time.time():.3f}\n".encode())
            log_file.flush()
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=REPO_ROOT,
            )

    def exited(self) -> int | None:
        """The exit status, or None while it runs (or before it was started)."""
        return None if self.proc is None else self.proc.poll()

    def readyz(self) -> tuple[int, dict[str, Any]]:
        """Status code and JSON body of ``/readyz`` (raises ``OSError`` when nothing answers)."""
        url = f"http://{self.host}:{self.port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return int(resp.status), json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return int(exc.code), json.loads(exc.read() or b"{}")

    def ready(self) -> bool:
        try:
            return self.readyz()[0] == 200
        except (OSError, ValueError):
            return False

    def wait_ready(self, timeout_s: float = 60.0) -> float:
        """Block until /readyz says 200; returns the seconds waited."""
        return wait_all_ready([self], timeout_s)

    def kill9(self) -> None:
        """SIGKILL this worker's own pid (no clean-up of any kind can run) and reap it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """SIGTERM, then SIGKILL after ``grace_s``; returns the exit status (None: never
        started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            log.warning("worker_kill_after_grace", extra={"role": self.role})
            self.proc.kill()
            return self.proc.wait(timeout=10)

    def metrics(self) -> MetricSamples:
        """Scrape ``/metrics`` (empty dict when the worker does not answer)."""
        url = f"http://{self.host}:{self.port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                text = resp.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError):
            return {}
        return parse_metrics(text)

    def tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the log."""
        return "\n".join(self.logs(tail=None).splitlines()[-lines:])

    def logs(self, tail: int | None = 6000) -> str:
        """The log's last ``tail`` characters (all of it for None; "" before any start)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text if tail is None else text[-tail:]


def wait_all_ready(workers: Sequence[WorkerProcess], timeout_s: float) -> float:
    """Block until every worker's /readyz says 200; returns the seconds waited.

    Raises ``WorkerStartError`` as soon as one of them exits, or after ``timeout_s``."""
    started = time.monotonic()
    pending = list(workers)
    while pending:
        for worker in list(pending):
            code = worker.exited()
            if code is not None:
                raise WorkerStartError(
                    f"{worker.role} worker exited with status {code} during start-up; "
                    f"log {worker.log_path}:\n{worker.tail()}"
                )
            if worker.ready():
                pending.remove(worker)
        if not pending:
            break
        if time.monotonic() - started > timeout_s:
            names = ", ".join(w.role for w in pending)
            raise WorkerStartError(
                f"{names} worker not ready after {timeout_s:.0f} s; log "
                f"{pending[0].log_path}:\n{pending[0].tail()}"
            )
        time.sleep(_POLL_S)
    return time.monotonic() - started


def parse_metrics(text: str) -> MetricSamples:
    """Parse Prometheus text exposition into ``{(name, sorted labels): value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: MetricSamples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((str(k), str(v)) for k, v in sample.labels.items()))
            samples[(sample.name, labels)] = float(sample.value)
    return samples


def cleanup_run(settings: Settings, run_id: str) -> None:
    """Delete a run's topics (incl. Faust's internal ones) and its Redis keys; never raises.

    The demo, load_tests and e2e tests give every run its own topics (named with
    ``run_id``) and Redis prefix; clean-up must never hide the run's result.
    """
    from kafka.admin import KafkaAdminClient

    from streams.events.client import sync_redis
    from streams.kafka.security import kafka_python_security

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap,
            client_id=f"fallwatch-cleanup-{run_id}",
            **kafka_python_security(settings),
        )
        try:
            topics = [t for t in admin.list_topics() if run_id in t]
            if topics:
                admin.delete_topics(topics, timeout_ms=15_000)
        finally:
            admin.close()
    except Exception as exc:  # clean-up must never hide the run's result
        log.warning("cleanup_topics_failed", extra={"error": repr(exc)})
    try:
        client = sync_redis(settings)
        try:
            keys = list(client.scan_iter(match=f"{settings.redis_prefix}*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
        finally:
            client.close()
    except Exception as exc:
        log.warning("cleanup_redis_failed", extra={"error": repr(exc)})
