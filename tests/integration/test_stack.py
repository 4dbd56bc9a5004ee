"""The local stack is the real thing: Apache Kafka (KRaft) + Redis with AOF.

Proves what the rest of the suite relies on: kafka-python and aiokafka both produce
and consume through the broker (consumer groups, commits), a tiny Faust app forwards
messages, the broker refuses to auto-create unknown topics, and Redis answers PING
with append-only persistence on.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaTimeoutError

from tests.integration.conftest import StackSettings, unique_name

pytestmark = pytest.mark.integration

ConsumeFn = Callable[..., list[ConsumerRecord]]


def test_kafka_python_group_consumes_and_commits(
    topic_factory: Callable[..., str],
    kafka_producer_factory: Callable[..., KafkaProducer],
    kafka_consumer_factory: Callable[..., KafkaConsumer],
    consume_records: ConsumeFn,
) -> None:
    topic = topic_factory("kp", partitions=4)
    group = unique_name("group")
    producer = kafka_producer_factory()
    sent = {(f"cam-{i % 3}".encode(), f"msg-{i}".encode()) for i in range(30)}
    for key, value in sorted(sent):
        producer.send(topic, key=key, value=value)
    producer.flush(timeout=20)

    first = kafka_consumer_factory(topic, group_id=group)
    records = consume_records(first, len(sent))
    assert {(r.key, r.value) for r in records} == sent
    first.commit()
    committed = {tp: first.committed(tp) for tp in first.assignment()}
    assert sum(offset or 0 for offset in committed.values()) == len(sent)
    first.close()

    # A new member of the same group resumes after the commit: it sees only new data.
    producer.send(topic, key=b"cam-0", value=b"after-commit").get(timeout=20)
    second = kafka_consumer_factory(topic, group_id=group)
    assert [r.value for r in consume_records(second, 1)] == [b"after-commit"]
    assert consume_records(second, 1, timeout_s=2.0) == []


async def test_aiokafka_produces_and_consumes_in_key_order(
    stack: StackSettings, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("aio", partitions=8)
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for seq in range(12):
            await producer.send_and_wait(topic, key=b"cam-7", value=str(seq).encode())
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.bootstrap,
        group_id=unique_name("aiogroup"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + 30
        while len(values) < 12 and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=250)
            values.extend(r.value for batch in batches.values() for r in batch if r.value)
        await consumer.commit()
    finally:
        await consumer.stop()
    # One key lands on one partition, so order is preserved end to end.
    assert values == [str(seq).encode() for seq in range(12)]


def test_broker_refuses_to_auto_create_unknown_topic(
    kafka_admin: KafkaAdminClient, kafka_producer_factory: Callable[..., KafkaProducer]
) -> None:
    missing = unique_name("missing")
    producer = kafka_producer_factory(max_block_ms=3000)
    with pytest.raises(KafkaTimeoutError):
        producer.send(missing, value=b"x").get(timeout=10)
    assert missing not in kafka_admin.list_topics()


def test_tiny_faust_app_forwards_messages(
    tmp_path: Path,
    topic_factory: Callable[..., str],
    kafka_producer_factory: Callable[..., KafkaProducer],
    kafka_consumer_factory: Callable[..., KafkaConsumer],
    consume_records: ConsumeFn,
    stack: StackSettings,
) -> None:
    source, sink = topic_factory("fsrc", partitions=2), topic_factory("fsink", partitions=2)
    (tmp_path / "tiny_faust_app.py").write_text(
        textwrap.dedent(
            f"""
            import faust

            app = faust.App(
                {unique_name("faust")!r},
                broker="kafka://{stack.bootstrap}",
                store="memory://",
                web_enabled=False,
                topic_allow_declare=False,
                producer_acks=-1,
            )
            source = app.topic({source!r}, value_serializer="raw")
            sink = app.topic({sink!r}, value_serializer="raw")

            @app.agent(source)
            async def forward(stream):
                async for value in stream:
                    await sink.send(value=b"seen:" + value)
            """
        )
    )
    faust_bin = Path(sys.executable).with_name("faust")
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [str(faust_bin), "-A", "tiny_faust_app", "worker", "--without-web", "-l", "info"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(tmp_path)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        producer = kafka_producer_factory()
        for i in range(5):
            producer.send(source, key=f"k{i}".encode(), value=f"m{i}".encode())
        producer.flush(timeout=20)
        records = consume_records(kafka_consumer_factory(sink), 5, timeout_s=90)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    assert sorted(r.value for r in records) == [f"seen:m{i}".encode() for i in range(5)], (
        log_path.read_text()[-3000:]
    )


def test_redis_pings_with_append_only_persistence(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    assert redis_client.ping() is True
    assert redis_client.config_get("appendonly") == {"appendonly": "yes"}
    assert redis_client.config_get("appendfsync") == {"appendfsync": "everysec"}
    redis_client.set(f"{redis_prefix}probe", b"1", ex=60)
    assert redis_client.get(f"{redis_prefix}probe") == b"1"


def test_kafka_committed_offsets_visible_to_admin(
    topic_factory: Callable[..., str],
    kafka_admin: KafkaAdminClient,
    kafka_producer_factory: Callable[..., KafkaProducer],
    kafka_consumer_factory: Callable[..., KafkaConsumer],
    consume_records: ConsumeFn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The lag metrics (and KEDA in k8s) read committed offsets through the admin API.
    # Regression (issue 19): this failed once on a fresh clone's first `make test` ("No
    # partition metadata for topic"): the consumer joined before its metadata knew the
    # topic, got nothing on the first assignment and relied on a second rebalance.
    caplog.set_level(logging.WARNING, logger="kafka.coordinator")
    topic = topic_factory("lag", partitions=1)
    group = unique_name("laggroup")
    producer = kafka_producer_factory()
    for i in range(5):
        producer.send(topic, value=str(i).encode())
    producer.flush(timeout=20)
    consumer = kafka_consumer_factory(topic, group_id=group)
    assert len(consume_records(consumer, 5)) == 5
    consumer.commit()
    offsets = kafka_admin.list_group_offsets(group)[group]
    assert offsets[TopicPartition(topic, 0)].offset == 5
    empty_assignments = [r for r in caplog.records if "No partition metadata" in r.getMessage()]
    assert empty_assignments == [], "the first group join assigned no partition"
