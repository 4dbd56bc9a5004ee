"""The cloud worker's metric hooks on the shared `fallwatch_*` metrics.

Inputs: events of the cloud worker (windows in, stage timings, batch sizes, results, dead
letters, late answers, audit agreement). Outputs: updates of the metrics defined once in
`streams.core.metrics` (names, labels, buckets live there).

Guarantees: a metric call never raises into the worker (a metrics bug must not stop the
pipeline; failures are logged at DEBUG). No metric is created here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = ["CloudMetrics"]

log = logging.getLogger(__name__)


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
