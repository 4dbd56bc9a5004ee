"""The secured test stack from Python: start, describe and stop it for pytest fixtures.

Inputs: ``scripts/stack.sh up-secure DIR`` / ``down-secure DIR`` (the process logic lives
there, beside the plain stack's, so ``make`` and the tests share one implementation: the
jar download, the Java check, the JVM command line and the pid-checked stop).
Outputs: ``running_secure_stack(directory)`` (a context manager) yields a `SecureStack`:
the ``FALLWATCH_*`` environment that points a worker at the stack (``env``), the CA file,
the credentials, and ``settings()`` to build the service's `Settings` from that
environment. Leaving the block stops both services.

Guarantees: the stack listens on 127.0.0.1 only, on three ports free when the fixture
started (so two test sessions, or a fresh-clone rehearsal beside the main checkout, do not
collide); every certificate, key, password and data file is generated under
``directory``; the services are stopped when the block exits, whatever happened inside
it, and a watcher started by stack.sh stops them if this process dies without exiting
the block (``kill -9`` of pytest).
Failure modes: `SecureStackError` with stack.sh's output and the tail of the service logs
when the stack does not come up within ``timeout_s``; the partial stack is stopped first.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from streams.core.settings import Settings

__all__ = ["SecureStack", "SecureStackError", "free_ports", "running_secure_stack"]

REPO_ROOT = Path(__file__).resolve().parents[1]
STACK_SH = REPO_ROOT / "scripts" / "stack.sh"
HOST = "127.0.0.1"
_ENV_FILE = "secure.env"
_PREFIX = "FALLWATCH_"


class SecureStackError(RuntimeError):
    """Raised by `running_secure_stack` when the secured stack does not start or stop.
    Operator: read the message (stack.sh's output and the log tails) and the logs under
    the stack's folder (``logs/{kafka,redis,watch}.log``)."""


@dataclass(frozen=True)
class SecureStack:
    """A running secured stack: where it listens and how to log in."""

    directory: Path
    env: Mapping[str, str]
    """``FALLWATCH_*`` variables for a worker (Kafka SASL_SSL + CA, Redis rediss:// URL)."""

    @property
    def ca_file(self) -> Path:
        return Path(self.env["FALLWATCH_KAFKA_SSL_CAFILE"])

    @property
    def kafka_bootstrap(self) -> str:
        return self.env["FALLWATCH_KAFKA_BOOTSTRAP"]

    @property
    def kafka_username(self) -> str:
        return self.env["FALLWATCH_KAFKA_SASL_USERNAME"]

    @property
    def kafka_password(self) -> str:
        return self.env["FALLWATCH_KAFKA_SASL_PASSWORD"]

    @property
    def redis_url(self) -> str:
        return self.env["FALLWATCH_REDIS_URL"]

    @property
    def redis_password(self) -> str:
        return urlsplit(self.redis_url).password or ""

    @property
    def redis_port(self) -> int:
        return urlsplit(self.redis_url).port or 0

    def settings(self, **overrides: Any) -> Settings:
        """The service's `Settings` built from ``env`` (plus ``overrides``, by field name)."""
        values: dict[str, Any] = {
            key[len(_PREFIX) :].lower(): value for key, value in self.env.items()
        }
        values.update(overrides)
        return Settings(**values)


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def read_env_file(path: Path) -> dict[str, str]:
    """Parse the ``KEY=VALUE`` lines stack.sh writes (plain values, no quoting)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith(_PREFIX):
            values[key] = value
    return values


def _run_stack(command: str, directory: Path, env: Mapping[str, str], timeout_s: float) -> str:
    try:
        done = subprocess.run(
            ["bash", str(STACK_SH), command, str(directory)],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SecureStackError(
            f"stack.sh {command} did not finish within {timeout_s:.0f} s; {_log_tails(directory)}"
        ) from exc
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise SecureStackError(
            f"stack.sh {command} exited {done.returncode}:\n{output}\n{_log_tails(directory)}"
        )
    return output


def _log_tails(directory: Path, lines: int = 15) -> str:
    parts: list[str] = []
    for log in sorted((directory / "logs").glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {log} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(parts) or f"(no logs under {directory / 'logs'})"


@contextmanager
def running_secure_stack(
    directory: Path,
    *,
    ports: tuple[int, int, int] | None = None,
    timeout_s: float = 300.0,
) -> Iterator[SecureStack]:
    """Start the secured stack in ``directory``; stop it when the block exits.

    ``ports`` = (Kafka SASL_SSL, Kafka controller, Redis TLS); default: free ports.
    ``timeout_s`` bounds the start and the stop each (stack.sh waits up to
    ``FALLWATCH_STACK_TIMEOUT``, default 120 s, for each service to answer).
    """
    kafka_port, controller_port, redis_port = ports or tuple(free_ports(3))
    env = dict(os.environ)
    env.update(
        FALLWATCH_SECURE_KAFKA_PORT=str(kafka_port),
        FALLWATCH_SECURE_CONTROLLER_PORT=str(controller_port),
        FALLWATCH_SECURE_REDIS_PORT=str(redis_port),
        FALLWATCH_SECURE_OWNER_PID=str(os.getpid()),
    )
    directory.mkdir(parents=True, exist_ok=True)
    try:
        _run_stack("up-secure", directory, env, timeout_s)
        yield SecureStack(
            directory=directory,
            env=MappingProxyType(read_env_file(directory / _ENV_FILE)),
        )
    finally:
        _run_stack("down-secure", directory, env, timeout_s)
