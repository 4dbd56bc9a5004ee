"""Smoke tests of scripts/stack/kafka_probe.py, the readiness check behind `make up`.

Its success path (a real broker answering ApiVersions and Metadata) runs on every `make up`
and `make status`; here, without a broker, the two ways it must say "not ready": nothing
listening, and a listener that never answers. Only 127.0.0.1 sockets this test opens.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PROBE = Path(__file__).resolve().parents[2] / "scripts" / "stack" / "kafka_probe.py"


def _run_probe(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROBE), "--bootstrap", f"127.0.0.1:{port}", "--timeout", "0.5"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@contextmanager
def _silent_listener() -> Iterator[int]:
    """A loopback port that accepts connections (the kernel's backlog) and never replies."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        yield server.getsockname()[1]


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_probe_exits_1_with_one_line_when_nothing_listens() -> None:
    out = _run_probe(_closed_port())
    assert out.returncode == 1
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("kafka probe: 127.0.0.1:")


def test_probe_exits_1_when_the_listener_never_answers() -> None:
    with _silent_listener() as port:
        out = _run_probe(port)
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.startswith("kafka probe: ")
