"""Create the service's Kafka topics at start-up (broker auto-creation is off).

Inputs: ``Settings`` (bootstrap, security, topic names, partitions, replication,
``max_window_bytes``).
Outputs: ``ensure_topics(settings)`` creates every missing topic of the service with the
configured partition count and replication, and a ``max.message.bytes`` large enough for a
full window plus headroom; returns the names it created. ``service_topics`` and
``output_topics`` name them; ``max_message_bytes`` is the record size limit the clients use.
Client security (TLS/SASL) is in ``streams.kafka.security``.

Guarantees: idempotent (existing topics are left alone; a concurrent creator winning the race
is fine); existing topics with fewer partitions than configured are logged as a warning, never
altered (changing partition counts would break key → partition ordering for live streams).
The call returns only once every topic has a leader for each partition.
Failure modes: ``TopicSetupError`` once the broker stayed unreachable or refused the creation
through ``attempts`` tries with exponential backoff (the worker must not start then).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streams.core.errors import DependencyError, MessageTooLargeError
from streams.core.settings import Settings
from streams.kafka.security import kafka_python_security

__all__ = [
    "MESSAGE_HEADROOM_BYTES",
    "TopicSetupError",
    "check_record_size",
    "ensure_topics",
    "max_message_bytes",
    "output_topics",
    "service_topics",
]

log = logging.getLogger(__name__)

#: Room for Avro framing, the offload request's edge output and Kafka record overhead on top
#: of the largest window payload (the embedding is at most a few KiB).
MESSAGE_HEADROOM_BYTES = 64 * 1024
# The broker's own default (message.max.bytes); we never set a topic below it.
_BROKER_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588


class TopicSetupError(DependencyError):
    """Raised by ``ensure_topics`` when the service topics cannot be created or verified
    (broker unreachable, ACL denies CreateTopics, replication above the broker count).
    Operator: check the broker and the ``FALLWATCH_KAFKA_*`` / ``FALLWATCH_TOPIC_*``
    settings, or create the topics yourself with the partition counts of the settings."""


def service_topics(settings: Settings) -> list[str]:
    """Every topic the service reads or writes."""
    return [
        settings.topic_frames,
        settings.topic_offload,
        settings.topic_results,
        settings.topic_alerts,
        settings.topic_deadletter,
    ]


def output_topics(settings: Settings) -> list[str]:
    """The topics the pipeline writes (everything but the frames it reads): what a watcher
    of a run (the demo, the load tests) reads."""
    return [t for t in service_topics(settings) if t != settings.topic_frames]


def max_message_bytes(settings: Settings) -> int:
    """Largest record the service may write: a full window plus headroom (≥ broker default)."""
    return max(
        _BROKER_DEFAULT_MAX_MESSAGE_BYTES, settings.max_window_bytes + MESSAGE_HEADROOM_BYTES
    )


#: Kept free below ``max_message_bytes`` for a record's headers and the batch overhead.
RECORD_OVERHEAD_BYTES = 8 * 1024


def check_record_size(key: bytes | None, value: bytes | None, settings: Settings) -> None:
    """``MessageTooLargeError`` when a record the service is about to write would not fit
    the producer's and the topics' message limit; checked before the send, so an oversized
    output is a dead letter of its input instead of a producer error that stops the worker."""
    size = len(key or b"") + len(value or b"")
    limit = max_message_bytes(settings) - RECORD_OVERHEAD_BYTES
    if size > limit:
        raise MessageTooLargeError(f"output record of {size} bytes (key + value), limit {limit}")


def ensure_topics(
    settings: Settings,
    topics: Iterable[str] | None = None,
    *,
    attempts: int = 5,
    backoff_s: float = 0.5,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the missing ``topics`` (default: all service topics); return the created ones.

    Blocking (kafka-python): call it before the worker's event loop starts, or in a thread.
    """
    wanted = list(dict.fromkeys(topics if topics is not None else service_topics(settings)))
    last_error: BaseException | None = None
    for attempt in range(1, attempts + 1):
        try:
            return _ensure_once(settings, wanted, timeout_s)
        except KafkaError as exc:
            last_error = exc
            delay = backoff_s * 2 ** (attempt - 1)
            log.warning(
                "topic_setup_retry",
                extra={"attempt": attempt, "delay_s": delay, "error": repr(exc)},
            )
            if attempt < attempts:
                time.sleep(delay)
    raise TopicSetupError(
        f"could not create/verify topics {wanted} on {settings.kafka_bootstrap} "
        f"after {attempts} attempts: {last_error!r}"
    ) from last_error


def _ensure_once(settings: Settings, wanted: list[str], timeout_s: float) -> list[str]:
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.edge_group}-topic-setup",
        request_timeout_ms=int(timeout_s * 1000),
        **kafka_python_security(settings),
    )
    try:
        existing = set(admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        created: list[str] = []
        if missing:
            spec = {
                "num_partitions": settings.topic_partitions,
                "replication_factor": settings.topic_replication,
                "configs": {"max.message.bytes": str(max_message_bytes(settings))},
            }
            response = admin.create_topics(
                {name: dict(spec) for name in missing},
                timeout_ms=int(timeout_s * 1000),
                raise_errors=False,
            )
            created = _created_from_response(response, missing)
        admin.wait_for_topics(wanted, timeout_ms=int(timeout_s * 1000))
        _warn_on_partition_mismatch(admin, settings, wanted)
        if created:
            log.info("topics_created", extra={"topics": created})
        return created
    finally:
        admin.close()


def _created_from_response(response: Any, requested: list[str]) -> list[str]:
    """Names created by this call; raise for errors other than "already exists"."""
    results = response.get("topics", []) if isinstance(response, dict) else []
    created: list[str] = []
    for item in results:
        name = item.get("name")
        code = int(item.get("error_code", 0))
        if code == 0:
            created.append(name)
        elif code == TopicAlreadyExistsError.errno:
            continue  # a concurrent worker created it first
        else:
            message = item.get("error_message") or f"error code {code}"
            raise TopicSetupError(f"broker refused to create topic {name!r}: {message}")
    return created if results else list(requested)


def _warn_on_partition_mismatch(
    admin: KafkaAdminClient, settings: Settings, wanted: list[str]
) -> None:
    for topic in admin.describe_topics(wanted):
        count = len(topic.get("partitions", []))
        if count < settings.topic_partitions:
            log.warning(
                "topic_partition_count_low",
                extra={
                    "topic": topic.get("name"),
                    "partitions": count,
                    "configured": settings.topic_partitions,
                },
            )
