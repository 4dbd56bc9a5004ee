"""Benchmark harness: ``python -m load_tests.bench [--quick] [--out out/bench.json]``.

Inputs: the local stack (Kafka 127.0.0.1:19092, Redis 127.0.0.1:16379; ``FALLWATCH_*``
settings), the model files of the settings (the zoo by default).
What it does, in ONE run so every number shares the machine's state (it is shared and
noisy; ratios are what to read):
1. Builds a pool of synthetic windows, encoded once (``load_tests.fleet``).
2. Starts ``fallwatch edge`` and ``fallwatch cloud`` as subprocesses on run-unique topics,
   groups and Redis prefix.
3. Throughput, alternating ``bare, pipeline, bare, pipeline, ...`` (``reps`` each) on the
   same windows: *bare* = ``load_tests.bare`` in its own process with the worker's
   environment (``streams.edge.inference.compute_batch``: Avro + H.264 decode, edge model,
   switcher, routing, snapshots; batches of ``edge_batch_max``); *pipeline* = fleet →
   frames topic → edge worker → results/offload topics: windows / (last edge output - first
   publish), the producer being ~10x faster than the edge (the rate counted only after the
   producer's flush is kept as a cross-check). Medians, printed for reference (no goal: on 2
   shared cores the ratio measures the machine as much as us). The pipeline run also
   measures the end-to-end drain rate (every window finally decided, cloud included).
4. Edge-path latency at 80 % of the max sustainable rate — the median edge throughput, or
   the median end-to-end drain rate when that is lower (with the cloud worker on, a rate
   the cloud cannot follow only builds queues) — for ``latency_s``: gateway
   publish (``capture_end_ns``) → edge output produced (result for confident windows,
   offload request for uncertain ones), → edge result produced / seen by a consumer, →
   final result seen, → detected alert seen. p50/p95/p99 ms. The switcher sends most fall
   windows to the cloud, so this mixed run has few edge-decided alerts; the edge path is
   then measured on its own: the edge worker restarted with the switcher threshold at 1.0
   (every window answered at the edge), the same rate and length. Target: publish →
   detected alert (edge-decided) p99 ≤ 150 ms in that run.
5. Cost vs cloud-only from the pipeline's own counters (``/metrics``: windows routed,
   stage seconds) and the models' ms/window timed by the bare runs in the same run:
   ``(edge + switcher + offload share * cloud) / cloud``; target <= 0.20x. And the edge worker's
   process CPU per window over the bare loop's decode + edge + switcher ms; target <= 1.25x.
Outputs: a table on stdout and ``out/bench.json`` (every raw number, load averages).

Bounded: every loop has a count and a deadline; ``--quick`` takes ~1.5 min, the default ~4.
Failure modes: ``WorkerStartError`` / ``DemoError`` (stack down) exit 1 with the reason;
the workers are stopped (SIGTERM, then SIGKILL) and the run's topics and keys deleted in
every case (``--keep`` keeps the data and logs).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from load_tests.collector import OutputCollector
from load_tests.counters import batch_breakdown, cost_summary
from load_tests.fleet import (
    CameraFleet,
    KafkaFleetSink,
    PlannedWindow,
    WindowPool,
    build_pool,
    frame_record,
)
from load_tests.measure import (
    edge_output_times,
    load_average,
    median,
    percentiles,
    process_cpu_s,
    ratio,
    steady_throughput,
)
from load_tests.report import format_report
from streams.core.settings import Settings
from streams.devtools.workers import (
    REPO_ROOT,
    WorkerProcess,
    cleanup_run,
    isolated_run,
    new_run_id,
    worker_env,
)

__all__ = ["DEFAULT", "QUICK", "BenchProfile", "main", "run_bench"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchProfile:
    """Sizes of one benchmark run."""

    name: str
    scenes: int
    scene_s: float
    reps: int
    windows_per_run: int
    cameras: int
    latency_s: float
    timing_windows: int
    run_timeout_s: float = 90.0
    startup_timeout_s: float = 120.0


QUICK = BenchProfile("quick", 2, 24.0, 2, 96, 8, 15.0, 32)
DEFAULT = BenchProfile("default", 3, 40.0, 4, 240, 16, 45.0, 64)


def _wait_until(pred: Callable[[], bool], timeout_s: float, poll_s: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(poll_s)
    return pred()


def snapshot_models(settings: Settings, into: Path) -> dict[str, str]:
    """Copy the three model files into ``into``; returns FALLWATCH_* variables naming them."""
    import shutil

    into.mkdir(parents=True, exist_ok=True)
    env = {}
    for role, path in (
        ("edge", settings.edge_model_path),
        ("cloud", settings.cloud_model_path),
        ("switcher", settings.switcher_model_path),
    ):
        target = into / f"{role}.onnx"
        shutil.copy2(path, target)  # keeps the mtime: the report shows when each was built
        env[f"FALLWATCH_{role.upper()}_MODEL_PATH"] = str(target)
    return env


def bare_run(
    settings: Settings, planned: list[PlannedWindow], work_dir: Path, extra_env: dict[str, str]
) -> dict[str, Any]:
    """Run ``load_tests.bare`` in a subprocess (same FALLWATCH_* env as the edge worker) over
    the planned windows; returns its JSON report (``error`` set if it failed)."""
    from load_tests.bare import write_records

    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / "bare-records.bin"
    write_records(
        path, (frame_record(p.window, p.stream_id, p.seq, time.time_ns()) for p in planned)
    )
    proc = subprocess.run(
        [sys.executable, "-m", "load_tests.bare", str(path), "--cloud-timing"],
        capture_output=True,
        text=True,
        env={**worker_env(settings, dict(os.environ)), **extra_env},
        cwd=REPO_ROOT,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


class _Bench:
    """One benchmark run's live state (workers, collector, producer)."""

    def __init__(self, base: Settings, profile: BenchProfile, *, cloud: bool, keep: bool) -> None:
        self.profile = profile
        self.run_id = new_run_id("bench")
        self.log_dir = REPO_ROOT / ".stack" / "bench" / self.run_id
        # The zoo may be rebuilt while we run: every process of the run loads one snapshot.
        self.model_env = snapshot_models(base, self.log_dir / "models")
        self.settings = isolated_run(
            base,
            self.run_id,
            **{k.removeprefix("FALLWATCH_").lower(): v for k, v in self.model_env.items()},
        )
        self.use_cloud = cloud
        self.keep = keep
        self.edge = WorkerProcess.for_settings(
            "edge", self.settings, self.log_dir, extra_env=self.model_env
        )
        self.cloud = WorkerProcess.for_settings(
            "cloud", self.settings, self.log_dir, extra_env=self.model_env
        )
        self.collector = OutputCollector(self.settings)
        self.sink: Any = None
        self.pool: WindowPool | None = None
        self.exit_codes: dict[str, int | None] = {}

    def workers(self) -> list[WorkerProcess]:
        return [self.edge, self.cloud] if self.use_cloud else [self.edge]

    def start(self) -> dict[str, float]:
        from streams.devtools.demo import preflight
        from streams.kafka.topics import ensure_topics

        preflight(self.settings)
        ensure_topics(self.settings)
        t0 = time.monotonic()
        for worker in self.workers():
            worker.start()
        p = self.profile
        self.pool = build_pool(scenes=p.scenes, scene_s=p.scene_s, falls_per_scene=2, seed=100)
        for worker in self.workers():
            worker.wait_ready(p.startup_timeout_s)
        ready_s = time.monotonic() - t0
        self.collector.start()
        self.sink = KafkaFleetSink(
            self.settings, self.settings.topic_frames, client_id=f"fallwatch-bench-{self.run_id}"
        )
        return {"workers_ready_s": ready_s, "pool_build_s": self.pool.build_s}

    def stop(self) -> None:
        if self.sink is not None:
            self.sink.close()
        self.collector.stop()
        for worker in self.workers():
            self.exit_codes[worker.role] = worker.stop()
        if not self.keep:
            cleanup_run(self.settings, self.run_id)

    # -- phases ---------------------------------------------------------------------------

    def _decided(self, prefix: str) -> set[tuple[str, int]]:
        return {
            (r.stream_id, r.seq) for r in self.collector.results() if r.stream_id.startswith(prefix)
        }

    def _outputs(self, prefix: str) -> dict[tuple[str, int], int]:
        return edge_output_times(self.collector.results(), self.collector.offloads(), prefix)

    def _drain(self, prefix: str, wanted: set[tuple[str, int]]) -> bool:
        """Every window has a final result and nothing arrived for a second (bounded)."""
        return _wait_until(
            lambda: (
                wanted <= self._decided(prefix) and self.collector.seconds_since_last_record() > 1.0
            ),
            self.profile.run_timeout_s,
            poll_s=0.5,
        )

    def publish(
        self, prefix: str, *, rate: float | None, count: int, cameras: int, seconds: float
    ) -> Any:
        assert self.pool is not None
        fleet = CameraFleet(self.pool, cameras=cameras, stream_prefix=prefix)
        return fleet.run(self.sink, rate=rate, max_windows=count, max_duration_s=seconds)

    def pipeline_run(self, rep: int) -> dict[str, Any]:
        prefix = f"pipe{rep:02d}"
        p = self.profile
        stats = self.publish(
            prefix, rate=None, count=p.windows_per_run, cameras=p.cameras, seconds=60.0
        )
        wanted = {(w.stream_id, w.seq) for w in stats.published}
        complete = _wait_until(
            lambda: wanted <= set(self._outputs(prefix + "-")), p.run_timeout_s, poll_s=0.2
        )
        times = {k: v for k, v in self._outputs(prefix + "-").items() if k in wanted}
        # Headline: whole run, first publish -> last edge output, like the bare loop's
        # first batch -> last batch (conservative: includes Kafka transit of the first batch).
        span_s = (max(times.values()) - stats.started_ns) / 1e9 if times else 0.0
        steady = steady_throughput(times.values(), stats.flushed_ns) or {}
        throughput = {
            "windows_per_s": len(times) / span_s if span_s > 0 else None,
            "seconds": span_s,
            "after_flush_windows_per_s": steady.get("windows_per_s"),
        }
        drained = self._drain(prefix + "-", wanted)
        final: dict[tuple[str, int], int] = {}
        for r in self.collector.results():
            key = (r.stream_id, r.seq)
            if key in wanted:
                final[key] = min(final.get(key, r.received_ns), r.received_ns)
        drain_rate = (
            len(final) / ((max(final.values()) - stats.started_ns) / 1e9)
            if len(final) == len(wanted) and final
            else None
        )
        return {
            **throughput,
            "drain_windows_per_s": drain_rate,
            "published": len(wanted),
            "edge_outputs": len(times),
            "complete": complete,
            "drained": drained,
            "producer_rate": stats.achieved_rate,
            "producer_s": (stats.flushed_ns - stats.started_ns) / 1e9,
        }

    def bare(self, rep: int) -> dict[str, Any]:
        assert self.pool is not None
        p = self.profile
        planned = CameraFleet(self.pool, cameras=p.cameras, stream_prefix=f"bare{rep:02d}").plan(
            p.windows_per_run
        )
        return bare_run(self.settings, planned, self.log_dir, self.model_env)

    def edge_only(self) -> float:
        """Restart the edge worker with the switcher threshold at 1.0: every window takes
        the edge path (no switcher offload; audits still go to the cloud, answered by the
        edge). Returns the seconds until the new worker was ready."""
        self.exit_codes["edge (first)"] = self.edge.stop()
        self.edge = WorkerProcess.for_settings(
            "edge",
            self.settings,
            self.log_dir / "edge-only",
            extra_env={**self.model_env, "FALLWATCH_SWITCHER_THRESHOLD": "1.0"},
        )
        t0 = time.monotonic()
        self.edge.start()
        self.edge.wait_ready(self.profile.startup_timeout_s)
        return time.monotonic() - t0

    def latency(self, rate: float, prefix: str = "lat") -> dict[str, Any]:
        p = self.profile
        cameras = max(p.cameras, math.ceil(rate))  # ~1 window/s per camera, like real ones
        count = max(1, math.ceil(rate * p.latency_s))
        stats = self.publish(
            prefix, rate=rate, count=count, cameras=cameras, seconds=p.latency_s + 10
        )
        wanted = {(w.stream_id, w.seq) for w in stats.published}
        capture = {(w.stream_id, w.seq): w.capture_end_ns for w in stats.published}
        drained = self._drain(prefix + "-", wanted)
        outputs = self._outputs(prefix + "-")
        results = [r for r in self.collector.results() if r.stream_id.startswith(prefix + "-")]
        edge_results = [r for r in results if r.decided_by == "edge"]
        first_seen: dict[tuple[str, int], int] = {}
        for r in results:
            key = (r.stream_id, r.seq)
            first_seen[key] = min(first_seen.get(key, r.received_ns), r.received_ns)
        alerts = [
            a
            for a in self.collector.alerts()
            if a.stream_id.startswith(prefix + "-") and a.state == "detected"
        ]
        alert_ms = [
            (a.received_ns - capture[(a.stream_id, a.first_window_seq)]) / 1e6
            for a in alerts
            if (a.stream_id, a.first_window_seq) in capture
        ]
        edge_alert_ms = [
            (a.received_ns - capture[(a.stream_id, a.first_window_seq)]) / 1e6
            for a in alerts
            if a.decided_by == "edge" and (a.stream_id, a.first_window_seq) in capture
        ]
        return {
            "target_rate": rate,
            "achieved_rate": stats.achieved_rate,
            "producer_max_lag_s": stats.max_lag_s,
            "cameras": cameras,
            "published": len(wanted),
            "drained": drained,
            "decided_by": dict(Counter(r.decided_by for r in results)),
            "edge_output_ms": percentiles(
                [(t - capture[k]) / 1e6 for k, t in outputs.items() if k in capture]
            ),
            "edge_result_produced_ms": percentiles(
                [(r.produced_at_ns - r.capture_end_ns) / 1e6 for r in edge_results]
            ),
            "edge_result_seen_ms": percentiles(
                [(r.received_ns - r.capture_end_ns) / 1e6 for r in edge_results]
            ),
            "final_result_seen_ms": percentiles(
                [(t - capture[k]) / 1e6 for k, t in first_seen.items() if k in capture]
            ),
            "alert_seen_ms": percentiles(alert_ms),
            "edge_alert_seen_ms": percentiles(edge_alert_ms),
        }

    def snapshot_counters(self) -> dict[str, Any]:
        return {
            "edge_metrics": self.edge.metrics(),
            "cloud_metrics": self.cloud.metrics() if self.use_cloud else {},
            "edge_cpu_s": process_cpu_s(self.edge.pid),
            "cloud_cpu_s": process_cpu_s(self.cloud.pid) if self.use_cloud else None,
        }


