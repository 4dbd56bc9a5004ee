"""A private Kafka broker + Redis for fault tests: start, break on purpose, stop.

Inputs: ``scripts/stack.sh up|down`` with ``FALLWATCH_STACK_DIR`` and the
``FALLWATCH_STACK_{KAFKA,CONTROLLER,REDIS}_PORT`` overrides, so the private stack is the
shared stack's own launcher (same jars, same broker and Redis configuration, AOF on) with
its own folder and ports; a folder to keep its data and logs in.
Outputs: ``running_private_stack(directory)`` (a context manager) yields a
`PrivateStack`: its addresses (``bootstrap``, ``redis_url``, ``env`` with the
``FALLWATCH_*`` variables for a worker, ``settings(base)``) and the faults:
``restart_kafka`` (SIGTERM, wait for exit, start again from the same data),
``pause_kafka`` / ``resume_kafka`` (SIGSTOP / SIGCONT), ``stop_redis`` (SIGTERM: a clean
shutdown) / ``start_redis``, ``kill9_redis`` (SIGKILL; ``start_redis`` then replays the
AOF).

Guarantees: only 127.0.0.1 and ports that were free when the block started; never touches
the shared stack (its folder and ports are refused); every signal goes to a pid read from
this stack's own pidfile and checked against its command line; leaving the block resumes a
paused broker and stops both services, whatever happened inside it; a watcher process
stops them too if the owner dies without leaving the block (``kill -9`` of pytest).
Failure modes: `PrivateStackError` with stack.sh's output when a service does not come up
(or go down) in time.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.core.errors import FallwatchError
from streams.core.settings import Settings
from streams.devtools.workers import LOOPBACK, REPO_ROOT, free_port

__all__ = ["PrivateStack", "PrivateStackError", "running_private_stack"]

log = logging.getLogger(__name__)

STACK_SH = REPO_ROOT / "scripts" / "stack.sh"
SHARED_PORTS = frozenset({19092, 19093, 16379})
_STOP_GRACE_S = 60.0


class PrivateStackError(FallwatchError):
    """Raised by `PrivateStack` when stack.sh cannot start or stop the private broker or
    Redis, or a fault cannot be applied. Operator (a developer running fault tests): read
    the message and the logs under the stack's folder (``logs/{kafka,redis}.log``)."""


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(LOOPBACK)
        if port not in ports and port not in SHARED_PORTS:
            ports.append(port)
    return ports


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is gone for our purpose.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


