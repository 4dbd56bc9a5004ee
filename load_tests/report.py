"""Text tables of the benchmark report (``load_tests.bench``) against the targets.

The targets are those of docs/ARCHITECTURE.md (and docs/STATUS.md): edge worker CPU per window
against the bare loop's decode + edge + switcher on the same windows, publish -> detected alert
p99 at 80 % of max load on the edge path (the bench's edge-only run, every window answered by
the edge), compute per window against cloud-only. The throughput ratio (pipeline
/ bare loop) is printed beside them for reference, without a goal: on 2 shared cores it
measures the machine as much as the pipeline.

Inputs: the report dict ``run_bench`` returns. Output: a multi-line string; nothing else.
Guarantees: missing numbers print as ``n/a`` and their target as ``NOT MEASURED`` (never as
met); a missed target says by how much; a latency judged on fewer than
``MIN_LATENCY_SAMPLES`` alerts says so beside its verdict.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TARGETS", "edge_path_alerts", "format_report", "latency_headline", "verdicts"]

TARGETS = {
    "edge_cpu_ratio": 1.25,  # edge worker CPU per window / bare decode+edge+switcher, at most
    "alert_p99_ms": 150.0,  # publish -> detected alert seen, at most
    "cost_vs_cloud": 0.20,  # hybrid compute per window / cloud-only, at most
}
#: Fewer samples than this and a latency verdict carries a "few samples" warning; the
#: reference edge-result latency falls back to the edge's output latency (results and
#: offload requests alike).
MIN_LATENCY_SAMPLES = 20


def _f(value: Any, fmt: str = "{:.2f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def _x(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def latency_headline(lat: dict[str, Any]) -> tuple[str, dict[str, float]]:
    """Which latency the target is judged on, and its percentiles."""
    edge_results = lat.get("edge_result_produced_ms") or {}
    if edge_results.get("n", 0) >= MIN_LATENCY_SAMPLES:
        return "publish -> edge result produced", edge_results
    return "publish -> edge output produced (result or offload)", lat.get("edge_output_ms") or {}


def edge_path_alerts(report: dict[str, Any]) -> dict[str, float]:
    """Percentiles of publish -> edge-decided detected alert: from the edge-only run
    (``edge_path``) when there is one, else from the mixed latency run."""
    for key in ("edge_path", "latency"):
        pct = (report.get(key) or {}).get("edge_alert_seen_ms") or {}
        if pct.get("n"):
            return dict(pct)
    return {}


def verdicts(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Rows (what, measured, goal, verdict): the three targets, then the throughput ratio
    and the edge-result latency for reference (goal "-")."""
    cost = report.get("cost", {})
    cpu = cost.get("edge_cpu_ratio")
    proc = cost.get("process_cpu") or {}
    lat = report.get("latency", {})
    alert = edge_path_alerts(report)
    alert_p99, alert_n = alert.get("p99"), int(alert.get("n") or 0)
    few = " (few samples)" if alert_p99 is not None and alert_n < MIN_LATENCY_SAMPLES else ""
    c = cost.get("cost_models")
    thr = report.get("throughput", {})
    label, pct = latency_headline(lat) if lat else ("edge-path latency", {})
    any_alert = lat.get("alert_seen_ms") or {}
    return [
        (
            "edge worker CPU/window vs bare loop",
            f"{_x(cpu)} ({_f(proc.get('edge_worker_cpu_ms_per_window'))} vs "
            f"{_f(cost.get('bare_pipeline_ms'))} ms)",
            f"<= {TARGETS['edge_cpu_ratio']}x",
            _verdict(cpu, TARGETS["edge_cpu_ratio"], higher_is_better=False, unit="x"),
        ),
        (
            "p99 publish -> detected alert (edge-decided) @80%",
            f"{_f(alert_p99, '{:.0f}')} ms (n={alert_n})",
            f"<= {TARGETS['alert_p99_ms']:.0f} ms",
            _verdict(alert_p99, TARGETS["alert_p99_ms"], higher_is_better=False, unit=" ms") + few,
        ),
        (
            "compute/window vs cloud-only",
            f"{_x(c)} (offload share {_f(cost.get('offload_share'))})",
            f"<= {TARGETS['cost_vs_cloud']}x",
            _verdict(c, TARGETS["cost_vs_cloud"], higher_is_better=False, unit="x"),
        ),
        (
            "throughput pipeline / bare (reference)",
            f"{_x(thr.get('ratio'))} ({_f(thr.get('pipeline_median'), '{:.1f}')} vs "
            f"{_f(thr.get('bare_median'), '{:.1f}')} windows/s)",
            "-",
            "-",
        ),
        (
            "p99 publish -> detected alert, any path, mixed run (reference)",
            f"{_f(any_alert.get('p99'), '{:.0f}')} ms (n={int(any_alert.get('n') or 0)})",
            "-",
            "-",
        ),
        (
            f"p99 {label} @80% (reference)",
            f"{_f(pct.get('p99'), '{:.0f}')} ms (n={_f(pct.get('n'), '{:.0f}')})",
            "-",
            "-",
        ),
    ]


