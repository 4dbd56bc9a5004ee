"""The cloud worker process: consume offload requests in batches, commit after delivery.

Inputs: `Settings` (Kafka, Redis, cloud model path, batch size and wait, topics).
Outputs: a running `CloudWorker` (`streams.cloud.worker`) on the offload topic in the
consumer group `cloud_group`; metrics and /livez /readyz served by
`streams.core.health.HealthServer` on `http_host:cloud_http_port`.

Library choice: aiokafka, not kafka-python. Faust already runs aiokafka in this service
(one client and one set of protocol quirks to know against Kafka 4), the health server is
aiohttp on the same event loop, and an async loop lets inference run in a thread while
the consumer's heartbeats, fetches and the producer's deliveries keep going. Commit
control is explicit: `enable_auto_commit=False`, and `commit({tp: offset})` only after
`await`ing every produced record's delivery future. aiokafka defaults to acks=1 without
idempotence (docs/ARCHITECTURE.md): both are set explicitly. Rebalances run in the
background in aiokafka, so the rebalance listener waits for the batch in flight (and its
commit) before partitions are given away (`streams.kafka.batches`). Group joins: session
10 s / heartbeat 1 s, so a killed member is evicted quickly and tests rejoin fast.

Guarantees: at-least-once — offsets move only past records whose result (or dead
letter) was acknowledged by the broker (acks=all) and whose pending entry was removed;
a crash anywhere replays the batch, and the downstream event logic dedupes by
(stream, seq). SIGTERM/SIGINT: finish the batch in flight, commit, leave the group,
exit 0. A Redis outage or restart holds the batch in flight (the pending removal is
retried with capped backoff, `streams.cloud.pending`) with /readyz not ready; the worker
goes on when Redis is back. Failure modes: Kafka down past retries, a command Redis
refuses, or the model failing on `cloud_max_model_failures` windows in a row →
`CloudWorkerError` (/readyz 503), the process exits non-zero without committing (the batch
is replayed after restart); the model file unusable or not the pinned `cloud_model_sha256`
→ `models.runtime.errors.ModelLoadError` at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from streams.cloud.metrics import CloudMetrics
from streams.cloud.pending import PendingRemover, build_pending
from streams.cloud.worker import REMOVE_ATTEMPTS, CloudWorker, CloudWorkerError
from streams.core.crash_points import CrashPoints
from streams.core.settings import Settings
from streams.kafka.batches import batch_guard_listener, commit_offsets, next_batch

if TYPE_CHECKING:
    from models.runtime.onnx_models import CloudModel

__all__ = ["HEARTBEAT_INTERVAL_MS", "SESSION_TIMEOUT_MS", "run_cloud_worker", "serve"]

log = logging.getLogger(__name__)

SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_INTERVAL_MS = 1_000
#: Seconds without a completed poll after which /readyz reports Kafka as not ready.
_POLL_STALE_S = 15.0


async def _wait_for_redis(pending: PendingRemover) -> None:
    """Fail start-up (CloudWorkerError) when Redis does not answer within a few retries."""
    delay = 0.2
    for attempt in range(1, REMOVE_ATTEMPTS + 1):
        try:
            if await pending.ping():
                return
        except Exception as exc:  # connection refused, timeout, auth...
            if attempt == REMOVE_ATTEMPTS:
                raise CloudWorkerError(f"Redis not reachable at start-up: {exc!r}") from exc
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
    raise CloudWorkerError("Redis did not answer PING at start-up")


def _kafka_clients(settings: Settings) -> tuple[Any, Any]:
    """The idempotent acks=all producer and the manually committing consumer."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from streams.kafka.security import aiokafka_security
    from streams.kafka.topics import max_message_bytes

    security = aiokafka_security(settings)
    msg_bytes = max_message_bytes(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.cloud_group}-producer",
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        max_request_size=msg_bytes,
        **security,
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.cloud_group}-consumer",
        group_id=settings.cloud_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        max_partition_fetch_bytes=2 * msg_bytes,
        fetch_max_bytes=max(8 * msg_bytes, 52_428_800),
        **security,
    )
    return producer, consumer


