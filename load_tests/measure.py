"""Pure measurement helpers of the benchmark: percentiles, throughput from output times,
metric deltas, process CPU time, load average.

Inputs: plain numbers and records (``load_tests.collector`` types, scraped metric samples).
Outputs: numbers and small dicts, JSON-friendly. No I/O except ``process_cpu_s`` (reads
``/proc/<pid>/stat``) and ``load_average`` (``os.getloadavg``).
Guarantees: empty inputs give ``None`` (never an exception or a fake zero).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence

from load_tests.collector import SeenOffload, SeenResult
from streams.devtools.workers import MetricSamples

__all__ = [
    "as_ms",
    "edge_output_times",
    "load_average",
    "median",
    "metric_delta",
    "percentiles",
    "process_cpu_s",
    "ratio",
    "steady_throughput",
]

_NS = 1e9


def percentiles(values: Sequence[float], qs: Iterable[float] = (50, 95, 99)) -> dict[str, float]:
    """``{"p50": .., "p95": .., "p99": .., "max": .., "n": ..}`` (nearest-rank); {} if empty."""
    if not values:
        return {}
    ordered = sorted(values)
    out: dict[str, float] = {}
    for q in qs:
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        out[f"p{q:g}"] = ordered[rank - 1]
    out["max"] = ordered[-1]
    out["n"] = float(len(ordered))
    return out


def edge_output_times(
    results: Iterable[SeenResult], offloads: Iterable[SeenOffload], prefix: str
) -> dict[tuple[str, int], int]:
    """When the edge worker finished each window of streams starting with ``prefix``:
    the earliest ``produced_at_ns`` of an edge-decided result or ``offloaded_at_ns`` of an
    "uncertain" offload request (every window the edge answered has exactly one of those)."""
    times: dict[tuple[str, int], int] = {}
    for r in results:
        if r.decided_by == "edge" and r.stream_id.startswith(prefix):
            key = (r.stream_id, r.seq)
            times[key] = min(times.get(key, r.produced_at_ns), r.produced_at_ns)
    for o in offloads:
        if o.reason == "uncertain" and o.stream_id.startswith(prefix):
            key = (o.stream_id, o.seq)
            times[key] = min(times.get(key, o.offloaded_at_ns), o.offloaded_at_ns)
    return times


def steady_throughput(times_ns: Iterable[int], producer_done_ns: int) -> dict[str, float] | None:
    """Windows/s the edge sustained on a backlog.

    Counted only over outputs after the producer finished (so the producer's CPU does not
    share the measured interval): ``n_after / (last - start)`` with ``start`` the later of
    the producer's flush and the first output. Falls back to first→last over all outputs
    (``mode`` says which) when fewer than a quarter of them came after the flush.
    """
    ordered = sorted(times_ns)
    if len(ordered) < 2:
        return None
    start = max(producer_done_ns, ordered[0])
    after = [t for t in ordered if t > start]
    if len(after) >= max(2, len(ordered) // 4) and after[-1] > start:
        return {
            "windows_per_s": len(after) / ((after[-1] - start) / _NS),
            "windows": float(len(after)),
            "seconds": (after[-1] - start) / _NS,
            "mode": 1.0,  # after the producer finished
        }
    span = (ordered[-1] - ordered[0]) / _NS
    if span <= 0:
        return None
    return {
        "windows_per_s": (len(ordered) - 1) / span,
        "windows": float(len(ordered)),
        "seconds": span,
        "mode": 0.0,  # first to last output, overlapping the producer
    }


def metric_delta(
    before: MetricSamples, after: MetricSamples, name: str, **labels: str
) -> float | None:
    """``after - before`` of one sample (``None`` when the worker does not expose it)."""
    key = (name, tuple(sorted(labels.items())))
    if key not in after:
        return None
    return after[key] - before.get(key, 0.0)


def process_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of ``pid`` so far (``None`` if it is gone)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    # After the ")" of comm: field 3 is index 0, so utime (14) is 11 and stime (15) is 12.
    return (int(fields[11]) + int(fields[12])) / ticks


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def as_ms(samples_ns: Mapping[object, int] | Sequence[int]) -> list[float]:
    values = samples_ns.values() if isinstance(samples_ns, Mapping) else samples_ns
    return [v / 1e6 for v in values]