def _verdict(value: float | None, target: float, *, higher_is_better: bool, unit: str) -> str:
    if value is None:
        return "NOT MEASURED"
    ok = value >= target if higher_is_better else value <= target
    if ok:
        return "met"
    return f"MISSED by {abs(value - target):.2f}{unit}"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]


def format_report(report: dict[str, Any]) -> str:
    """The whole report: header, the targets' verdicts, then one section per measurement."""
    lines = _header_lines(report)
    lines.append("")
    lines += _table([("target", "measured", "goal", "verdict"), *verdicts(report)])
    if thr := report.get("throughput"):
        lines += _throughput_lines(thr)
    if lat := report.get("latency"):
        lines += _latency_lines(lat, "latency (mixed: switcher on)")
    if edge_path := report.get("edge_path"):
        lines += _latency_lines(edge_path, "edge path only (switcher threshold 1.0)")
    if cost := report.get("cost"):
        lines += _cost_lines(cost)
    lines += [
        "",
        f"worker exit codes {report.get('worker_exit_codes')}; logs {report.get('log_dir')}",
    ]
    return "\n".join(lines)


def _header_lines(report: dict[str, Any]) -> list[str]:
    """Run id, time, machine load and the three model files."""
    lines = [
        f"fallwatch bench ({report['profile']['name']}) run {report.get('run_id')} "
        f"started {report.get('started_utc')}, {report.get('elapsed_s', 0):.0f} s, "
        f"{report.get('cpus')} CPUs, cloud worker {'on' if report.get('cloud_worker') else 'off'}",
        f"load average (1/5/15 min) at start {report.get('load_average_start')}, "
        f"end {report.get('load_average_end')}",
    ]
    models = report.get("models")
    if models:
        lines.append(
            "models: "
            + ", ".join(
                f"{role} {models[role]['name']}@{models[role]['version']} "
                f"sha {models[role]['sha256']} (file {models[role]['mtime_utc']} UTC)"
                for role in ("edge", "switcher", "cloud")
            )
            + f"; switcher distilled from this edge+cloud: {models.get('switcher_pair_matches')}"
        )
    return lines


def _throughput_lines(thr: dict[str, Any]) -> list[str]:
    """One row per bare/pipeline pair, then the medians."""
    rows: list[tuple[str, ...]] = [
        ("rep", "bare", "pipeline", "ratio", "after-flush", "e2e drain", "producer", "load1")
    ]
    for i, (b, p) in enumerate(zip(thr["bare_runs"], thr["pipeline_runs"], strict=True)):
        bare, pipe = b.get("windows_per_s"), p.get("windows_per_s")
        rows.append(
            (
                str(i),
                _f(bare, "{:.1f}") if "error" not in b else "FAILED",
                _f(pipe, "{:.1f}"),
                _f(pipe / bare if pipe and bare else None),
                _f(p.get("after_flush_windows_per_s"), "{:.1f}"),
                _f(p.get("drain_windows_per_s"), "{:.1f}"),
                _f(p.get("producer_rate"), "{:.0f}"),
                _f(p.get("load_average", [None])[0], "{:.1f}"),
            )
        )
    rows.append(
        (
            "median",
            _f(thr.get("bare_median"), "{:.1f}"),
            _f(thr.get("pipeline_median"), "{:.1f}"),
            _f(thr.get("ratio")),
            "",
            _f(thr.get("drain_median"), "{:.1f}"),
            "",
            f"pairs {_f(thr.get('pair_ratio_median'))}",
        )
    )
    return [
        "",
        "throughput runs (alternating bare/pipeline, windows/s; producer = fleet rate):",
        f"  max sustainable rate used for the latency run: "
        f"{_f(thr.get('max_sustainable'), '{:.1f}')} windows/s",
        *("  " + line for line in _table(rows)),
    ]


