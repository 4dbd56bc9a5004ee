"""Fallback sweeper: publish the edge's own answer for offloaded windows the cloud missed.

Inputs: due entries of ``PendingOffloads`` (registered by the edge agent before each
"uncertain" offload request, with the encoded edge-fallback ``result``).
Outputs: that stored result on the results topic (key = stream id), then the entry removed.

Guarantees: runs as a Faust timer every ``fallback_poll_s`` in every edge worker;
``PendingOffloads.due`` leases entries atomically (a second worker does not get them while
the lease runs, and a worker dying mid-publish leaves them to be re-offered), and an entry
is removed only after the broker acknowledged the result, so a window is never dropped. A
duplicate publish (lease expiry, replay, cloud answer racing the deadline) is harmless:
the event logic keeps the first final decision per window (a late cloud "fall" still
upgrades an edge-fallback "no_fall").
Dependencies: ``FallbackSweeper`` takes settings, a pending store (``PendingSweep``), the
publisher, the retrier and the metrics (``streams.edge.deps``); the timer builds it from
the started runtime's ``EdgeDeps``.
Failure modes: Redis/Kafka failures past the bounded retries stop the worker (fatal).
Metrics: fallwatch_fallbacks_total, fallwatch_pending_offloads, end-to-end seconds with
path="edge-fallback".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import schemas
from schemas.records import parse_result
from streams.core.errors import DependencyError

if TYPE_CHECKING:
    from streams.core.settings import Settings
    from streams.edge.deps import EdgeDeps, Publisher, Retrier
    from streams.edge.metrics import EdgeMetrics
    from streams.edge.runtime import EdgeRuntime
    from streams.events.state import PendingEntry

__all__ = ["FallbackSweeper", "PendingSweep", "make_fallback_sweeper"]

log = logging.getLogger(__name__)

#: Upper bound of entries handled per tick, so one tick never holds the loop for long.
SWEEP_LIMIT = 256


class PendingSweep(Protocol):
    """What the sweeper needs of ``streams.events.state.PendingOffloads``."""

    async def due(self, now_ns: int | None = None, *, limit: int = ...) -> list[PendingEntry]: ...

    async def remove(self, stream_id: str, seq: int) -> bool: ...

    async def count(self) -> int: ...


class FallbackSweeper:
    """One sweep = lease due entries → publish their fallback results → remove them."""

    def __init__(
        self,
        settings: Settings,
        pending: PendingSweep,
        publisher: Publisher,
        retrier: Retrier,
        metrics: EdgeMetrics,
    ) -> None:
        self.settings = settings
        self.pending = pending
        self.publisher = publisher
        self.retrier = retrier
        self.metrics = metrics

    @classmethod
    def from_deps(cls, deps: EdgeDeps) -> FallbackSweeper:
        """The sweeper of a started edge worker."""
        return cls(deps.settings, deps.state.pending, deps.publisher, deps.retrier, deps.metrics)

    async def sweep_once(self) -> int:
        """Publish every due fallback result; return how many were published."""
        pending, publisher, retrier = self.pending, self.publisher, self.retrier
        now_ns = time.time_ns()
        due = await retrier.with_retries(
            "pending_due", lambda: pending.due(now_ns, limit=SWEEP_LIMIT)
        )
        if not due:
            await self._observe_backlog()
            return 0
        futures: list[Awaitable[Any]] = []
        for entry in due:
            futures.append(
                await publisher.publish(
                    self.settings.topic_results, entry.stream_id.encode(), entry.result_bytes
                )
            )
        await publisher.deliver(futures)
        for entry in due:
            await retrier.with_retries(
                "pending_remove", partial(pending.remove, entry.stream_id, entry.window_seq)
            )
            self.metrics.fallback(_capture_end_ns(entry.result_bytes))
        log.info("fallbacks_published", extra={"count": len(due)})
        await self._observe_backlog()
        return len(due)

    async def _observe_backlog(self) -> None:
        count = await self.retrier.with_retries("pending_count", self.pending.count)
        self.metrics.pending_offloads(count)


def _capture_end_ns(result_bytes: bytes) -> int | None:
    """Capture end of a stored fallback result, for the end-to-end metric (None if unreadable)."""
    try:
        return parse_result(result_bytes).capture_end_ns
    except schemas.SchemaError:
        return None


def make_fallback_sweeper(runtime: EdgeRuntime) -> Callable[[], Awaitable[None]]:
    """The Faust timer function (no arguments) bound to ``runtime``: each tick sweeps with
    the started runtime's dependencies (none before ``start()`` or after a fatal error)."""

    async def fallback_sweeper() -> None:
        if runtime.fatal_error is not None or not runtime.started:
            return
        try:
            await FallbackSweeper.from_deps(runtime.deps).sweep_once()
        except DependencyError as exc:
            await runtime.fatal(exc, where="fallback_sweeper")
        except Exception:  # a timer must keep ticking; the entries stay due and are retried
            log.exception("fallback_sweep_failed")

    return fallback_sweeper
