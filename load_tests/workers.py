"""Run isolation and worker subprocesses for the load and fault experiments.

Inputs: base ``Settings`` (Kafka/Redis addresses, models) and a run id.
Outputs:
- ``isolated_run(base, hint)``: a ``Settings`` whose topics, consumer groups and Redis prefix
  carry a unique run id, with free loopback HTTP ports for the two workers.
- ``WorkerProcess``: one ``python -m streams edge|cloud`` subprocess configured only through
  ``FALLWATCH_*`` environment variables (``streams.devtools.demo.worker_env``), logging to a file;
  ``wait_ready`` polls its ``/readyz``; ``kill9`` sends SIGKILL to exactly that pid;
  ``stop`` sends SIGTERM then SIGKILL after a grace period; ``metrics()`` scrapes
  ``/metrics`` into ``{(name, labels): value}``.
- ``cleanup_run(settings, run_id)`` (from ``streams.devtools.demo``): deletes the run's topics (Faust's internal ones too)
  and Redis keys; best effort, never raises.

Guarantees: only 127.0.0.1 addresses; every process started here is stopped by the caller
through its own handle (no broad kills). Failure modes: ``WorkerStartError`` when a worker
exits during start-up or is not ready in time (the message names its log file).
"""

from __future__ import annotations

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
from collections.abc import Mapping
from pathlib import Path

from streams.core.errors import FallwatchError
from streams.core.settings import Settings
from streams.devtools.demo import cleanup_run

__all__ = [
    "REPO_ROOT",
    "MetricSamples",
    "WorkerProcess",
    "WorkerStartError",
    "cleanup_run",
    "free_port",
    "isolated_run",
    "new_run_id",
]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
MetricSamples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
_LOOPBACK = "127.0.0.1"


class WorkerStartError(FallwatchError):
    """Raised by ``WorkerProcess.wait_ready`` when a worker exits during start-up or never
    reports ready. Operator: read the worker log named in the message (``make status`` for
    the stack)."""


def new_run_id(hint: str) -> str:
    """``<hint>-<utc time>-<6 hex>``: unique, Kafka- and Redis-friendly."""
    return f"{hint}-{time.strftime('%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        return int(sock.getsockname()[1])


def isolated_run(base: Settings, run_id: str, **extra: object) -> Settings:
    """``base`` with run-unique topics, groups, Redis prefix and two free loopback ports."""
    from streams.devtools.demo import isolated_settings

    edge_port = free_port()
    cloud_port = free_port()
    while cloud_port == edge_port:
        cloud_port = free_port()
    return isolated_settings(
        base,
        run_id,
        http_host=_LOOPBACK,
        edge_http_port=edge_port,
        cloud_http_port=cloud_port,
        **extra,
    )


class WorkerProcess:
    """One ``fallwatch edge|cloud`` subprocess (see module docstring)."""

    def __init__(
        self,
        role: str,
        settings: Settings,
        log_dir: Path,
        *,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        if role not in ("edge", "cloud"):
            raise ValueError(f"role must be edge or cloud, got {role!r}")
        self.role = role
        self.settings = settings
        self.port = settings.edge_http_port if role == "edge" else settings.cloud_http_port
        self.log_dir = log_dir
        self.extra_env = dict(extra_env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_path = log_dir / f"{role}.log"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def _env(self) -> dict[str, str]:
        from streams.devtools.demo import worker_env

        env = worker_env(self.settings, dict(os.environ))
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        """Start (or restart) the subprocess; its output is appended to ``log_path``."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"{self.role} worker already running (pid {self.proc.pid})")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with self.log_path.open("ab") as log_file:
            log_file.write(f"\n===== start #{self.starts} at {time.time():.3f}\n".encode())
            log_file.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams", self.role],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self._env(),
                cwd=REPO_ROOT,
            )

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def ready(self) -> bool:
        url = f"http://{_LOOPBACK}:{self.port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout_s: float) -> float:
        """Block until /readyz says 200; returns the seconds waited."""
        started = time.monotonic()
        while True:
            code = self.exited()
            if code is not None:
                raise WorkerStartError(
                    f"{self.role} worker exited with status {code} during start-up; "
                    f"log {self.log_path}:\n{self.tail()}"
                )
            if self.ready():
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise WorkerStartError(
                    f"{self.role} worker not ready after {timeout_s:.0f} s; log {self.log_path}:"
                    f"\n{self.tail()}"
                )
            time.sleep(0.25)

    def kill9(self) -> None:
        """SIGKILL this worker's own pid (no clean-up of any kind can run) and reap it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, grace_s: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace_s``; returns the exit status."""
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
        url = f"http://{_LOOPBACK}:{self.port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                text = resp.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError):
            return {}
        return parse_metrics(text)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def parse_metrics(text: str) -> MetricSamples:
    """Parse Prometheus text exposition into ``{(name, sorted labels): value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: MetricSamples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((str(k), str(v)) for k, v in sample.labels.items()))
            samples[(sample.name, labels)] = float(sample.value)
    return samples
