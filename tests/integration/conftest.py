"""Fixtures for tests that use the real local stack (Kafka + Redis from `make up`).

Inputs: the stack started by ``make up`` (``scripts/stack.sh``): Kafka at
``127.0.0.1:19092``, Redis at ``redis://127.0.0.1:16379/0``. ``make test`` starts it
before pytest runs. ``FALLWATCH_KAFKA_BOOTSTRAP`` / ``FALLWATCH_REDIS_URL`` (the app's
own settings variables) override both, for a stack on other ports.

Outputs (fixtures):
- ``stack`` (session, autouse here and in tests/e2e/): a `StackSettings`; FAILS the
  session with "run `make up`" when Kafka or Redis does not answer. Never skips: a
  missing stack is a broken environment, not an optional feature.
- ``topic_factory(hint="t", partitions=8, config=None) -> str``: creates a uniquely
  named topic, waits until its metadata is visible, deletes it at teardown.
- ``redis_prefix``: a unique key prefix (``"fwtest:<hex>:"``); every key under it is
  deleted at teardown. ``redis_factory(decode_responses=False) -> redis.Redis``: sync
  clients, closed at teardown. ``redis_client``: one such client.
- ``kafka_producer_factory(**overrides) -> KafkaProducer`` and
  ``kafka_consumer_factory(*topics, group_id=..., **overrides) -> KafkaConsumer``
  (kafka-python, closed at teardown; consumers start from the earliest offset, no
  auto-commit, short session timeouts so group joins are quick, and subscribe only once
  their own metadata knows the topics' partitions: ``subscribe_when_known``).
- ``consume_records(consumer, n, timeout_s=30.0)``: poll until ``n`` records arrived.
- ``secure_stack`` (session, not autouse): a second, secured stack started for the
  tests that ask for it (Kafka SASL_SSL with SCRAM-SHA-512, Redis with TLS and a
  password, a CA and certificates generated into a temp folder; see tests/secure_stack.py).
  Yields a `tests.secure_stack.SecureStack`; its ``env`` holds the ``FALLWATCH_*``
  variables that point a worker at it. Stopped at the end of the session.

Guarantees: every name (topic, group, key prefix) is unique per test, so tests can
run in any order against one long-lived stack and leave nothing behind on success.
Failure modes: topic creation or metadata wait errors fail the test with the broker's
message; teardown cleanup errors are logged, never raised (they would hide the real
failure).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from tests.secure_stack import SecureStack, running_secure_stack

logger = logging.getLogger(__name__)

STACK_BOOTSTRAP = "127.0.0.1:19092"
STACK_REDIS_URL = "redis://127.0.0.1:16379/0"
_REACH_TIMEOUT_MS = 5000


@dataclass(frozen=True)
class StackSettings:
    """Where the local stack listens; pass these into code under test."""

    bootstrap: str = STACK_BOOTSTRAP
    redis_url: str = STACK_REDIS_URL

    @classmethod
    def from_env(cls) -> StackSettings:
        """The contract's addresses unless the app's own FALLWATCH_* variables say otherwise."""
        return cls(
            bootstrap=os.environ.get("FALLWATCH_KAFKA_BOOTSTRAP", STACK_BOOTSTRAP),
            redis_url=os.environ.get("FALLWATCH_REDIS_URL", STACK_REDIS_URL),
        )


def unique_name(hint: str) -> str:
    """Return ``test-<hint>-<10 hex>``: a Kafka-legal name no other test will use."""
    return f"test-{hint}-{uuid.uuid4().hex[:10]}"


def _stack_problems(settings: StackSettings) -> list[str]:
    problems: list[str] = []
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.bootstrap,
            request_timeout_ms=_REACH_TIMEOUT_MS,
            bootstrap_timeout_ms=_REACH_TIMEOUT_MS,
            client_id="fallwatch-test-probe",
        )
        try:
            admin.list_topics()
        finally:
            admin.close()
    except Exception as exc:  # any client error means "not reachable"
        problems.append(f"Kafka at {settings.bootstrap}: {type(exc).__name__}: {exc}")
    try:
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
        try:
            if client.ping() is not True:
                problems.append(f"Redis at {settings.redis_url}: PING did not return PONG")
        finally:
            client.close()
    except redis.RedisError as exc:
        problems.append(f"Redis at {settings.redis_url}: {type(exc).__name__}: {exc}")
    return problems


@pytest.fixture(scope="session", autouse=True)
def stack() -> StackSettings:
    """Check once per session that Kafka and Redis answer; fail (never skip) if not."""
    settings = StackSettings.from_env()
    problems = _stack_problems(settings)
    if problems:
        pytest.fail(
            "local stack not reachable — run `make up` (then `make status`; logs in "
            ".stack/logs/):\n  " + "\n  ".join(problems),
            pytrace=False,
        )
    return settings


@pytest.fixture(scope="session")
def kafka_admin(stack: StackSettings) -> Iterator[KafkaAdminClient]:
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap, client_id="fallwatch-test-admin")
    yield admin
    admin.close()


@pytest.fixture
def topic_factory(kafka_admin: KafkaAdminClient) -> Iterator[Callable[..., str]]:
    """Create unique topics on demand; delete them when the test ends."""
    created: list[str] = []

    def create(hint: str = "t", partitions: int = 8, config: dict[str, str] | None = None) -> str:
        name = unique_name(hint)
        topic = NewTopic(name, partitions, 1, topic_configs=dict(config or {}))
        kafka_admin.create_topics([topic], timeout_ms=15_000, wait_for_metadata=True)
        created.append(name)
        _wait_for_leaders(kafka_admin, name, partitions)
        return name

    yield create
    if created:
        try:
            kafka_admin.delete_topics(created, timeout_ms=15_000, raise_errors=False)
        except KafkaError:
            logger.warning("could not delete test topics %s", created, exc_info=True)


def _wait_for_leaders(admin: KafkaAdminClient, topic: str, partitions: int) -> None:
    """Wait until every partition has a leader, so the first send does not bounce."""
    deadline = time.monotonic() + 15.0
    while True:
        described = admin.describe_topics([topic])
        parts = described[0].get("partitions", []) if described else []
        if len(parts) == partitions and all(p.get("leader_id", -1) >= 0 for p in parts):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"topic {topic}: partitions without leader after 15 s: {parts}")
        time.sleep(0.1)


@pytest.fixture
def redis_prefix(stack: StackSettings) -> Iterator[str]:
    """A key prefix unique to this test; all keys under it are deleted afterwards."""
    prefix = f"fwtest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(stack.redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        logger.warning("could not clean redis prefix %s", prefix, exc_info=True)
    finally:
        client.close()


@pytest.fixture
def redis_factory(stack: StackSettings) -> Iterator[Callable[..., redis.Redis]]:
    """Make sync Redis clients for the stack; all are closed when the test ends."""
    clients: list[redis.Redis] = []

    def make(decode_responses: bool = False) -> redis.Redis:
        client = redis.Redis.from_url(
            stack.redis_url, decode_responses=decode_responses, socket_timeout=10
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def redis_client(redis_factory: Callable[..., redis.Redis]) -> redis.Redis:
    return redis_factory()


@pytest.fixture
def kafka_producer_factory(stack: StackSettings) -> Iterator[Callable[..., KafkaProducer]]:
    """kafka-python producers (acks=all, idempotent, as in kafka-python 3.x); closed after."""
    producers: list[KafkaProducer] = []

    def make(**overrides: Any) -> KafkaProducer:
        options: dict[str, Any] = {
            "bootstrap_servers": stack.bootstrap,
            "acks": "all",
            "linger_ms": 5,
            "client_id": unique_name("producer"),
        }
        options.update(overrides)
        producer = KafkaProducer(**options)
        producers.append(producer)
        return producer

    yield make
    for producer in producers:
        producer.close(timeout=10)


@pytest.fixture
def kafka_consumer_factory(stack: StackSettings) -> Iterator[Callable[..., KafkaConsumer]]:
    """kafka-python consumers: earliest offsets, manual commit, quick group joins."""
    consumers: list[KafkaConsumer] = []

    def make(*topics: str, group_id: str | None = None, **overrides: Any) -> KafkaConsumer:
        options: dict[str, Any] = {
            "bootstrap_servers": stack.bootstrap,
            "group_id": group_id,
            "auto_offset_reset": "earliest",
            "enable_auto_commit": False,
            # kafka-python 3.x defaults to a 45 s session: joins and leaves would crawl.
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 1000,
            "client_id": unique_name("consumer"),
        }
        options.update(overrides)
        consumer = KafkaConsumer(**options)
        consumers.append(consumer)
        if topics:
            subscribe_when_known(consumer, topics)
        return consumer

    yield make
    for consumer in consumers:
        consumer.close()


def subscribe_when_known(
    consumer: KafkaConsumer, topics: Sequence[str], timeout_s: float = 15.0
) -> None:
    """Subscribe ``consumer`` once ITS OWN metadata lists every partition of ``topics``.

    Regression (issue 19, a fresh clone's first ``make test`` failing in
    test_kafka_committed_offsets_visible_to_admin with "No partition metadata for topic"):
    kafka-python joins the group without waiting for the subscribed topics' metadata
    (only pattern subscriptions refresh it first, KAFKA-3949), so the group leader assigned
    NOTHING on the first join and the consumer depended on a second rebalance, triggered by
    a later metadata refresh. On a cold broker that second rebalance could come after the
    test's wait, or between a poll and the commit. With the metadata fetched first, the
    first join assigns every partition.
    """
    deadline = time.monotonic() + timeout_s
    for topic in topics:
        while not consumer.partitions_for_topic(topic):
            if time.monotonic() > deadline:
                pytest.fail(f"consumer metadata has no partitions for {topic} after {timeout_s} s")
            time.sleep(0.1)
    consumer.subscribe(list(topics))


def _consume(consumer: KafkaConsumer, n: int, timeout_s: float = 30.0) -> list[ConsumerRecord]:
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < n and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=250).values():
            records.extend(batch)
    return records


@pytest.fixture
def consume_records() -> Callable[..., list[ConsumerRecord]]:
    """``consume_records(consumer, n, timeout_s=30.0)``: poll until ``n`` records (or time out).

    Returns what arrived; the caller asserts on the count, so a timeout shows up as a
    clear assertion on the records, not a hang.
    """
    return _consume


@pytest.fixture(scope="session")
def secure_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureStack]:
    """The secured stack (SASL_SSL Kafka, TLS + password Redis), once per session.

    Its ``env`` is what a worker needs (``FALLWATCH_KAFKA_*``, ``FALLWATCH_REDIS_URL``);
    everything it generated lives under a pytest temp folder. Stopped at session end,
    also when tests failed; a watcher stops it should pytest itself be killed.
    """
    with running_secure_stack(tmp_path_factory.mktemp("secure-stack")) as secured:
        yield secured