def model_files(settings: Settings) -> dict[str, Any]:
    """Name, version, sha256 and trained_at of the three model files (metadata only), and
    whether the switcher was distilled from this edge/cloud pair (``fallwatch.pair``)."""
    from models.runtime.metadata import parse_model, read_metadata

    out: dict[str, Any] = {}
    metas = {}
    for role, path in (
        ("edge", settings.edge_model_path),
        ("cloud", settings.cloud_model_path),
        ("switcher", settings.switcher_model_path),
    ):
        meta = read_metadata(parse_model(Path(path).read_bytes()))
        metas[role] = meta
        out[role] = {
            "name": meta.name,
            "version": meta.version,
            "sha256": meta.sha256[:12],
            "path": str(path),
            "mtime_utc": time.strftime("%H:%M:%S", time.gmtime(Path(path).stat().st_mtime)),
        }
    pair = metas["switcher"].extra_json("pair") or {}
    out["switcher_pair_matches"] = (
        pair.get("edge") == metas["edge"].sha256 and pair.get("cloud") == metas["cloud"].sha256
    )
    return out


def run_bench(
    base: Settings, profile: BenchProfile, *, cloud: bool = True, keep: bool = False
) -> dict[str, Any]:
    """Run every benchmark once, side by side; returns the JSON-friendly report."""
    started = time.monotonic()
    report: dict[str, Any] = {
        "profile": asdict(profile),
        "cloud_worker": cloud,
        "load_average_start": load_average(),
        "cpus": os.cpu_count(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    bench = _Bench(base, profile, cloud=cloud, keep=keep)
    report["run_id"] = bench.run_id
    report["log_dir"] = str(bench.log_dir)
    try:
        report["models"] = model_files(bench.settings)
        report["startup"] = bench.start()
        assert bench.pool is not None
        report["pool"] = {
            "windows": len(bench.pool),
            "fall_windows": bench.pool.fall_windows,
            "mean_payload_bytes": round(bench.pool.mean_payload_bytes),
        }
        _warm_up(bench)
        counters_before = bench.snapshot_counters()
        bare_runs, pipe_runs = _alternating_runs(bench, profile.reps)
        counters_after = bench.snapshot_counters()
        report["throughput"] = throughput_summary(bare_runs, pipe_runs, cloud=cloud)
        report["model_ms"] = {
            stage: median([r["stage_ms"][stage] for r in bare_runs if "stage_ms" in r]) or 0.0
            for stage in ("decode", "edge", "switcher", "cloud")
        }
        report["cost"] = cost_summary(counters_before, counters_after, report["model_ms"])
        max_rate = report["throughput"]["max_sustainable"]
        if max_rate:
            report["latency"] = _latency_phase(bench, max_rate)
            # The switcher sends most fall windows to the cloud, so the mixed run above
            # has few edge-decided alerts: the edge path's latency is measured on its own.
            ready_s = bench.edge_only()
            report["edge_path"] = {
                **_latency_phase(bench, max_rate, prefix="edgeonly"),
                "edge_restart_ready_s": ready_s,
            }
    finally:
        bench.stop()
        report["worker_exit_codes"] = bench.exit_codes
        report["load_average_end"] = load_average()
        report["elapsed_s"] = time.monotonic() - started
    return report


def _warm_up(bench: _Bench) -> None:
    """First batches pay for connections, allocations and code paths: run them, unmeasured."""
    bench.bare(-1)
    warm = bench.publish("warm", rate=None, count=32, cameras=4, seconds=30.0)
    bench._drain("warm-", {(w.stream_id, w.seq) for w in warm.published})


def _alternating_runs(
    bench: _Bench, reps: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``bare, pipeline, bare, pipeline, ...``, each run with the load average at its end."""
    bare_runs: list[dict[str, Any]] = []
    pipe_runs: list[dict[str, Any]] = []
    for rep in range(reps):
        bare_runs.append({**bench.bare(rep), "load_average": load_average()})
        pipe_runs.append({**bench.pipeline_run(rep), "load_average": load_average()})
        log.info("bench_rep", extra={"rep": rep, "bare": bare_runs[-1], "pipe": pipe_runs[-1]})
    return bare_runs, pipe_runs


def throughput_summary(
    bare_runs: list[dict[str, Any]], pipe_runs: list[dict[str, Any]], *, cloud: bool
) -> dict[str, Any]:
    """Medians and ratios of the alternating runs, and the max sustainable rate: the median
    edge throughput, or the median end-to-end drain rate when the cloud worker is on and
    that is lower (a rate the cloud cannot follow only builds queues). Pure."""
    bare_med = median([r["windows_per_s"] for r in bare_runs if "windows_per_s" in r])
    pipe_med = median([r["windows_per_s"] for r in pipe_runs if r.get("windows_per_s")])
    pair_ratios = [
        p["windows_per_s"] / b["windows_per_s"]
        for b, p in zip(bare_runs, pipe_runs, strict=True)
        if p.get("windows_per_s") and b.get("windows_per_s")
    ]
    drain_med = median(
        [r["drain_windows_per_s"] for r in pipe_runs if r.get("drain_windows_per_s")]
    )
    max_rate = pipe_med
    if cloud and pipe_med and drain_med and drain_med < pipe_med:
        max_rate = drain_med
    return {
        "bare_runs": bare_runs,
        "pipeline_runs": pipe_runs,
        "bare_median": bare_med,
        "pipeline_median": pipe_med,
        "ratio": ratio(pipe_med, bare_med),
        "pair_ratios": pair_ratios,
        "pair_ratio_median": median(pair_ratios),
        "drain_median": drain_med,
        "max_sustainable": max_rate,
    }


def _latency_phase(bench: _Bench, max_rate: float, prefix: str = "lat") -> dict[str, Any]:
    """Latency at 80 % of ``max_rate``, with the edge worker's batch breakdown meanwhile."""
    lat_before = bench.snapshot_counters()
    latency = {**bench.latency(0.8 * max_rate, prefix), "load_average": load_average()}
    latency["edge_worker"] = batch_breakdown(
        lat_before["edge_metrics"], bench.snapshot_counters()["edge_metrics"]
    )
    return latency


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load_tests.bench",
        description="Throughput ratio, edge-path latency at 80%% of max load and cost vs "
        "cloud-only, side by side in one run on the local stack.",
    )
    parser.add_argument("--quick", action="store_true", help="small run (~2 min)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "out" / "bench.json")
    parser.add_argument("--no-cloud", action="store_true", help="run without the cloud worker")
    parser.add_argument("--keep", action="store_true", help="keep the run's topics and keys")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from models.runtime.errors import ModelsError
    from streams.core.errors import FallwatchError

    profile = QUICK if args.quick else DEFAULT
    try:
        report = run_bench(Settings(), profile, cloud=not args.no_cloud, keep=args.keep)
    except (FallwatchError, ModelsError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    print(format_report(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
