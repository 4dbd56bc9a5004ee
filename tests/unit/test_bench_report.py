"""The benchmark's text report pinned byte for byte on fixed reports (pure, no network).

A change to the layout of ``load_tests.report.format_report`` shows up here as a diff; update
the expected lines only when the change is meant.
"""

from __future__ import annotations

from typing import Any

from load_tests.report import format_report


def full_report() -> dict[str, Any]:
    model = {"name": "m", "version": "1.0", "sha256": "abcdef012345", "mtime_utc": "12:00:00"}
    return {
        "profile": {"name": "quick"},
        "run_id": "r1",
        "started_utc": "2026-12-05T12:00:00Z",
        "elapsed_s": 93.4,
        "cpus": 2,
        "cloud_worker": True,
        "load_average_start": [1.5, 1.2, 1.0],
        "load_average_end": [2.5, 1.7, 1.1],
        "models": {
            "edge": {**model, "name": "edge"},
            "switcher": {**model, "name": "switcher"},
            "cloud": {**model, "name": "cloud"},
            "switcher_pair_matches": True,
        },
        "throughput": {
            "bare_runs": [{"windows_per_s": 100.0}, {"error": "boom"}],
            "pipeline_runs": [
                {
                    "windows_per_s": 90.0,
                    "after_flush_windows_per_s": 88.5,
                    "drain_windows_per_s": 60.0,
                    "producer_rate": 1000.0,
                    "load_average": [1.9, 1.0, 1.0],
                },
                {"windows_per_s": 80.0},
            ],
            "bare_median": 100.0,
            "pipeline_median": 85.0,
            "ratio": 0.85,
            "pair_ratio_median": 0.9,
            "drain_median": 60.0,
            "max_sustainable": 60.0,
        },
        "latency": {
            "target_rate": 48.0,
            "achieved_rate": 47.9,
            "cameras": 8,
            "producer_max_lag_s": 0.0125,
            "decided_by": {"edge": 40, "cloud": 8},
            "edge_output_ms": {"n": 48, "p50": 20.0, "p95": 60.0, "p99": 140.0, "max": 200.0},
            "edge_result_produced_ms": {
                "n": 10,
                "p50": 21.0,
                "p95": 61.0,
                "p99": 141.0,
                "max": 201.0,
            },
            "alert_seen_ms": {"n": 2, "p50": 300.0, "p95": 400.0, "p99": 400.0, "max": 400.0},
            "edge_alert_seen_ms": {"n": 3, "p50": 90.0, "p95": 160.0, "p99": 170.0, "max": 170.0},
            "edge_worker": {
                "batches": 12,
                "mean_batch": 4.0,
                "decode_ms_per_batch": 30.0,
                "edge_ms_per_batch": 5.5,
                "switcher_ms_per_batch": 1.25,
                "publish_ms_per_batch": 9.0,
            },
        },
        "edge_path": {
            "target_rate": 48.0,
            "achieved_rate": 47.5,
            "cameras": 8,
            "producer_max_lag_s": 0.02,
            "decided_by": {"edge": 48},
            "edge_result_produced_ms": {
                "n": 48,
                "p50": 15.0,
                "p95": 40.0,
                "p99": 90.0,
                "max": 95.0,
            },
            "alert_seen_ms": {"n": 24, "p50": 60.0, "p95": 110.0, "p99": 130.0, "max": 131.0},
            "edge_alert_seen_ms": {"n": 24, "p50": 60.0, "p95": 110.0, "p99": 130.0, "max": 131.0},
        },
        "cost": {
            "cost_models": 0.4,
            "bare_pipeline_ms": 7.2,
            "edge_cpu_ratio": 12.0 / 7.2,
            "cost_models_with_decode": 0.6,
            "cost_pipeline_stages": 0.35,
            "cost_process_cpu": None,
            "offload_share": 0.2,
            "offloaded": 8,
            "audited": 2,
            "windows_edge": 48,
            "model_ms": {"decode": 6.0, "edge": 1.0, "switcher": 0.2, "cloud": 10.0},
            "pipeline_stage_ms": {
                "decode_ms": 6.5,
                "edge_ms": 1.1,
                "switcher_ms": None,
                "cloud_ms": 9.0,
            },
            "process_cpu": {
                "edge_worker_cpu_ms_per_window": 12.0,
                "edge_inference_cpu_ms_per_window": 7.5,
                "edge_rest_cpu_ms_per_window": 4.5,
            },
        },
        "worker_exit_codes": {"edge": 0, "cloud": -15},
        "log_dir": "/tmp/logs",
    }


