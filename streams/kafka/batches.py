"""aiokafka consumption in batches with explicit commits (the cloud worker's consumer loop).

Outputs:
- `next_batch(consumer, max_records, wait_s)`: up to N records; waits for the first (at most
  `POLL_TIMEOUT_S`), then at most `wait_s` for more.
- `commit_offsets(records)`: the next offset per partition, for `consumer.commit(...)`.
- `batch_guard_listener(lock)`: a rebalance listener that hands partitions over only
  between batches (it waits for the lock the batch in flight holds until its commit).

Guarantees: thin helpers over the caller's consumer; no client is created here.
Failure modes: aiokafka errors propagate to the caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

__all__ = ["POLL_TIMEOUT_S", "batch_guard_listener", "commit_offsets", "next_batch"]

log = logging.getLogger(__name__)

POLL_TIMEOUT_S = 0.5


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
