"""Adapters the cloud worker needs around shared pieces: metrics, pending store, Kafka auth.

Inputs: `Settings`. Outputs:
- `dead_letter_headers(topic, partition, offset, exc)`: the `fallwatch.dlq.*` headers
  documented in schemas/dead_letter.v1.json.
- `snapshot_jpeg(frames, max_bytes)`: a small JPEG of the window's middle frame (or None).
- `CloudMetrics`: the cloud worker's metric hooks on the shared `fallwatch_*` metrics.
- `next_batch`, `commit_offsets`, `batch_guard_listener`: the aiokafka consumption
  helpers (batch of up to N records or a short wait; next offsets per partition; a
  rebalance listener that hands partitions over only between batches).
- `PendingRemover` + `build_pending(settings)`: removes answered windows from the
  edge's pending-offload store (`streams.events.state.PendingOffloads`).

Guarantees: no clients are created at import; `build_pending` connects lazily.
Failure modes: Redis errors propagate from `remove_many`/`ping` (the worker retries).
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from streams.core.settings import Settings

__all__ = [
    "CloudMetrics",
    "PendingRemover",
    "batch_guard_listener",
    "build_pending",
    "commit_offsets",
    "dead_letter_headers",
    "next_batch",
    "snapshot_jpeg",
]

log = logging.getLogger(__name__)

_ERROR_TEXT_MAX = 1000
POLL_TIMEOUT_S = 0.5


def dead_letter_headers(
    topic: str, partition: int, offset: int, exc: BaseException
) -> list[tuple[str, bytes]]:
    """Headers saying where a dead letter came from and why (UTF-8 values)."""
    return [
        ("fallwatch.dlq.source_topic", topic.encode()),
        ("fallwatch.dlq.partition", str(partition).encode()),
        ("fallwatch.dlq.offset", str(offset).encode()),
        ("fallwatch.dlq.error_class", type(exc).__name__.encode()),
        ("fallwatch.dlq.error", str(exc)[:_ERROR_TEXT_MAX].encode("utf-8", "replace")),
    ]


def snapshot_jpeg(frames: NDArray[np.uint8], max_bytes: int) -> bytes | None:
    """JPEG of the middle frame, lowering quality until it fits `max_bytes` (else None)."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(frames[len(frames) // 2]))
    for quality in (85, 70, 50, 30, 15):
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=quality)
        if buf.tell() <= max_bytes:
            return buf.getvalue()
    return None


class PendingRemover(Protocol):
    """The part of the pending-offload store the cloud worker uses."""

    async def remove_many(self, keys: Sequence[tuple[str, int]]) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class CloudMetrics:
    """Metric hooks of the cloud worker on the shared `fallwatch_*` metrics.

    Names, labels and buckets are defined once in `streams.core.metrics`; a metric call never
    raises into the worker (a metrics bug must not stop the pipeline).
    """

    @staticmethod
    def _m() -> Any:
        import streams.core.metrics as metrics

        return metrics

    def _safe(self, update: Callable[[Any], None]) -> None:
        try:
            update(self._m())
        except Exception:
            log.debug("metrics_update_failed", exc_info=True)

    def windows_in(self, n: int) -> None:
        self._safe(lambda m: m.WINDOWS_IN.labels(worker="cloud").inc(n))

    def stage(self, stage: str, seconds: float) -> None:
        self._safe(lambda m: m.STAGE_SECONDS.labels(stage=stage).observe(seconds))

    def batch(self, size: int) -> None:
        self._safe(lambda m: m.BATCH_SIZE.labels(stage="cloud").observe(size))

    def result(self, capture_end_ns: int) -> None:
        seconds = max(0.0, (time.time_ns() - capture_end_ns) / 1e9)

        def update(m: Any) -> None:
            m.RESULTS.labels(decided_by="cloud").inc()
            m.END_TO_END.labels(path="cloud").observe(seconds)

        self._safe(update)

    def dead_letter(self, reason: str) -> None:
        self._safe(lambda m: m.DEAD_LETTERS.labels(reason=reason).inc())

    def late(self) -> None:
        self._safe(lambda m: m.LATE_CLOUD_RESULTS.inc())

    def audit(self, agree: bool) -> None:
        self._safe(lambda m: m.AUDIT_AGREEMENT.labels(agree=str(agree).lower()).inc())


class RedisPendingRemover:
    """`PendingRemover` on `streams.events.state.PendingOffloads` over an asyncio Redis client."""

    def __init__(self, settings: Settings) -> None:
        from redis.asyncio import Redis

        from streams.events.state import PendingOffloads

        self._redis = Redis.from_url(settings.redis_url.get_secret_value())
        self._pending = PendingOffloads(self._redis, prefix=settings.redis_prefix)

    async def remove_many(self, keys: Sequence[tuple[str, int]]) -> None:
        await self._pending.remove_many(keys)  # one atomic Lua call for the whole batch

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()


def build_pending(settings: Settings) -> PendingRemover:
    """The Redis-backed pending-offload store (connects lazily, on first use)."""
    return RedisPendingRemover(settings)


class _BatchGuard:
    """aiokafka rebalance listener: hand partitions over only between batches."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock = lock

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self._lock:  # waits for the batch in flight and its commit
            log.info("partitions_revoked", extra={"partitions": sorted(str(tp) for tp in revoked)})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions_assigned", extra={"partitions": sorted(str(tp) for tp in assigned)})


def batch_guard_listener(lock: asyncio.Lock) -> Any:
    from aiokafka.abc import ConsumerRebalanceListener

    class Listener(_BatchGuard, ConsumerRebalanceListener):  # type: ignore[misc]
        pass

    return Listener(lock)


async def next_batch(consumer: Any, max_records: int, wait_s: float) -> list[Any]:
    """Up to `max_records` records: wait for the first, then at most `wait_s` for more."""
    first = await consumer.getmany(timeout_ms=int(POLL_TIMEOUT_S * 1000), max_records=max_records)
    records = [r for recs in first.values() for r in recs]
    if not records:
        return []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while len(records) < max_records:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        more = await consumer.getmany(
            timeout_ms=max(1, int(remaining * 1000)), max_records=max_records - len(records)
        )
        records += [r for recs in more.values() for r in recs]
    return records


def commit_offsets(records: Sequence[Any]) -> dict[Any, int]:
    from aiokafka.structs import TopicPartition

    offsets: dict[Any, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
    return offsets
