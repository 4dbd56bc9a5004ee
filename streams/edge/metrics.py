"""The edge worker's metric hooks, kept out of the agents' business code.

Inputs: what the edge agent, events agent and sweeper observed (batch outcomes, results,
alerts, dead letters, fallbacks). Outputs: updates of the shared ``fallwatch_*`` metrics
defined once in ``streams.core.metrics`` (names, labels and buckets live there).

Guarantees: label values are bounded (paths, stages, decided_by, states, poison reasons);
a metric call never raises into the caller (a metrics bug must not stop the pipeline).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.edge.inference import BatchOutcome

__all__ = ["EdgeMetrics"]

log = logging.getLogger(__name__)

_NS = 1e9
#: Windows remembered for the rolling offload ratio.
_RATIO_WINDOW = 1000


class EdgeMetrics:
    """Updates ``streams.core.metrics`` from the edge worker's events."""

    def __init__(self) -> None:
        self._recent_offloads: deque[bool] = deque(maxlen=_RATIO_WINDOW)

    @staticmethod
    def _m() -> Any:
        import streams.core.metrics as metrics

        return metrics

    def preinitialize(self) -> None:
        """Create every labelled series at zero, so dashboards see them before traffic."""
        try:
            self._m().preinitialize()
        except Exception:
            log.debug("metrics_update_failed", exc_info=True)

    def stage(self, stage: str, seconds: float) -> None:
        """One batch's seconds in one stage (``fallwatch_stage_seconds{stage}``)."""
        try:
            self._m().STAGE_SECONDS.labels(stage=stage).observe(seconds)
        except Exception:
            log.debug("metrics_update_failed", exc_info=True)

    def edge_batch(self, outcome: BatchOutcome, *, size: int, publish_s: float) -> None:
        """A batch done: windows in, batch size, the seconds of each stage (decode; edge,
        switcher and route when a window decoded; publish = queueing until the broker
        acknowledged), windows routed by path, edge results and their end-to-end time."""
        self.stage("decode", outcome.decode_s)
        if outcome.routed:
            self.stage("edge", outcome.edge_s)
            self.stage("switcher", outcome.switcher_s)
            self.stage("route", outcome.route_s)
        self.stage("publish", publish_s)
        try:
            m = self._m()
            m.WINDOWS_IN.labels(worker="edge").inc(size)
            m.INFERENCE_CPU.labels(worker="edge").inc(outcome.cpu_s)
            m.BATCH_SIZE.labels(stage="edge").observe(size)
            for window in outcome.routed:
                for path in window.decision.metric_paths:
                    m.WINDOWS_ROUTED.labels(path=path).inc()
                offloaded = window.decision.path == "offload"
                self._recent_offloads.append(offloaded)
                if not offloaded:
                    m.RESULTS.labels(decided_by="edge").inc()
                    self._end_to_end("edge", window.window.capture_end_ns)
            if self._recent_offloads:
                m.OFFLOAD_RATIO.set(sum(self._recent_offloads) / len(self._recent_offloads))
        except Exception:  # metrics must never break processing
            log.debug("metrics_update_failed", exc_info=True)

    def fallback(self, capture_end_ns: int | None) -> None:
        try:
            m = self._m()
            m.FALLBACKS.inc()
            m.RESULTS.labels(decided_by="edge-fallback").inc()
        except Exception:
            log.debug("metrics_update_failed", exc_info=True)
        if capture_end_ns is not None:
            self._end_to_end("edge-fallback", capture_end_ns)

    def pending_offloads(self, count: int) -> None:
        try:
            self._m().PENDING_OFFLOADS.set(count)
        except Exception:
            log.debug("metrics_update_failed", exc_info=True)

    def alert(self, state: str, capture_end_ns: int | None) -> None:
        try:
            self._m().ALERTS.labels(state=state).inc()
        except Exception:
            log.debug("metrics_update_failed", exc_info=True)
        if capture_end_ns is not None and state == "detected":
            self._end_to_end("alert", capture_end_ns)

    def late_cloud_result(self) -> None:
        try:
            self._m().LATE_CLOUD_RESULTS.inc()
        except Exception:
            log.debug("metrics_update_failed", exc_info=True)

    def dead_letter(self, reason: str) -> None:
        try:
            self._m().DEAD_LETTERS.labels(reason=reason).inc()
        except Exception:
            log.debug("metrics_update_failed", exc_info=True)

    def _end_to_end(self, path: str, capture_end_ns: int) -> None:
        try:
            seconds = max(0.0, (time.time_ns() - capture_end_ns) / _NS)
            self._m().END_TO_END.labels(path=path).observe(seconds)
        except Exception:
            log.debug("metrics_update_failed", exc_info=True)
