"""The shared output-topic reader (streams/kafka/reader.py) against the real broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaProducer

from streams.core.settings import Settings
from streams.kafka.reader import TopicReader
from tests.integration.conftest import StackSettings


class _Recorder(TopicReader):
    """Keeps (topic, partition, value); a value of b"boom" makes `handle` raise."""

    def __init__(self, settings: Settings, topics: tuple[str, ...]) -> None:
        super().__init__(settings, topics, name="test-reader", strict=True, poll_ms=50)
        self.seen: list[tuple[str, int, bytes]] = []
        self.seen_event = threading.Event()

    def handle(self, record: Any) -> None:
        if record.value == b"boom":
            raise ValueError("a handler failure must not stop the reader")
        with self._lock:
            self.seen.append((record.topic, record.partition, record.value))

    def values(self) -> list[tuple[str, int, bytes]]:
        with self._lock:
            return list(self.seen)


def _wait_for(reader: _Recorder, n: int, timeout_s: float = 30.0) -> list[tuple[str, int, bytes]]:
    deadline = time.monotonic() + timeout_s
    while len(got := reader.values()) < n:
        assert time.monotonic() < deadline, f"only {len(got)} of {n} records read: {got}"
        time.sleep(0.05)
    return got


def test_reader_reads_every_partition_from_the_beginning_and_survives_handler_errors(
    stack: StackSettings,
    topic_factory: Callable[..., str],
    kafka_producer_factory: Callable[..., KafkaProducer],
) -> None:
    first, second = topic_factory("reader-a", partitions=3), topic_factory("reader-b", partitions=1)
    producer = kafka_producer_factory()
    before = [(first, p, f"a{p}-{i}".encode()) for p in range(3) for i in range(3)]
    for topic, p, value in before:
        producer.send(topic, value=value, partition=p)
    producer.flush()

    reader = _Recorder(Settings(kafka_bootstrap=stack.bootstrap), (first, second))
    reader.start(timeout_s=30)
    try:
        # Written before start(): read from offset 0 of every partition, in partition order.
        got = _wait_for(reader, len(before))
        assert sorted(got) == sorted(before)
        for p in range(3):
            assert [v for t, q, v in got if q == p] == [f"a{p}-{i}".encode() for i in range(3)]
        # Written after start, with a record whose handler raises in between.
        for value in (b"b-0", b"boom", b"b-1"):
            producer.send(second, value=value, partition=0)
        producer.flush()
        got = _wait_for(reader, len(before) + 2)
        assert [v for t, _, v in got if t == second] == [b"b-0", b"b-1"]
        assert reader.seconds_since_last_record() < 30
    finally:
        reader.stop()
    assert reader._thread is not None and not reader._thread.is_alive()