FULL_EXPECTED = [
    "fallwatch bench (quick) run r1 started 2026-12-05T12:00:00Z, 93 s, 2 CPUs, cloud worker on",
    "load average (1/5/15 min) at start [1.5, 1.2, 1.0], end [2.5, 1.7, 1.1]",
    "models: edge edge@1.0 sha abcdef012345 (file 12:00:00 UTC), switcher switcher@1.0 sha abcdef012345 (file 12:00:00 UTC), cloud cloud@1.0 sha abcdef012345 (file 12:00:00 UTC); switcher distilled from this edge+cloud: True",
    "",
    "target                                                                    measured                         goal       verdict        ",
    "edge worker CPU/window vs bare loop                                       1.67x (12.00 vs 7.20 ms)         <= 1.25x   MISSED by 0.42x",
    "p99 publish -> detected alert (edge-decided) @80%                         130 ms (n=24)                    <= 150 ms  met            ",
    "compute/window vs cloud-only                                              0.40x (offload share 0.20)       <= 0.2x    MISSED by 0.20x",
    "throughput pipeline / bare (reference)                                    0.85x (85.0 vs 100.0 windows/s)  -          -              ",
    "p99 publish -> detected alert, any path, mixed run (reference)            400 ms (n=2)                     -          -              ",
    "p99 publish -> edge output produced (result or offload) @80% (reference)  140 ms (n=48)                    -          -              ",
    "",
    "throughput runs (alternating bare/pipeline, windows/s; producer = fleet rate):",
    "  max sustainable rate used for the latency run: 60.0 windows/s",
    "  rep     bare    pipeline  ratio  after-flush  e2e drain  producer  load1     ",
    "  0       100.0   90.0      0.90   88.5         60.0       1000      1.9       ",
    "  1       FAILED  80.0      n/a    n/a          n/a        n/a       n/a       ",
    "  median  100.0   85.0      0.85                60.0                 pairs 0.90",
    "",
    "latency (mixed: switcher on) at 48.0 windows/s target (achieved 47.9, 8 cameras, producer max lag 0.013 s, decided_by {'edge': 40, 'cloud': 8}):",
    "  ms from publish (capture_end) to       n    p50  p95  p99  max",
    "  edge output produced (result/offload)  48   20   60   140  200",
    "  edge result produced                   10   21   61   141  201",
    "  edge result seen by a consumer         n/a  n/a  n/a  n/a  n/a",
    "  first final result seen (any path)     n/a  n/a  n/a  n/a  n/a",
    "  detected alert seen (edge-decided)     3    90   160  170  170",
    "  detected alert seen (any path)         2    300  400  400  400",
    "  edge worker during this run: 12 batches, mean 4.0 windows; per batch ms: decode 30, edge 5.5, switcher 1.2, route n/a, publish (until acked) 9",
    "",
    "edge path only (switcher threshold 1.0) at 48.0 windows/s target (achieved 47.5, 8 cameras, producer max lag 0.020 s, decided_by {'edge': 48}):",
    "  ms from publish (capture_end) to       n    p50  p95  p99  max",
    "  edge output produced (result/offload)  n/a  n/a  n/a  n/a  n/a",
    "  edge result produced                   48   15   40   90   95 ",
    "  edge result seen by a consumer         n/a  n/a  n/a  n/a  n/a",
    "  first final result seen (any path)     n/a  n/a  n/a  n/a  n/a",
    "  detected alert seen (edge-decided)     24   60   110  130  131",
    "  detected alert seen (any path)         24   60   110  130  131",
    "  edge worker during this run: n/a batches, mean n/a windows; per batch ms: decode n/a, edge n/a, switcher n/a, route n/a, publish (until acked) n/a",
    "",
    "cost (offload share 0.20 = 8 uncertain + 2 audit of 48 windows, edge /metrics):",
    "  ms/window                decode  edge   switcher  cloud  hybrid/cloud-only      ",
    "  bare loop (own process)  6.00    1.00   0.20      10.00  0.40x (w/ decode 0.60x)",
    "  worker stage counters    6.50    1.10   n/a       9.00   0.35x                  ",
    "  worker process CPU               12.00            n/a    n/a                    ",
    "  edge worker CPU ms/window: inference thread (decode, models, routing) 7.50 vs the bare loop's 7.20; the rest of the process (Faust, Kafka, Redis, events agent) 4.50",
    "",
    "worker exit codes {'edge': 0, 'cloud': -15}; logs /tmp/logs",
]

EMPTY_EXPECTED = [
    "fallwatch bench (quick) run None started None, 0 s, None CPUs, cloud worker off",
    "load average (1/5/15 min) at start None, end None",
    "",
    "target                                                          measured                    goal       verdict     ",
    "edge worker CPU/window vs bare loop                             n/a (n/a vs n/a ms)         <= 1.25x   NOT MEASURED",
    "p99 publish -> detected alert (edge-decided) @80%               n/a ms (n=0)                <= 150 ms  NOT MEASURED",
    "compute/window vs cloud-only                                    n/a (offload share n/a)     <= 0.2x    NOT MEASURED",
    "throughput pipeline / bare (reference)                          n/a (n/a vs n/a windows/s)  -          -           ",
    "p99 publish -> detected alert, any path, mixed run (reference)  n/a ms (n=0)                -          -           ",
    "p99 edge-path latency @80% (reference)                          n/a ms (n=n/a)              -          -           ",
    "",
    "worker exit codes None; logs None",
]


def test_format_report_of_a_full_run_is_pinned() -> None:
    assert format_report(full_report()).split("\n") == FULL_EXPECTED


def test_format_report_of_a_run_that_measured_nothing_is_pinned() -> None:
    assert format_report({"profile": {"name": "quick"}}).split("\n") == EMPTY_EXPECTED