def _health_server(
    settings: Settings, producer: Any, pending: PendingRemover, last_poll: list[float]
) -> Any:
    from streams.core.health import HealthServer

    async def kafka_ready() -> bool:
        await producer.client.fetch_all_metadata()
        return time.monotonic() - last_poll[0] < _POLL_STALE_S

    async def redis_ready() -> bool:
        return await pending.ping()

    async def model_ready() -> bool:
        return True  # loaded and warmed up before the server starts

    return HealthServer(
        {"kafka": kafka_ready, "redis": redis_ready, "model": model_ready},
        settings.http_host,
        settings.cloud_http_port,
    )


async def _consume(
    settings: Settings,
    consumer: Any,
    worker: CloudWorker,
    lock: asyncio.Lock,
    last_poll: list[float],
    stop: asyncio.Event,
) -> None:
    """Batches until `stop`: process, then commit (under the lock the rebalance waits for)."""
    from aiokafka.errors import CommitFailedError

    while not stop.is_set():
        records = await next_batch(consumer, settings.cloud_batch_max, settings.cloud_batch_wait_s)
        last_poll[0] = time.monotonic()
        if not records:
            continue
        async with lock:
            outcome = await worker.process(records)
            try:
                await consumer.commit(commit_offsets(records))
            except CommitFailedError as exc:
                # The partitions moved on; the new owner replays them (results are idempotent).
                log.warning("commit_failed_rebalanced", extra={"error": repr(exc)})
        log.debug("batch_done", extra={"size": len(records), **vars(outcome)})


async def _load_model(settings: Settings, executor: ThreadPoolExecutor) -> CloudModel:
    """The cloud model (its sha256 checked when pinned), loaded and warmed up on the
    inference thread."""
    from models.runtime.onnx_models import CloudModel

    loop = asyncio.get_running_loop()
    model = await loop.run_in_executor(
        executor,
        lambda: CloudModel.load(
            settings.cloud_model_path,
            threads=settings.inference_threads,
            file_sha256=settings.cloud_model_sha256,
        ),
    )
    await loop.run_in_executor(executor, model.warmup)
    return model


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run the cloud worker until `stop` is set (the async core of `run_cloud_worker`)."""
    from aiokafka.errors import KafkaError

    from models.runtime.onnx_models import verify_file_sha256
    from streams.core.metrics import preinitialize
    from streams.kafka.topics import ensure_topics

    loop = asyncio.get_running_loop()
    if settings.cloud_model_sha256 is not None:  # refuse a swapped model before any I/O
        verify_file_sha256(settings.cloud_model_path, settings.cloud_model_sha256, "cloud")
    await loop.run_in_executor(None, ensure_topics, settings)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cloud-infer")
    model = await _load_model(settings, executor)
    pending = build_pending(settings)
    await _wait_for_redis(pending)
    preinitialize()
    producer, consumer = _kafka_clients(settings)
    last_poll = [time.monotonic()]
    health = _health_server(settings, producer, pending, last_poll)
    version = f"{model.meta.name}@{model.meta.version}"
    worker = CloudWorker(
        settings,
        model,
        version,
        producer,
        pending,
        CloudMetrics(),
        executor=executor,
        crash_points=CrashPoints.from_settings(settings),
    )
    lock = asyncio.Lock()
    await producer.start()
    try:
        consumer.subscribe([settings.topic_offload], listener=batch_guard_listener(lock))
        await consumer.start()
        await health.start()
        log.info("cloud_worker_started", extra={"group": settings.cloud_group})
        await _consume(settings, consumer, worker, lock, last_poll, stop)
    except KafkaError as exc:
        health.mark_unready("kafka error")
        raise CloudWorkerError(f"Kafka failed: {exc!r}") from exc
    except CloudWorkerError as exc:
        health.mark_unready(f"fatal: {type(exc).__name__}")
        log.critical("cloud_worker_fatal", extra={"error": repr(exc)})
        raise
    finally:
        health.mark_unready("stopping")
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await producer.stop()
        await health.stop()
        executor.shutdown(wait=False)
        with contextlib.suppress(Exception):
            await pending.close()
        log.info("cloud_worker_stopped")


def run_cloud_worker(settings: Settings) -> None:
    """Blocking entry point: serve until SIGTERM/SIGINT, then finish the batch and exit."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    asyncio.run(main())
