"""Pipeline counters → benchmark numbers: cost vs cloud-only and the edge worker's batches.

Inputs: two scrapes of the workers' ``/metrics`` (``streams.devtools.workers.parse_metrics``) and
process CPU seconds, taken before and after a phase, plus the models' ms/window from the
bare runs. Outputs: JSON-friendly dicts (``None`` where a worker did not expose a number).
Formula (the compute target, docs/STATUS.md):
hybrid/cloud-only = (edge + switcher + offload share * cloud) / cloud, offload share =
(uncertain + audit) / windows the edge consumed; edge worker CPU ratio = the edge worker
process's CPU ms per window it consumed / the bare loop's decode + edge + switcher ms per
window (what the framework, Kafka, Redis and the events agent add), split into the inference
thread's CPU (its counter) and the rest of the process. No I/O.
"""

from __future__ import annotations

from typing import Any

from load_tests.measure import metric_delta, ratio

__all__ = ["batch_breakdown", "cost_summary"]


def cost_summary(
    before: dict[str, Any], after: dict[str, Any], model_ms: dict[str, float]
) -> dict[str, Any]:
    """Cost vs cloud-only from counter deltas (pipeline) and in-process model timings."""
    e0, e1 = before["edge_metrics"], after["edge_metrics"]
    c0, c1 = before["cloud_metrics"], after["cloud_metrics"]
    win_edge = metric_delta(e0, e1, "fallwatch_windows_in_total", worker="edge")
    offload = metric_delta(e0, e1, "fallwatch_windows_routed_total", path="offload") or 0.0
    audit = metric_delta(e0, e1, "fallwatch_windows_routed_total", path="audit") or 0.0
    share = ratio(offload + audit, win_edge)
    win_cloud = metric_delta(c0, c1, "fallwatch_windows_in_total", worker="cloud")

    def stage_ms(m0: Any, m1: Any, stage: str, windows: float | None) -> float | None:
        total = metric_delta(m0, m1, "fallwatch_stage_seconds_sum", stage=stage)
        r = ratio(total, windows)
        return None if r is None else 1000 * r

    pipe = {
        "decode_ms": stage_ms(e0, e1, "decode", win_edge),
        "edge_ms": stage_ms(e0, e1, "edge", win_edge),
        "switcher_ms": stage_ms(e0, e1, "switcher", win_edge),
        "cloud_ms": stage_ms(c0, c1, "cloud", win_cloud),
        "cloud_decode_ms": stage_ms(c0, c1, "decode", win_cloud),
    }
    proc = _process_cpu(before, after, win_edge, win_cloud)

    def hybrid(edge: float | None, switcher: float | None, cloud: float | None) -> float | None:
        if edge is None or switcher is None or cloud is None or share is None or not cloud:
            return None
        return (edge + switcher + share * cloud) / cloud

    dec = model_ms["decode"]
    bare_ms = dec + model_ms["edge"] + model_ms["switcher"]
    return {
        "windows_edge": win_edge,
        "windows_cloud": win_cloud,
        "offloaded": offload,
        "audited": audit,
        "offload_share": share,
        "model_ms": model_ms,
        "pipeline_stage_ms": pipe,
        "process_cpu": proc,
        "bare_pipeline_ms": bare_ms,
        "edge_cpu_ratio": ratio(proc["edge_worker_cpu_ms_per_window"], bare_ms),
        "cost_models": hybrid(model_ms["edge"], model_ms["switcher"], model_ms["cloud"]),
        "cost_models_with_decode": hybrid(
            model_ms["edge"] + dec, model_ms["switcher"], model_ms["cloud"] + dec
        ),
        "cost_pipeline_stages": hybrid(pipe["edge_ms"], pipe["switcher_ms"], pipe["cloud_ms"]),
        "cost_process_cpu": hybrid(
            proc["edge_worker_cpu_ms_per_window"], 0.0, proc["cloud_worker_cpu_ms_per_window"]
        ),
    }


def _process_cpu(
    before: dict[str, Any], after: dict[str, Any], win_edge: float | None, win_cloud: float | None
) -> dict[str, float | None]:
    """Process CPU ms per window of each worker; the edge's split into its inference thread
    (the ``fallwatch_inference_cpu_seconds_total`` counter) and the rest of the process."""
    cpu_edge = _delta(before["edge_cpu_s"], after["edge_cpu_s"])
    cpu_inference = metric_delta(
        before["edge_metrics"],
        after["edge_metrics"],
        "fallwatch_inference_cpu_seconds_total",
        worker="edge",
    )
    return {
        "edge_worker_cpu_ms_per_window": _ms_per(cpu_edge, win_edge),
        "edge_inference_cpu_ms_per_window": _ms_per(cpu_inference, win_edge),
        "edge_rest_cpu_ms_per_window": _ms_per(_delta(cpu_inference, cpu_edge), win_edge),
        "cloud_worker_cpu_ms_per_window": _ms_per(
            _delta(before["cloud_cpu_s"], after["cloud_cpu_s"]), win_cloud
        ),
    }


def batch_breakdown(m0: Any, m1: Any) -> dict[str, float | None]:
    """Mean batch size and per-stage seconds of the edge worker between two scrapes."""
    batches = metric_delta(m0, m1, "fallwatch_batch_size_count", stage="edge")
    windows = metric_delta(m0, m1, "fallwatch_batch_size_sum", stage="edge")
    out: dict[str, float | None] = {"batches": batches, "mean_batch": ratio(windows, batches)}
    for stage in ("decode", "edge", "switcher", "route", "publish"):
        total = metric_delta(m0, m1, "fallwatch_stage_seconds_sum", stage=stage)
        per_batch = ratio(total, batches)
        out[f"{stage}_ms_per_batch"] = None if per_batch is None else 1000 * per_batch
    return out


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _ms_per(seconds: float | None, windows: float | None) -> float | None:
    r = ratio(seconds, windows)
    return None if r is None else 1000 * r
