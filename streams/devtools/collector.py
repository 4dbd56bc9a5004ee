"""Background reader of the demo's output topics: alerts, results, offloads, dead letters.

Inputs: `Settings` naming the (run-unique) topics. A `streams.kafka.reader.TopicReader`
reads every partition of the alerts, results, offload and dead-letter topics from the
beginning, in a daemon thread.
Outputs: `snapshot()` — alerts (`ReceivedAlert`, stamped with the time they were read),
results (`SeenResult`), offload requests counted by reason, the dead-letter count and
malformed alerts; `decided_windows()` for the drain check. Each alert is printed as one
line when `out` is given (latency from the gateway's capture end of the alert's first
fall window, recorded through `note_window`).

Guarantees: thread-safe accessors; `stop()` returns within a few seconds. Records that
do not decode are counted, never fatal. Failure modes: Kafka errors in the thread are
logged and retried until `stop()`.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

import schemas
from streams.core.settings import Settings
from streams.devtools.report import PublishedWindow, ReceivedAlert, SeenResult, format_alert_line
from streams.kafka.reader import TopicReader
from streams.kafka.topics import output_topics

__all__ = ["CollectedRecords", "PipelineCollector"]


@dataclass
class CollectedRecords:
    """A consistent copy of what the collector has read so far."""

    alerts: list[ReceivedAlert] = field(default_factory=list)
    results: list[SeenResult] = field(default_factory=list)
    offload_reasons: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    malformed: int = 0


class PipelineCollector(TopicReader):
    """Reads the output topics in a thread; see the module docstring."""

    def __init__(self, settings: Settings, *, out: TextIO | None = None) -> None:
        super().__init__(
            settings, output_topics(settings), name="demo-collector", strict=False, poll_ms=300
        )
        self._out = out
        self._alerts: list[ReceivedAlert] = []
        self._results: list[SeenResult] = []
        self._reasons: Counter[str] = Counter()
        self._dead_letters = 0
        self._malformed = 0
        self._capture_end: dict[tuple[str, int], int] = {}

    def note_window(self, window: PublishedWindow) -> None:
        """Remember a published window's capture end (for per-alert latency)."""
        with self._lock:
            self._capture_end[(window.stream_id, window.window_seq)] = window.capture_end_ns

    def decided_windows(self) -> set[tuple[str, int]]:
        with self._lock:
            return {(r.stream_id, r.window_seq) for r in self._results}

    def snapshot(self) -> CollectedRecords:
        with self._lock:
            return CollectedRecords(
                alerts=list(self._alerts),
                results=list(self._results),
                offload_reasons=dict(self._reasons),
                dead_letters=self._dead_letters,
                malformed=self._malformed,
            )

    # -- reader thread --------------------------------------------------------------------

    def handle(self, record: Any) -> None:
        s = self._settings
        now_ns = time.time_ns()
        if record.topic == s.topic_alerts:
            self._handle_alert(record.value, now_ns)
        elif record.topic == s.topic_results:
            try:
                res = schemas.decode("result", record.value)
            except schemas.SchemaError:
                return
            with self._lock:
                self._results.append(
                    SeenResult(res["stream_id"], res["window_seq"], res["decided_by"], res["label"])
                )
        elif record.topic == s.topic_offload:
            try:
                reason = schemas.decode("offload_request", record.value)["reason"]
            except schemas.SchemaError:
                reason = "undecodable"
            with self._lock:
                self._reasons[reason] += 1
        elif record.topic == s.topic_deadletter:
            with self._lock:
                self._dead_letters += 1

    def _handle_alert(self, value: bytes, now_ns: int) -> None:
        try:
            alert = ReceivedAlert.from_cloudevent(json.loads(value), now_ns)
        except ValueError:
            with self._lock:
                self._malformed += 1
            return
        with self._lock:
            self._alerts.append(alert)
            end = self._capture_end.get((alert.stream_id, alert.first_window_seq))
        if end is None:
            end = alert.capture_end_ns
        # Latency is defined for detection only (capture end of the first fall window).
        detected = alert.state == "detected"
        latency = (now_ns - end) / 1e6 if end is not None and detected else None
        if self._out is not None:
            print(format_alert_line(alert, latency), file=self._out, flush=True)