@dataclass
class PrivateStack:
    """A running private stack (see the module docstring)."""

    directory: Path
    kafka_port: int
    controller_port: int
    redis_port: int
    timeout_s: float = 180.0
    kafka_heap: str = "-Xms128m -Xmx512m"
    faults: list[str] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://{LOOPBACK}:{self.redis_port}/0"

    @property
    def env(self) -> dict[str, str]:
        """``FALLWATCH_*`` variables that point a worker at this stack."""
        return {"FALLWATCH_KAFKA_BOOTSTRAP": self.bootstrap, "FALLWATCH_REDIS_URL": self.redis_url}

    def settings(self, base: Settings, **overrides: Any) -> Settings:
        """``base`` pointed at this stack (validated)."""
        updates = {"kafka_bootstrap": self.bootstrap, "redis_url": self.redis_url, **overrides}
        return type(base).model_validate({**base.model_dump(), **updates})

    # --- stack.sh -------------------------------------------------------------------

    def _stack_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            FALLWATCH_STACK_DIR=str(self.directory),
            FALLWATCH_STACK_KAFKA_PORT=str(self.kafka_port),
            FALLWATCH_STACK_CONTROLLER_PORT=str(self.controller_port),
            FALLWATCH_STACK_REDIS_PORT=str(self.redis_port),
            FALLWATCH_KAFKA_HEAP=self.kafka_heap,
            FALLWATCH_STACK_TIMEOUT=str(int(self.timeout_s)),
        )
        return env

    def _run(self, command: str) -> str:
        try:
            done = subprocess.run(
                ["bash", str(STACK_SH), command],
                env=self._stack_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.timeout_s + 30.0,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PrivateStackError(
                f"stack.sh {command} did not finish ({self.directory})"
            ) from exc
        output = (done.stdout + done.stderr).strip()
        if done.returncode != 0:
            raise PrivateStackError(f"stack.sh {command} exited {done.returncode}:\n{output}")
        return output

    def up(self) -> None:
        """Start whatever is not running (both services are idempotent in stack.sh)."""
        self._run("up")

    def down(self) -> None:
        """Resume a paused broker, then stop both (data kept in ``directory``)."""
        pid = self.kafka_pid()
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
        self._run("down")

    # --- pids -----------------------------------------------------------------------

    def _pid(self, pidfile: Path, marker: str) -> int | None:
        try:
            pid = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError):
            return None
        return pid if marker.encode() in cmdline and _alive(pid) else None

    def kafka_pid(self) -> int | None:
        """The broker's pid (None when it is not running)."""
        props = self.directory / "kafka" / "server.properties"
        return self._pid(self.directory / "kafka" / "kafka.pid", str(props))

    def redis_pid(self) -> int | None:
        """redis-server's pid (None when it is not running)."""
        return self._pid(self.directory / "redis" / "redis.pid", f"{LOOPBACK}:{self.redis_port}")

    def _signal_and_wait(self, name: str, pid: int, sig: signal.Signals) -> None:
        os.kill(pid, sig)
        deadline = time.monotonic() + _STOP_GRACE_S
        while _alive(pid):
            if time.monotonic() > deadline:
                log.warning("private_stack_kill_after_grace", extra={"service": name, "pid": pid})
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 10.0
            time.sleep(0.1)

    def _require(self, name: str, pid: int | None) -> int:
        if pid is None:
            raise PrivateStackError(f"private {name} is not running ({self.directory})")
        return pid

    # --- faults ---------------------------------------------------------------------

    def stop_kafka(self) -> None:
        """SIGTERM the broker (a controlled shutdown) and wait until it exited."""
        self._signal_and_wait("kafka", self._require("kafka", self.kafka_pid()), signal.SIGTERM)
        self.faults.append("kafka stopped")

    def restart_kafka(self) -> None:
        """Stop the broker and start it again from the same data; returns once it answers."""
        self.stop_kafka()
        self.up()
        self.faults.append("kafka started")

    def pause_kafka(self) -> None:
        """SIGSTOP the broker: connections stay open, nothing answers."""
        os.kill(self._require("kafka", self.kafka_pid()), signal.SIGSTOP)
        self.faults.append("kafka paused")

    def resume_kafka(self) -> None:
        os.kill(self._require("kafka", self.kafka_pid()), signal.SIGCONT)
        self.faults.append("kafka resumed")

    def stop_redis(self) -> None:
        """SIGTERM redis-server (it writes its AOF and exits) and wait until it exited."""
        self._signal_and_wait("redis", self._require("redis", self.redis_pid()), signal.SIGTERM)
        self.faults.append("redis stopped")

    def kill9_redis(self) -> None:
        """SIGKILL redis-server: writes of the last second may be missing from the AOF."""
        self._signal_and_wait("redis", self._require("redis", self.redis_pid()), signal.SIGKILL)
        self.faults.append("redis killed")

    def start_redis(self) -> None:
        """Start redis-server again (it loads its AOF); returns once it answers PING."""
        self.up()
        self.faults.append("redis started")


def _start_watcher(stack: PrivateStack, owner: int) -> subprocess.Popen[bytes]:
    """A detached shell that runs ``stack.sh down`` for this stack once ``owner`` is gone."""
    script = (
        'while kill -0 "$1" 2>/dev/null; do sleep 1; done; '
        'kill -CONT "$(cat "$2/kafka/kafka.pid" 2>/dev/null)" 2>/dev/null; '
        'exec bash "$3" down'
    )
    logs = stack.directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "watch.log").open("ab") as out:
        return subprocess.Popen(
            [
                "bash",
                "-c",
                script,
                "private-stack-watch",
                str(owner),
                str(stack.directory),
                str(STACK_SH),
            ],
            env=stack._stack_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@contextmanager
def running_private_stack(
    directory: Path,
    *,
    ports: tuple[int, int, int] | None = None,
    timeout_s: float = 180.0,
    extra: Mapping[str, Any] | None = None,
) -> Iterator[PrivateStack]:
    """Start a private stack in ``directory``; stop it when the block exits.

    ``ports`` = (Kafka, controller, Redis); default: free ports. ``directory`` must not be
    the shared stack's folder.
    """
    directory = directory.resolve()
    if directory == (REPO_ROOT / ".stack").resolve():
        raise PrivateStackError("the private stack needs its own folder, not .stack/")
    kafka_port, controller_port, redis_port = ports or tuple(_distinct_free_ports(3))
    if SHARED_PORTS & {kafka_port, controller_port, redis_port}:
        raise PrivateStackError("the private stack must not use the shared stack's ports")
    directory.mkdir(parents=True, exist_ok=True)
    stack = PrivateStack(
        directory, kafka_port, controller_port, redis_port, timeout_s=timeout_s, **(extra or {})
    )
    watcher = _start_watcher(stack, os.getpid())
    try:
        stack.up()
        yield stack
    finally:
        try:
            stack.down()
        finally:
            watcher.terminate()
            watcher.wait(timeout=10)


if __name__ == "__main__":  # pragma: no cover - manual check: start, show, stop
    with running_private_stack(Path(sys.argv[1])) as running:
        print(running.env, running.kafka_pid(), running.redis_pid())
