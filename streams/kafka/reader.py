"""A background reader of whole topics, for tools that watch a run's output (demo, load tests).

Inputs: ``Settings`` (broker, security, message size cap) and the topics to read. A
kafka-python consumer without a group is assigned every partition of those topics from the
beginning (short fetch waits, so a record's receive time is close to its append time) and
polled in a daemon thread; each record goes to the subclass's ``handle(record)``.
Outputs: whatever the subclass collects; ``seconds_since_last_record()`` for drain checks.

Guarantees: ``start()`` returns once every partition is assigned (or after ``timeout_s``:
then it raises with ``strict``, else logs a warning); ``stop()`` returns within a few
seconds. A topic created moments ago is waited for (up to 20 s) until its partitions show in
the metadata. A record whose ``handle`` raises is logged and skipped, never the records after
it. Failure modes: Kafka errors are logged and the loop goes on after a short pause until
``stop()``; subclasses decide what an undecodable record counts as.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from streams.core.settings import Settings

__all__ = ["TopicReader"]

log = logging.getLogger(__name__)

_TOPIC_WAIT_S = 20.0  # for metadata of topics created just before the reader starts
_RETRY_PAUSE_S = 0.5


class TopicReader:
    """Reads ``topics`` from the beginning in a daemon thread; see the module docstring."""

    def __init__(self, settings: Settings, topics: Sequence[str], *, name: str,
                 strict: bool = True, poll_ms: int = 100) -> None:  # fmt: skip
        self._settings = settings
        self._topics = tuple(topics)
        self._name = name
        self._strict = strict
        self._poll_ms = poll_ms
        self._lock = threading.Lock()  # guards the subclass's collections too
        self._stop = threading.Event()
        self._assigned = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_record = time.monotonic()

    def handle(self, record: Any) -> None:
        """One consumed record (kafka-python ``ConsumerRecord``); runs in the reader thread."""
        raise NotImplementedError

    def start(self, timeout_s: float = 30.0) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        if not self._assigned.wait(timeout_s):
            if self._strict:
                raise RuntimeError(f"{self._name} not assigned after {timeout_s} s")
            log.warning("reader_not_assigned", extra={"reader": self._name, "timeout_s": timeout_s})

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def seconds_since_last_record(self) -> float:
        with self._lock:
            return time.monotonic() - self._last_record

    def _consumer(self) -> Any:
        from kafka import KafkaConsumer, TopicPartition

        from streams.kafka.security import kafka_python_security
        from streams.kafka.topics import max_message_bytes

        s = self._settings
        consumer = KafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap,
            client_id=f"fallwatch-{self._name}-{s.redis_prefix}",
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=10,
            # kafka-python checks CRC32C in Python: a watcher must not steal the pipeline's
            # CPU for a check the local broker makes anyway.
            check_crcs=False,
            max_partition_fetch_bytes=2 * max_message_bytes(s),
            **kafka_python_security(s),
        )
        partitions: list[Any] = []
        for topic in self._topics:
            deadline = time.monotonic() + _TOPIC_WAIT_S
            found = consumer.partitions_for_topic(topic)
            while not found and time.monotonic() < deadline and not self._stop.is_set():
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
                batch = consumer.poll(timeout_ms=self._poll_ms)
                for records in batch.values():
                    for record in records:
                        self._deliver(record)
            except Exception as exc:  # Kafka trouble: keep reading; the caller reports
                log.warning("reader_error", extra={"reader": self._name, "error": repr(exc)})
                time.sleep(_RETRY_PAUSE_S)
        if consumer is not None:
            consumer.close()

    def _deliver(self, record: Any) -> None:
        """One record to ``handle``; its failure is logged and skips only that record (the
        consumer has moved past the whole batch, so raising would lose the rest of it)."""
        with self._lock:
            self._last_record = time.monotonic()
        try:
            self.handle(record)
        except Exception as exc:
            log.warning("reader_handle_error", extra={"reader": self._name, "topic": record.topic,
                        "offset": record.offset, "error": repr(exc)})  # fmt: skip
