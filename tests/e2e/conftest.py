"""End-to-end tests reuse the integration stack fixtures unchanged.

Inputs/outputs: exactly those of tests/integration/conftest.py (``stack`` — autouse,
fails when the local stack is down — ``topic_factory``, ``redis_prefix``,
``redis_factory``, ``redis_client``, ``kafka_producer_factory``,
``kafka_consumer_factory``, ``consume_records``, ``kafka_admin``, and ``secure_stack``:
the secured stack, started once per session for the tests that ask for it). Re-exported
by import so there is one implementation to maintain.
"""

from __future__ import annotations

from tests.integration.conftest import (
    StackSettings,
    consume_records,
    kafka_admin,
    kafka_consumer_factory,
    kafka_producer_factory,
    redis_client,
    redis_factory,
    redis_prefix,
    secure_stack,
    stack,
    topic_factory,
    unique_name,
)

__all__ = [
    "StackSettings",
    "consume_records",
    "kafka_admin",
    "kafka_consumer_factory",
    "kafka_producer_factory",
    "redis_client",
    "redis_factory",
    "redis_prefix",
    "secure_stack",
    "stack",
    "topic_factory",
    "unique_name",
]
