"""The edge worker's test rig: its topics, settings and a running worker, and probes.

``rig_factory(**FALLWATCH_overrides)`` creates unique topics (``topic_factory``), a unique
consumer group, HTTP port and Redis prefix, starts the edge worker in a subprocess with
those settings (test-only ONNX models from ``tests.onnx_test_models`` unless ``zoo=True``)
through the one worker harness (``streams.devtools.workers.WorkerProcess``), waits for
/readyz, and stops every worker it started at teardown (SIGTERM, then SIGKILL).
``EdgeRig`` sends windows with kafka-python and reads the output topics from the start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

import schemas
from streams.devtools.workers import WorkerProcess, free_port
from tests.onnx_test_models import build_margin_switcher, build_mean_pixel_edge

__all__ = [
    "EdgeRig",
    "alerts_of",
    "decoded",
    "listening_sockets",
    "rig_factory",
]


def listening_sockets(pid: int) -> set[tuple[str, int]]:
    """(ip, port) of every TCP socket process ``pid`` listens on (Linux /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found: set[tuple[str, int]] = set()
    for table in ("tcp", "tcp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A = LISTEN
                continue
            ip_hex, port_hex = fields[1].split(":")
            if table == "tcp":
                ip = socket.inet_ntop(socket.AF_INET, bytes.fromhex(ip_hex)[::-1])
            else:
                raw = bytes.fromhex(ip_hex)
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                ip = socket.inet_ntop(socket.AF_INET6, words)
            found.add((ip, int(port_hex, 16)))
    return found


#: The worker's entry point as the tests run it: ``run_edge_worker`` itself, so an exception
#: that stops it leaves its traceback (class names included) in the log.
EDGE_WORKER_ARGV = [
    sys.executable,
    "-c",
    "from streams.core.logs import configure_logging\n"
    "configure_logging('INFO')\n"
    "from streams.core.settings import get_settings\n"
    "from streams.edge.app import run_edge_worker\n"
    "run_edge_worker(get_settings())\n",
]


@dataclass
class EdgeRig:
    """Topics, settings and the running worker of one test."""

    frames: str
    offload: str
    results: str
    alerts: str
    deadletter: str
    worker: WorkerProcess
    producer: KafkaProducer
    consumer_factory: Callable[..., KafkaConsumer]
    spawn: Callable[[dict[str, str]], WorkerProcess]

    def restart(self, **overrides: str) -> None:
        """Start a new worker with the same settings (plus ``overrides``) and wait for it."""
        self.worker.stop()
        self.worker = self.spawn(overrides)
        self.worker.wait_ready()

    def send_window(
        self, record: dict[str, Any], headers: list[tuple[str, bytes]] | None = None
    ) -> Any:
        return self.send_raw(
            record["stream_id"].encode(), schemas.encode("frame_window", record), headers
        )

    def send_raw(
        self, key: bytes, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> Any:
        metadata = self.producer.send(self.frames, key=key, value=value, headers=headers or []).get(
            30
        )
        return metadata

    def read(self, topic: str, n: int, timeout_s: float = 30.0) -> list[Any]:
        """Read ``topic`` from the beginning until ``n`` records (or timeout) — returns all seen."""
        consumer = self.consumer_factory(topic, group_id=None)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < n and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        consumer.close()
        return records


@pytest.fixture
def rig_factory(
    tmp_path: Path,
    topic_factory: Callable[..., str],
    redis_prefix: str,
    stack: Any,
    kafka_producer_factory: Callable[..., KafkaProducer],
    kafka_consumer_factory: Callable[..., KafkaConsumer],
) -> Iterator[Callable[..., EdgeRig]]:
    started: list[WorkerProcess] = []

    def make(*, zoo: bool = False, wait_ready: bool = True, **overrides: str) -> EdgeRig:
        names = {
            kind: topic_factory(kind, partitions=2)
            for kind in ("frames", "offload", "results", "alerts", "dlq")
        }
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FALLWATCH_")}
        env.update(
            {
                "FALLWATCH_KAFKA_BOOTSTRAP": stack.bootstrap,
                "FALLWATCH_REDIS_URL": stack.redis_url,
                "FALLWATCH_REDIS_PREFIX": redis_prefix,
                "FALLWATCH_TOPIC_FRAMES": names["frames"],
                "FALLWATCH_TOPIC_OFFLOAD": names["offload"],
                "FALLWATCH_TOPIC_RESULTS": names["results"],
                "FALLWATCH_TOPIC_ALERTS": names["alerts"],
                "FALLWATCH_TOPIC_DEADLETTER": names["dlq"],
                "FALLWATCH_TOPIC_PARTITIONS": "2",
                "FALLWATCH_EDGE_GROUP": f"test-edge-{uuid.uuid4().hex[:8]}",
                "FALLWATCH_EDGE_HTTP_PORT": str(port),
                "FALLWATCH_CLOUD_HTTP_PORT": str(free_port()),
                "FALLWATCH_AUDIT_RATE": "0",
                "FALLWATCH_EDGE_BATCH_WAIT_S": "0.05",
                "FALLWATCH_FALLBACK_POLL_S": "0.1",
                "FALLWATCH_CLOUD_DEADLINE_S": "1.0",
                "FALLWATCH_RESOLVE_AFTER_WINDOWS": "2",
                "FALLWATCH_COOLDOWN_WINDOWS": "2",
                "FALLWATCH_INFERENCE_THREADS": "1",
                "OMP_NUM_THREADS": "1",
            }
        )
        if not zoo:
            env["FALLWATCH_EDGE_MODEL_PATH"] = str(build_mean_pixel_edge(tmp_path / "edge.onnx"))
            env["FALLWATCH_SWITCHER_MODEL_PATH"] = str(build_margin_switcher(tmp_path / "sw.onnx"))
        env.update(overrides)

        def spawn(more: dict[str, str]) -> WorkerProcess:
            log_path = tmp_path / f"worker-{len(started)}.log"
            process = WorkerProcess("edge", {**env, **more}, port, log_path, argv=EDGE_WORKER_ARGV)
            started.append(process)
            process.start()
            return process

        worker = spawn({})
        if wait_ready:
            worker.wait_ready()
        return EdgeRig(
            frames=names["frames"],
            offload=names["offload"],
            results=names["results"],
            alerts=names["alerts"],
            deadletter=names["dlq"],
            worker=worker,
            producer=kafka_producer_factory(),
            consumer_factory=kafka_consumer_factory,
            spawn=spawn,
        )

    yield make
    for worker in started:
        status = worker.stop(grace_s=30.0)
        if status not in (0, -signal.SIGTERM):
            print(f"edge worker exit status {status}; log tail:\n{worker.logs()}")


def decoded(records: list[Any], kind: str) -> list[dict[str, Any]]:
    return [schemas.decode(kind, r.value) for r in records]


def alerts_of(records: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]
