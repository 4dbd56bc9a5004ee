"""Background reader of a run's output topics, with receive timestamps.

Inputs: ``Settings`` naming the run's topics. A kafka-python consumer without a group is
assigned every partition of the results, offload, alerts and dead-letter topics from the
beginning (short fetch waits, so the receive time is close to the broker append time), in a
daemon thread.
Outputs (thread-safe copies): ``results()`` (``SeenResult``), ``offloads()``
(``SeenOffload``), ``alerts()`` (``SeenAlert`` with the raw JSON bytes), the dead-letter
and undecodable counts, ``seconds_since_last_record()``.

Guarantees: records that do not decode are counted, never fatal; ``stop()`` returns within
a few seconds. Failure modes: Kafka errors inside the thread are logged and retried until
``stop()``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import schemas
from streams.settings import Settings

__all__ = ["OutputCollector", "SeenAlert", "SeenOffload", "SeenResult"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SeenResult:
    stream_id: str
    seq: int
    decided_by: str
    label: int
    capture_end_ns: int
    produced_at_ns: int
    received_ns: int


@dataclass(frozen=True, slots=True)
class SeenOffload:
    stream_id: str
    seq: int
    reason: str
    capture_end_ns: int
    offloaded_at_ns: int
    received_ns: int


@dataclass(frozen=True, slots=True)
class SeenAlert:
    raw: bytes
    id: str
    type: str
    stream_id: str
    event_id: str
    state: str
    decided_by: str
    first_window_seq: int
    last_window_seq: int
    received_ns: int

    @classmethod
    def parse(cls, raw: bytes, received_ns: int) -> SeenAlert:
        doc: dict[str, Any] = json.loads(raw)
        data = doc["data"]
        return cls(
            raw=bytes(raw),
            id=str(doc["id"]),
            type=str(doc["type"]),
            stream_id=str(data["stream_id"]),
            event_id=str(data["event_id"]),
            state=str(data["state"]),
            decided_by=str(data.get("decided_by")),
            first_window_seq=int(data["first_window_seq"]),
            last_window_seq=int(data["last_window_seq"]),
            received_ns=received_ns,
        )


class OutputCollector:
    """Reads the output topics in a thread; see the module docstring."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._assigned = threading.Event()
        self._thread: threading.Thread | None = None
        self._results: list[SeenResult] = []
        self._offloads: list[SeenOffload] = []
        self._alerts: list[SeenAlert] = []
        self._dead_letters = 0
        self._undecodable = 0
        self._last_record = time.monotonic()

    def start(self, timeout_s: float = 30.0) -> None:
        self._thread = threading.Thread(target=self._run, name="load-collector", daemon=True)
        self._thread.start()
        if not self._assigned.wait(timeout_s):
            raise RuntimeError(f"output collector not assigned after {timeout_s} s")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def results(self) -> list[SeenResult]:
        with self._lock:
            return list(self._results)

    def offloads(self) -> list[SeenOffload]:
        with self._lock:
            return list(self._offloads)

    def alerts(self) -> list[SeenAlert]:
        with self._lock:
            return list(self._alerts)

    def dead_letters(self) -> int:
        with self._lock:
            return self._dead_letters

    def undecodable(self) -> int:
        with self._lock:
            return self._undecodable

    def seconds_since_last_record(self) -> float:
        with self._lock:
            return time.monotonic() - self._last_record

    # -- thread ---------------------------------------------------------------------------

    def _consumer(self) -> Any:
        from kafka import KafkaConsumer, TopicPartition

        from streams.topics import kafka_python_security, max_message_bytes

        s = self._settings
        consumer = KafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap,
            client_id=f"fallwatch-load-collector-{s.redis_prefix}",
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=10,
            # kafka-python checks CRC32C in pure Python unless the `crc32c` package is
            # installed (~5 MB/s): skip it, this reader must not steal the pipeline's CPU.
            check_crcs=False,
            max_partition_fetch_bytes=2 * max_message_bytes(s),
            **kafka_python_security(s),
        )
        partitions: list[TopicPartition] = []
        for topic in (s.topic_alerts, s.topic_results, s.topic_offload, s.topic_deadletter):
            deadline = time.monotonic() + 20.0
            found = consumer.partitions_for_topic(topic)
            while not found and time.monotonic() < deadline:
                time.sleep(0.2)
                found = consumer.partitions_for_topic(topic)
            partitions.extend(TopicPartition(topic, p) for p in sorted(found or ()))
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        return consumer

    def _run(self) -> None:
        consumer = None
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self._consumer()
                    self._assigned.set()
                batch = consumer.poll(timeout_ms=100)
                for records in batch.values():
                    for record in records:
                        self._handle(record)
            except Exception as exc:  # keep collecting; the caller reports what it saw
                log.warning("collector_error", extra={"error": repr(exc)})
                time.sleep(0.5)
        if consumer is not None:
            consumer.close()

    def _handle(self, record: Any) -> None:
        s = self._settings
        now_ns = time.time_ns()
        try:
            if record.topic == s.topic_results:
                res = schemas.decode("result", record.value)
                seen: Any = SeenResult(
                    res["stream_id"],
                    int(res["window_seq"]),
                    str(res["decided_by"]),
                    int(res["label"]),
                    int(res["capture_end_ns"]),
                    int(res["produced_at_ns"]),
                    now_ns,
                )
            elif record.topic == s.topic_offload:
                req = schemas.decode("offload_request", record.value)
                window = req["window"]
                seen = SeenOffload(
                    window["stream_id"],
                    int(window["window_seq"]),
                    str(req["reason"]),
                    int(window["capture_end_ns"]),
                    int(req["offloaded_at_ns"]),
                    now_ns,
                )
            elif record.topic == s.topic_alerts:
                seen = SeenAlert.parse(record.value, now_ns)
            else:
                seen = None
        except (schemas.SchemaError, ValueError, KeyError, TypeError):
            with self._lock:
                self._undecodable += 1
                self._last_record = time.monotonic()
            return
        with self._lock:
            self._last_record = time.monotonic()
            if isinstance(seen, SeenResult):
                self._results.append(seen)
            elif isinstance(seen, SeenOffload):
                self._offloads.append(seen)
            elif isinstance(seen, SeenAlert):
                self._alerts.append(seen)
            else:
                self._dead_letters += 1
