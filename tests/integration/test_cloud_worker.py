"""Integration tests of the cloud worker (streams.cloud) on the real Kafka + Redis.

The worker runs as a subprocess (`python -m streams cloud`, settings from `FALLWATCH_*`)
on its own topics, consumer group, HTTP port and Redis prefix. Offload requests are
produced with kafka-python and registered as pending offloads in Redis the way the edge
does; results and dead letters are read back with kafka-python.

The cloud model is a tiny test-only ONNX model (tests/onnx_test_models.py): P(fall) is the
mean pixel of the (grey) window, so a uniform grey window of level v gives p = v/255 and
the expected label of every window is known; a second one loads and warms up but fails in
onnxruntime on every real window.
"""

from __future__ import annotations

import asyncio
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

import schemas
from streams.core.video import encode_window
from streams.devtools.workers import WorkerProcess, free_port
from tests.onnx_test_models import build_failing_cloud, build_mean_pixel_cloud

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

FALL_LEVEL, NO_FALL_LEVEL = 242, 13


@dataclass
class CloudSetup:
    env: dict[str, str]
    topics: dict[str, str]
    group: str
    port: int
    prefix: str
    redis_url: str
    bootstrap: str
    log_dir: Path


@pytest.fixture
def cloud_setup(
    tmp_path: Path, topic_factory: Callable[..., str], redis_prefix: str, stack: Any
) -> CloudSetup:
    topics = {
        kind: topic_factory(f"cloud-{kind}", partitions=4)
        for kind in ("frames", "offload", "results", "alerts", "deadletter")
    }
    group = f"test-cloud-{uuid.uuid4().hex[:8]}"
    port = free_port()
    prefix = redis_prefix.rstrip(":")
    env = {
        **os.environ,
        "FALLWATCH_KAFKA_BOOTSTRAP": stack.bootstrap,
        "FALLWATCH_REDIS_URL": stack.redis_url,
        "FALLWATCH_REDIS_PREFIX": prefix,
        "FALLWATCH_TOPIC_PARTITIONS": "4",
        "FALLWATCH_CLOUD_GROUP": group,
        "FALLWATCH_EDGE_GROUP": f"{group}-edge",
        "FALLWATCH_CLOUD_HTTP_PORT": str(port),
        "FALLWATCH_CLOUD_MODEL_PATH": str(build_mean_pixel_cloud(tmp_path / "cloud.onnx")),
        "FALLWATCH_CLOUD_BATCH_MAX": "4",
        "FALLWATCH_LOG_LEVEL": "INFO",
        **{f"FALLWATCH_TOPIC_{k.upper()}": v for k, v in topics.items()},
    }
    return CloudSetup(env, topics, group, port, prefix, stack.redis_url, stack.bootstrap, tmp_path)


def cloud_process(setup: CloudSetup, name: str, **env: str) -> WorkerProcess:
    """Start `python -m streams cloud` on the setup's topics (plus `env` overrides)."""
    merged = {**setup.env, **env}
    worker = WorkerProcess(
        "cloud", merged, int(merged["FALLWATCH_CLOUD_HTTP_PORT"]), setup.log_dir / f"{name}.log"
    )
    worker.start()
    return worker


@pytest.fixture
def cloud_processes() -> Iterator[list[WorkerProcess]]:
    procs: list[WorkerProcess] = []
    yield procs
    for p in procs:
        p.kill9()


def offload_request(stream: str, seq: int, level: int, reason: str = "uncertain") -> bytes:
    frames = np.full((16, 24, 32, 3), level, dtype=np.uint8)
    now = time.time_ns()
    window = {
        "stream_id": stream,
        "window_seq": seq,
        "capture_start_ns": now - 2_000_000_000,
        "capture_end_ns": now,
        "fps": 8.0,
        "width": 32,
        "height": 24,
        "frame_count": 16,
        "codec": "h264",
        "payload": encode_window(frames, fps=8.0, codec="h264"),
    }
    return schemas.encode(
        "offload_request",
        {
            "window": window,
            "edge": {"p_fall": 0.5, "switcher_score": 0.9, "threshold": 0.5, "embedding": None},
            "reason": reason,
            "model_versions": {"edge": "test@1"},
            "offloaded_at_ns": now,
            "deadline_ns": now + 60_000_000_000,
        },
    )


