"""Prometheus metrics of fallwatch: every name, label set and bucket layout, defined once.

Outputs: module-level metric objects on prometheus-client's default registry (served at
/metrics by the health server). Workers update them through their own hook classes
(`streams.edge.metrics`, `streams.cloud.metrics.CloudMetrics`), never from business code.

Guarantees:
- One prefix (`fallwatch_`), base units (`_seconds`), `_total` on counters.
- Bounded label sets: the allowed values are the tuples below (`WORKERS`, `PATHS`, ...);
  `preinitialize()` creates every labelled series at zero so dashboards and rate() see
  them before the first event; `check_label(name, value)` guards dynamic values.
- Histogram buckets sit around the targets: stages 1 ms..1 s, end-to-end around the
  150 ms p99 edge-path target, up to the 5 s cloud deadline and beyond.

Creating the objects registers them once per process (module import is cached); this is
the only import-time work and it opens no connection.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from streams.core.errors import POISON_REASONS

__all__ = [
    "AGREE",
    "ALERTS",
    "ALERT_STATES",
    "AUDIT_AGREEMENT",
    "BATCH_SIZE",
    "BATCH_STAGES",
    "DEAD_LETTERS",
    "DECIDED_BY",
    "END_TO_END",
    "END_TO_END_PATHS",
    "FALLBACKS",
    "LATE_CLOUD_RESULTS",
    "OFFLOAD_RATIO",
    "PATHS",
    "PENDING_OFFLOADS",
    "REDIS_OUTAGES",
    "REDIS_OUTAGE_ACTIVE",
    "RESULTS",
    "STAGES",
    "STAGE_SECONDS",
    "WINDOWS_IN",
    "WINDOWS_ROUTED",
    "WORKERS",
    "check_label",
    "preinitialize",
]

WORKERS: tuple[str, ...] = ("edge", "cloud")
PATHS: tuple[str, ...] = ("edge", "offload", "audit")
DECIDED_BY: tuple[str, ...] = ("edge", "cloud", "edge-fallback")
STAGES: tuple[str, ...] = ("decode", "edge", "switcher", "route", "cloud", "publish")
BATCH_STAGES: tuple[str, ...] = ("edge", "cloud")
END_TO_END_PATHS: tuple[str, ...] = ("edge", "cloud", "edge-fallback", "alert")
ALERT_STATES: tuple[str, ...] = ("detected", "resolved")
AGREE: tuple[str, ...] = ("true", "false")

STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
END_TO_END_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

WINDOWS_IN = Counter("fallwatch_windows_in_total", "Frame windows consumed, by worker.", ["worker"])
WINDOWS_ROUTED = Counter(
    "fallwatch_windows_routed_total",
    "Windows routed by the edge: decided at the edge, offloaded (uncertain) or audited.",
    ["path"],
)
RESULTS = Counter("fallwatch_results_total", "Results published, by who decided.", ["decided_by"])
OFFLOAD_RATIO = Gauge(
    "fallwatch_offload_ratio", "Share of recent windows offloaded to the cloud (rolling)."
)
BATCH_SIZE = Histogram(
    "fallwatch_batch_size", "Windows per inference batch.", ["stage"], buckets=BATCH_BUCKETS
)
STAGE_SECONDS = Histogram(
    "fallwatch_stage_seconds",
    "Time per batch in one pipeline stage.",
    ["stage"],
    buckets=STAGE_BUCKETS,
)
END_TO_END = Histogram(
    "fallwatch_end_to_end_seconds",
    "Window capture end to result (edge, cloud, edge-fallback) or to alert.",
    ["path"],
    buckets=END_TO_END_BUCKETS,
)
ALERTS = Counter("fallwatch_alerts_total", "Alerts published, by state.", ["state"])
DEAD_LETTERS = Counter(
    "fallwatch_dead_letters_total", "Messages sent to the dead-letter topic.", ["reason"]
)
FALLBACKS = Counter(
    "fallwatch_fallbacks_total", "Offloaded windows decided by the edge after the deadline."
)
LATE_CLOUD_RESULTS = Counter(
    "fallwatch_late_cloud_results_total", "Cloud results that arrived after the deadline."
)
PENDING_OFFLOADS = Gauge(
    "fallwatch_pending_offloads", "Offloaded windows waiting for the cloud (or the fallback)."
)
AUDIT_AGREEMENT = Counter(
    "fallwatch_audit_agreement_total",
    "Audited windows where the cloud agreed (true) or not (false) with the edge.",
    ["agree"],
)
INFERENCE_CPU = Counter(
    "fallwatch_inference_cpu_seconds_total",
    "CPU seconds of the inference thread (decode, models, routing); the edge worker counts "
    "it, and the rest of its process CPU is the framework, Kafka, Redis and the events agent.",
    ["worker"],
)
REDIS_OUTAGE_ACTIVE = Gauge(
    "fallwatch_redis_outage_active",
    "1 while the worker holds its work through a Redis outage, else 0.",
    ["worker"],
)
REDIS_OUTAGES = Counter(
    "fallwatch_redis_outages_total", "Redis outages the worker rode out (or is in).", ["worker"]
)

_ALLOWED: dict[str, tuple[str, ...]] = {
    "worker": WORKERS,
    "path": PATHS,
    "decided_by": DECIDED_BY,
    "stage": STAGES,
    "batch_stage": BATCH_STAGES,
    "end_to_end_path": END_TO_END_PATHS,
    "state": ALERT_STATES,
    "reason": POISON_REASONS,
    "agree": AGREE,
}


def check_label(name: str, value: str) -> str:
    """Return `value` if it is an allowed value of label set `name`, else raise `ValueError`.

    `name` is one of: worker, path, decided_by, stage, batch_stage, end_to_end_path,
    state, reason, agree.
    """
    allowed = _ALLOWED.get(name)
    if allowed is None:
        raise ValueError(f"unknown label set {name!r}")
    if value not in allowed:
        raise ValueError(f"{value!r} is not an allowed {name} label value {allowed}")
    return value


def preinitialize() -> None:
    """Create every labelled series at zero (call once at worker start-up)."""
    for worker in WORKERS:
        WINDOWS_IN.labels(worker=worker)
        REDIS_OUTAGE_ACTIVE.labels(worker=worker)
        REDIS_OUTAGES.labels(worker=worker)
    INFERENCE_CPU.labels(worker="edge")  # only the edge counts it: no zero series for the cloud
    for path in PATHS:
        WINDOWS_ROUTED.labels(path=path)
    for decided_by in DECIDED_BY:
        RESULTS.labels(decided_by=decided_by)
    for stage in BATCH_STAGES:
        BATCH_SIZE.labels(stage=stage)
    for stage in STAGES:
        STAGE_SECONDS.labels(stage=stage)
    for path in END_TO_END_PATHS:
        END_TO_END.labels(path=path)
    for state in ALERT_STATES:
        ALERTS.labels(state=state)
    for reason in POISON_REASONS:
        DEAD_LETTERS.labels(reason=reason)
    for agree in AGREE:
        AUDIT_AGREEMENT.labels(agree=agree)