_LATENCY_ROWS = (
    ("edge_output_ms", "edge output produced (result/offload)"),
    ("edge_result_produced_ms", "edge result produced"),
    ("edge_result_seen_ms", "edge result seen by a consumer"),
    ("final_result_seen_ms", "first final result seen (any path)"),
    ("edge_alert_seen_ms", "detected alert seen (edge-decided)"),
    ("alert_seen_ms", "detected alert seen (any path)"),
)


def _latency_lines(lat: dict[str, Any], title: str) -> list[str]:
    """Percentiles of each latency, then where the edge worker spent its batches."""
    lines = [
        "",
        f"{title} at {_f(lat.get('target_rate'), '{:.1f}')} windows/s target "
        f"(achieved {_f(lat.get('achieved_rate'), '{:.1f}')}, {lat.get('cameras')} cameras, "
        f"producer max lag {_f(lat.get('producer_max_lag_s'), '{:.3f}')} s, "
        f"decided_by {lat.get('decided_by')}):",
    ]
    rows: list[tuple[str, ...]] = [
        ("ms from publish (capture_end) to", "n", "p50", "p95", "p99", "max")
    ]
    for key, label in _LATENCY_ROWS:
        p = lat.get(key) or {}
        rows.append(
            (
                label,
                _f(p.get("n"), "{:.0f}"),
                *(_f(p.get(q), "{:.0f}") for q in ("p50", "p95", "p99", "max")),
            )
        )
    lines += ["  " + line for line in _table(rows)]
    ew = lat.get("edge_worker") or {}
    lines.append(
        f"  edge worker during this run: {_f(ew.get('batches'), '{:.0f}')} batches, mean "
        f"{_f(ew.get('mean_batch'), '{:.1f}')} windows; per batch ms: decode "
        f"{_f(ew.get('decode_ms_per_batch'), '{:.0f}')}, edge "
        f"{_f(ew.get('edge_ms_per_batch'), '{:.1f}')}, switcher "
        f"{_f(ew.get('switcher_ms_per_batch'), '{:.1f}')}, route "
        f"{_f(ew.get('route_ms_per_batch'), '{:.1f}')}, publish (until acked) "
        f"{_f(ew.get('publish_ms_per_batch'), '{:.0f}')}"
    )
    return lines


def _cost_lines(cost: dict[str, Any]) -> list[str]:
    """ms per window by stage, three ways (bare loop, worker counters, process CPU)."""
    m, pipe, proc = cost["model_ms"], cost["pipeline_stage_ms"], cost["process_cpu"]
    rows: list[tuple[str, ...]] = [
        ("ms/window", "decode", "edge", "switcher", "cloud", "hybrid/cloud-only"),
        (
            "bare loop (own process)",
            *(_f(m.get(k)) for k in ("decode", "edge", "switcher", "cloud")),
            f"{_x(cost.get('cost_models'))} (w/ decode {_x(cost.get('cost_models_with_decode'))})",
        ),
        (
            "worker stage counters",
            _f(pipe.get("decode_ms")),
            _f(pipe.get("edge_ms")),
            _f(pipe.get("switcher_ms")),
            _f(pipe.get("cloud_ms")),
            _x(cost.get("cost_pipeline_stages")),
        ),
        (
            "worker process CPU",
            "",
            _f(proc.get("edge_worker_cpu_ms_per_window")),
            "",
            _f(proc.get("cloud_worker_cpu_ms_per_window")),
            _x(cost.get("cost_process_cpu")),
        ),
    ]
    return [
        "",
        f"cost (offload share {_f(cost.get('offload_share'))} = "
        f"{_f(cost.get('offloaded'), '{:.0f}')} uncertain + {_f(cost.get('audited'), '{:.0f}')}"
        f" audit of {_f(cost.get('windows_edge'), '{:.0f}')} windows, edge /metrics):",
        *("  " + line for line in _table(rows)),
        f"  edge worker CPU ms/window: inference thread (decode, models, routing) "
        f"{_f(proc.get('edge_inference_cpu_ms_per_window'))} vs the bare loop's "
        f"{_f(cost.get('bare_pipeline_ms'))}; the rest of the process (Faust, Kafka, Redis, "
        f"events agent) {_f(proc.get('edge_rest_cpu_ms_per_window'))}",
    ]