def fallback_result(stream: str, seq: int) -> bytes:
    return schemas.encode(
        "result",
        {
            "stream_id": stream,
            "window_seq": seq,
            "capture_start_ns": 0,
            "capture_end_ns": 1,
            "p_fall": 0.5,
            "label": 0,
            "decided_by": "edge-fallback",
            "switcher_score": 0.9,
            "model_versions": {},
            "latencies_s": {},
            "produced_at_ns": 2,
            "snapshot_jpeg": None,
        },
    )


def pending_op(setup: CloudSetup, op: str, keys: list[tuple[str, int]] | None = None) -> int:
    """Run a PendingOffloads operation ("add" for `keys`, or "count") on a fresh client."""
    from redis.asyncio import Redis

    from streams.events.state import PendingOffloads

    async def run() -> int:
        redis = Redis.from_url(setup.redis_url)
        try:
            pending = PendingOffloads(redis, prefix=setup.prefix)
            if op == "add":
                deadline = time.time_ns() + 600_000_000_000  # the sweeper must not fire
                for stream, seq in keys or []:
                    await pending.add(stream, seq, deadline, fallback_result(stream, seq))
            return int(await pending.count())
        finally:
            await redis.aclose()

    return asyncio.run(run())


def produce(
    setup: CloudSetup, items: list[tuple[str, int, int, str]], extra: Sequence[bytes] = ()
) -> dict[tuple[int, int], tuple[str, int]]:
    """Produce offload requests; return {(partition, offset): (stream, seq)}."""
    producer = KafkaProducer(bootstrap_servers=setup.bootstrap, acks="all", linger_ms=5)
    try:
        futures = [
            (
                producer.send(
                    setup.topics["offload"], key=s.encode(), value=offload_request(s, q, lv, r)
                ),
                (s, q),
            )
            for s, q, lv, r in items
        ]
        for value in extra:
            producer.send(setup.topics["offload"], key=b"junk", value=value)
        producer.flush(30)
        out = {}
        for fut, key in futures:
            meta = fut.get(timeout=30)
            out[(meta.partition, meta.offset)] = key
        return out
    finally:
        producer.close(10)


def read_all(
    setup: CloudSetup,
    kind: str,
    quiet_s: float = 2.0,
    timeout_s: float = 60.0,
    until: Callable[[list[Any]], bool] | None = None,
) -> list[Any]:
    consumer = KafkaConsumer(
        bootstrap_servers=setup.bootstrap, group_id=None, enable_auto_commit=False
    )
    try:
        topic = setup.topics[kind]
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        last = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=250)
            for recs in batch.values():
                records += recs
                last = time.monotonic()
            if until is not None and until(records):
                break
            if until is None and time.monotonic() - last > quiet_s:
                break
        return records
    finally:
        consumer.close()


def committed(setup: CloudSetup) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=setup.bootstrap)
    try:
        # kafka-python 3.x renamed list_consumer_group_offsets; returns {group: {tp: meta}}.
        offsets = admin.list_group_offsets(setup.group)[setup.group]
    finally:
        admin.close()
    return {
        tp.partition: meta.offset
        for tp, meta in offsets.items()
        if tp.topic == setup.topics["offload"]
    }


def end_offsets(setup: CloudSetup) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=setup.bootstrap, group_id=None)
    try:
        topic = setup.topics["offload"]
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def decoded_results(records: list[Any]) -> list[dict[str, Any]]:
    return [schemas.decode("result", r.value) for r in records]


