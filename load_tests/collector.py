"""Background reader of a run's output topics, with receive timestamps.

Inputs: ``Settings`` naming the run's topics. A ``streams.kafka.reader.TopicReader`` reads
every partition of the results, offload, alerts and dead-letter topics from the beginning
(short fetch waits, so the receive time is close to the broker append time), in a daemon
thread.
Outputs (thread-safe copies): ``results()`` (``SeenResult``), ``offloads()``
(``SeenOffload``), ``alerts()`` (``SeenAlert`` with the raw JSON bytes), the dead-letter
and undecodable counts, ``seconds_since_last_record()``.

Guarantees: records that do not decode are counted, never fatal; ``stop()`` returns within
a few seconds. Failure modes: Kafka errors inside the thread are logged and retried until
``stop()``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import schemas
from streams.core.settings import Settings
from streams.kafka.reader import TopicReader
from streams.kafka.topics import output_topics

__all__ = ["OutputCollector", "SeenAlert", "SeenOffload", "SeenResult"]


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


class OutputCollector(TopicReader):
    """Reads the output topics in a thread; see the module docstring."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            settings, output_topics(settings), name="load-collector", strict=True, poll_ms=100
        )
        self._results: list[SeenResult] = []
        self._offloads: list[SeenOffload] = []
        self._alerts: list[SeenAlert] = []
        self._dead_letters = 0
        self._undecodable = 0

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

    # -- reader thread --------------------------------------------------------------------

    def handle(self, record: Any) -> None:
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
            return
        with self._lock:
            if isinstance(seen, SeenResult):
                self._results.append(seen)
            elif isinstance(seen, SeenOffload):
                self._offloads.append(seen)
            elif isinstance(seen, SeenAlert):
                self._alerts.append(seen)
            else:
                self._dead_letters += 1