def test_uncertain_requests_get_cloud_results_and_bad_ones_are_dead_lettered(
    cloud_setup: CloudSetup, cloud_processes: list[WorkerProcess]
) -> None:
    items = [("camA", q, FALL_LEVEL if q % 2 else NO_FALL_LEVEL, "uncertain") for q in range(6)]
    items += [("camB", 0, FALL_LEVEL, "audit"), ("camB", 1, NO_FALL_LEVEL, "audit")]
    uncertain = [(s, q) for s, q, _, r in items if r == "uncertain"]
    assert pending_op(cloud_setup, "add", uncertain) == len(uncertain)
    produce(cloud_setup, items, extra=[b"\x00\x00\x00\x00\x02not avro at all"])

    worker = cloud_process(cloud_setup, "worker")
    cloud_processes.append(worker)
    worker.wait_ready()
    results = decoded_results(
        read_all(cloud_setup, "results", until=lambda recs: len(recs) >= len(uncertain))
    )
    assert sorted((r["stream_id"], r["window_seq"]) for r in results) == sorted(uncertain)
    for r in results:
        assert r["decided_by"] == "cloud"
        assert r["label"] == r["window_seq"] % 2  # odd seqs were rendered as falls
        assert r["model_versions"]["cloud"].startswith("test-mean-pixel-cloud")
        assert (r["snapshot_jpeg"] is not None) == (r["label"] == 1)
    dead = read_all(cloud_setup, "deadletter", until=lambda recs: len(recs) >= 1)
    assert [d.value for d in dead] == [b"\x00\x00\x00\x00\x02not avro at all"]
    headers = {k: v for k, v in dead[0].headers}
    assert headers["fallwatch.dlq.source_topic"] == cloud_setup.topics["offload"].encode()

    deadline = time.monotonic() + 20
    while pending_op(cloud_setup, "count") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pending_op(cloud_setup, "count") == 0
    with urllib.request.urlopen(f"http://127.0.0.1:{cloud_setup.port}/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    assert f'fallwatch_results_total{{decided_by="cloud"}} {float(len(uncertain))}' in metrics
    assert 'fallwatch_audit_agreement_total{agree="true"}' in metrics
    assert worker.stop(grace_s=30.0) == 0, worker.tail(30)
    assert committed(cloud_setup) == {p: o for p, o in end_offsets(cloud_setup).items() if o}
    # Audit requests produced no result, even after everything was committed.
    assert len(read_all(cloud_setup, "results")) == len(uncertain)


def test_killed_worker_loses_no_window_and_commits_only_delivered_results(
    cloud_setup: CloudSetup, cloud_processes: list[WorkerProcess]
) -> None:
    items = [
        (f"cam{i % 4}", i // 4, FALL_LEVEL if i % 3 == 0 else NO_FALL_LEVEL, "uncertain")
        for i in range(240)
    ]
    windows = {(s, q) for s, q, _, _ in items}
    pending_op(cloud_setup, "add", sorted(windows))
    where = produce(cloud_setup, items)

    first = cloud_process(cloud_setup, "first", FALLWATCH_CLOUD_BATCH_MAX="1")
    cloud_processes.append(first)
    first.wait_ready()
    read_all(cloud_setup, "results", until=lambda recs: len(recs) >= 20)
    first.kill9()  # SIGKILL mid-way: no chance to finish the batch or commit

    seen = {
        (r["stream_id"], r["window_seq"]) for r in decoded_results(read_all(cloud_setup, "results"))
    }
    assert len(seen) < len(windows), "worker finished before the kill; make the run longer"
    # Every offload record below a committed offset already has its result on the topic.
    for partition, offset in committed(cloud_setup).items():
        covered = {key for (p, o), key in where.items() if p == partition and o < offset}
        assert covered <= seen, f"partition {partition}: committed past undelivered results"

    second = cloud_process(cloud_setup, "second")
    cloud_processes.append(second)
    second.wait_ready(timeout_s=90)
    results = decoded_results(
        read_all(
            cloud_setup,
            "results",
            timeout_s=120,
            until=lambda recs: (
                {(r["stream_id"], r["window_seq"]) for r in decoded_results(recs)} >= windows
            ),
        )
    )
    assert {(r["stream_id"], r["window_seq"]) for r in results} == windows  # no window lost
    expected_labels = {(s, q): int(lv == FALL_LEVEL) for s, q, lv, _ in items}
    assert all(r["label"] == expected_labels[(r["stream_id"], r["window_seq"])] for r in results)
    deadline = time.monotonic() + 20
    while pending_op(cloud_setup, "count") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pending_op(cloud_setup, "count") == 0
    assert second.stop(grace_s=30.0) == 0, second.tail(30)
    assert committed(cloud_setup) == {p: o for p, o in end_offsets(cloud_setup).items() if o}


def test_second_worker_shares_the_group_and_takes_over_after_a_graceful_stop(
    cloud_setup: CloudSetup, cloud_processes: list[WorkerProcess]
) -> None:
    items = [(f"cam{i % 4}", i // 4, NO_FALL_LEVEL, "uncertain") for i in range(160)]
    windows = {(s, q) for s, q, _, _ in items}
    pending_op(cloud_setup, "add", sorted(windows))

    a = cloud_process(cloud_setup, "a", FALLWATCH_CLOUD_BATCH_MAX="1")
    cloud_processes.append(a)
    a.wait_ready()
    b = cloud_process(
        cloud_setup, "b", FALLWATCH_CLOUD_BATCH_MAX="1", FALLWATCH_CLOUD_HTTP_PORT=str(free_port())
    )
    cloud_processes.append(b)
    time.sleep(3)  # let b join: partitions are split between a and b
    produce(cloud_setup, items)
    read_all(cloud_setup, "results", until=lambda recs: len(recs) >= 20)
    assert a.stop(grace_s=30.0) == 0, a.tail(30)  # rebalance while b is mid-batch
    results = decoded_results(
        read_all(
            cloud_setup,
            "results",
            timeout_s=120,
            until=lambda recs: (
                {(r["stream_id"], r["window_seq"]) for r in decoded_results(recs)} >= windows
            ),
        )
    )
    assert {(r["stream_id"], r["window_seq"]) for r in results} == windows
    assert b.proc.poll() is None, b.tail(30)
    assert b.stop(grace_s=30.0) == 0, b.tail(30)
    assert committed(cloud_setup) == {p: o for p, o in end_offsets(cloud_setup).items() if o}
    assert pending_op(cloud_setup, "count") == 0


def test_a_cloud_model_failing_on_every_window_stops_the_worker_with_status_1(
    cloud_setup: CloudSetup, cloud_processes: list[WorkerProcess]
) -> None:
    """Regression (issue 19): every offload was dead-lettered and committed while /readyz
    stayed ready; now the worker stops (not-ready, exit 1) after N failures in a row and
    the windows stay pending for the edge fallback."""
    limit = 4
    items = [(f"cam{i % 2}", i // 2, FALL_LEVEL, "uncertain") for i in range(12)]
    windows = sorted({(s, q) for s, q, _, _ in items})
    pending_op(cloud_setup, "add", windows)
    produce(cloud_setup, items)
    failing = str(build_failing_cloud(cloud_setup.log_dir / "failing.onnx"))
    worker = cloud_process(
        cloud_setup,
        "failing",
        FALLWATCH_CLOUD_MODEL_PATH=failing,
        FALLWATCH_CLOUD_MAX_MODEL_FAILURES=str(limit),
    )
    cloud_processes.append(worker)
    deadline = time.monotonic() + 120
    while worker.exited() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker.exited() == 1, worker.tail(30)
    logs = worker.logs(tail=None)
    assert "cloud_model_failing" in logs and "CloudModelFailingError" in logs, worker.tail(30)
    assert read_all(cloud_setup, "results", quiet_s=1.0) == []
    dead = read_all(cloud_setup, "deadletter", quiet_s=1.0)
    assert len(dead) < limit  # only windows before the limit was reached
    assert pending_op(cloud_setup, "count") == len(windows)  # the edge fallback answers them
