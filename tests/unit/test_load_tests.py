"""Unit tests of the pure parts of load_tests/: the alert audit of the kill -9 experiment,
the fleet's publish order and records, and the benchmark's measurement helpers."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

import schemas
from load_tests.bare import read_records, write_records
from load_tests.chaos import audit_alerts
from load_tests.collector import SeenAlert, SeenOffload, SeenResult
from load_tests.counters import cost_summary
from load_tests.fleet import CameraFleet, EncodedWindow, WindowPool, frame_record
from load_tests.measure import edge_output_times, percentiles, steady_throughput
from load_tests.report import verdicts


def _alert(
    stream: str, event: str, state: str, first: int, last: int, *, extra: str = ""
) -> SeenAlert:
    doc = {
        "id": f"{stream}:{event}:{state}",
        "type": f"io.fallwatch.fall.{state}",
        "extra": extra,
        "data": {
            "stream_id": stream,
            "event_id": event,
            "state": state,
            "decided_by": "edge",
            "first_window_seq": first,
            "last_window_seq": last,
        },
    }
    return SeenAlert.parse(json.dumps(doc).encode(), 0)


def test_audit_accepts_byte_identical_republish_and_separate_episodes() -> None:
    alerts = [
        _alert("a", "g-1", "detected", 10, 10),
        _alert("a", "g-1", "detected", 10, 10),  # republished from the outbox
        _alert("a", "g-1", "resolved", 10, 12),
        _alert("a", "g-2", "detected", 30, 30),  # after last 12 + cooldown 10
        _alert("b", "h-1", "detected", 11, 11),
    ]
    audit = audit_alerts(alerts, cooldown_windows=10)
    assert audit.republished == 1
    assert audit.distinct_ids == 4
    assert audit.detected_events == 3
    assert audit.duplicated == 0


def test_audit_flags_same_id_with_different_content() -> None:
    alerts = [
        _alert("a", "g-1", "detected", 10, 10),
        _alert("a", "g-1", "detected", 10, 10, extra="x"),
    ]
    audit = audit_alerts(alerts, cooldown_windows=10)
    assert audit.conflicting_ids == ["a:g-1:detected"]
    assert audit.duplicated == 1


@pytest.mark.parametrize(
    ("second_first", "resolved"),
    [(14, True), (22, True), (40, False)],  # inside the episode, inside cooldown, never resolved
)
def test_audit_flags_two_detected_events_for_one_episode(second_first: int, resolved: bool) -> None:
    alerts = [_alert("a", "g-1", "detected", 10, 10)]
    if resolved:
        alerts.append(_alert("a", "g-1", "resolved", 10, 12))
    alerts.append(_alert("a", "g-2", "detected", second_first, second_first))
    audit = audit_alerts(alerts, cooldown_windows=10)
    assert audit.overlapping_episodes == ["a: g-1 / g-2"]
    assert audit.duplicated == 1


def _pool() -> WindowPool:
    def scene(k: int, n: int) -> tuple[EncodedWindow, ...]:
        return tuple(
            EncodedWindow(bytes([k, i]), 4, 2, 16, 8.0, "h264", 2.0, k, i, i % 2) for i in range(n)
        )

    return WindowPool((scene(0, 5), scene(1, 3)))


def test_fleet_plan_is_round_robin_with_per_camera_seqs() -> None:
    fleet = CameraFleet(_pool(), cameras=3, stream_prefix="t", start_seq=7)
    planned = fleet.plan(7)
    assert [p.stream_id for p in planned] == [
        "t-cam000", "t-cam001", "t-cam002", "t-cam000", "t-cam001", "t-cam002", "t-cam000"
    ]  # fmt: skip
    assert [p.seq for p in planned if p.stream_id == "t-cam000"] == [7, 8, 9]
    # camera 0 replays scene 0 in order; camera 2 shares scene 0 from another offset
    assert [p.window.index for p in planned if p.stream_id == "t-cam000"] == [0, 1, 2]
    assert {p.window.scene for p in planned if p.stream_id == "t-cam001"} == {1}
    assert planned[2].window.index != planned[0].window.index


class _ListSink:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        self.flushed = False

    def publish(self, key: bytes, value: bytes) -> None:
        self.records.append((key, value))

    def flush(self, timeout_s: float) -> None:
        self.flushed = True


def test_fleet_run_is_bounded_and_publishes_decodable_records() -> None:
    sink = _ListSink()
    fleet = CameraFleet(_pool(), cameras=2, stream_prefix="r")
    stats = fleet.run(sink, rate=None, max_windows=6, max_duration_s=10.0)
    assert sink.flushed and len(sink.records) == 6 == len(stats.published)
    key, value = sink.records[3]
    record = schemas.decode("frame_window", value)
    assert key == b"r-cam001" and record["stream_id"] == "r-cam001" and record["window_seq"] == 1
    assert record["capture_end_ns"] - record["capture_start_ns"] == 2_000_000_000
    assert record["capture_end_ns"] == stats.published[3].capture_end_ns
    stop = threading.Event()
    stop.set()
    assert (
        fleet.run(_ListSink(), rate=5.0, max_windows=6, max_duration_s=10.0, stop=stop).published
        == []
    )


def test_frame_record_round_trips() -> None:
    window = _pool().scenes[0][1]
    record = schemas.decode("frame_window", frame_record(window, "s", 42, 5_000_000_000))
    assert record["payload"] == window.payload and record["window_seq"] == 42
    assert (record["width"], record["height"], record["frame_count"]) == (4, 2, 16)


def test_bare_record_file_round_trips(tmp_path: Path) -> None:
    values = [b"", b"abc", bytes(range(256))]
    path = tmp_path / "r.bin"
    assert write_records(path, values) == 3
    assert list(read_records(path)) == values


def test_percentiles_nearest_rank_and_empty() -> None:
    values = [float(v) for v in range(1, 101)]
    p = percentiles(values)
    assert (p["p50"], p["p95"], p["p99"], p["max"], p["n"]) == (50.0, 95.0, 99.0, 100.0, 100.0)
    assert percentiles([]) == {}


def test_steady_throughput_counts_only_after_the_producer_finished() -> None:
    second = 1_000_000_000
    times = [i * second // 10 for i in range(11)]  # 11 outputs over 1 s
    result = steady_throughput(times, producer_done_ns=5 * second // 10)
    assert result is not None and result["mode"] == 1.0
    assert result["windows"] == 5 and result["windows_per_s"] == pytest.approx(10.0)
    fallback = steady_throughput(times, producer_done_ns=second)  # nothing after the flush
    assert fallback is not None and fallback["mode"] == 0.0
    assert fallback["windows_per_s"] == pytest.approx(10.0)
    assert steady_throughput([1], 0) is None


def test_edge_output_times_take_edge_results_and_uncertain_offloads_only() -> None:
    results = [
        SeenResult("p-cam0", 1, "edge", 0, 0, 50, 60),
        SeenResult("p-cam0", 1, "edge", 0, 0, 40, 70),  # replay: earliest wins
        SeenResult("p-cam0", 2, "cloud", 0, 0, 90, 95),
        SeenResult("q-cam0", 1, "edge", 0, 0, 10, 20),
    ]
    offloads = [
        SeenOffload("p-cam0", 2, "uncertain", 0, 30, 35),
        SeenOffload("p-cam0", 3, "audit", 0, 1, 2),
    ]
    assert edge_output_times(results, offloads, "p-") == {("p-cam0", 1): 40, ("p-cam0", 2): 30}


def test_verdicts_judge_the_design_targets_and_never_call_a_missing_number_met() -> None:
    rows = verdicts(
        {"throughput": {"ratio": 0.8}, "cost": {"cost_models": 0.2, "edge_cpu_ratio": 1.3}}
    )
    by_what = {row[0].split(" @")[0]: row[3] for row in rows}
    assert by_what["edge worker CPU/window vs bare loop"] == "MISSED by 0.05x"
    assert by_what["compute/window vs cloud-only"] == "met"
    assert by_what["p99 publish -> detected alert (edge-decided)"] == "NOT MEASURED"
    assert by_what["throughput pipeline / bare (reference)"] == "-"  # no goal: reference only


def _alert_row(report: dict[str, Any]) -> tuple[str, str, str, str]:
    (row,) = [r for r in verdicts(report) if r[0].startswith("p99 publish -> detected alert (")]
    return row


def test_alert_latency_on_few_samples_says_so() -> None:
    lat = {"edge_alert_seen_ms": {"n": 3, "p99": 120.0}}
    assert _alert_row({"latency": lat})[3] == "met (few samples)"


def test_alert_latency_is_judged_on_the_edge_only_run_when_there_is_one() -> None:
    mixed = {"edge_alert_seen_ms": {"n": 3, "p99": 120.0}}
    edge_only = {"edge_alert_seen_ms": {"n": 40, "p99": 180.0}}
    row = _alert_row({"latency": mixed, "edge_path": edge_only})
    assert (row[1], row[3]) == ("180 ms (n=40)", "MISSED by 30.00 ms")
    # An edge-only run without a single alert does not hide the mixed run's samples.
    row = _alert_row({"latency": mixed, "edge_path": {"edge_alert_seen_ms": {"n": 0}}})
    assert row[1] == "120 ms (n=3)"


def test_cost_summary_edge_cpu_ratio_is_worker_cpu_over_bare_decode_edge_switcher() -> None:
    def metrics(windows: float, offload: float, edge_s: float, cpu_s: float) -> dict[str, Any]:
        return {
            ("fallwatch_windows_in_total", (("worker", "edge"),)): windows,
            ("fallwatch_windows_routed_total", (("path", "offload"),)): offload,
            ("fallwatch_stage_seconds_sum", (("stage", "edge"),)): edge_s,
            ("fallwatch_inference_cpu_seconds_total", (("worker", "edge"),)): cpu_s,
        }

    before = {"edge_metrics": metrics(0, 0, 0.0, 1.0), "cloud_metrics": {}, "edge_cpu_s": 10.0,
              "cloud_cpu_s": None}  # fmt: skip
    after = {"edge_metrics": metrics(100, 20, 0.1, 1.7), "cloud_metrics": {}, "edge_cpu_s": 11.2,
             "cloud_cpu_s": None}  # fmt: skip
    model_ms = {"decode": 5.0, "edge": 0.8, "switcher": 0.2, "cloud": 20.0}
    out = cost_summary(before, after, model_ms)
    assert out["bare_pipeline_ms"] == pytest.approx(6.0)
    assert out["process_cpu"]["edge_worker_cpu_ms_per_window"] == pytest.approx(12.0)
    assert out["edge_cpu_ratio"] == pytest.approx(2.0)
    # 12 ms per window: 7 in the inference thread, 5 in the rest of the process.
    assert out["process_cpu"]["edge_inference_cpu_ms_per_window"] == pytest.approx(7.0)
    assert out["process_cpu"]["edge_rest_cpu_ms_per_window"] == pytest.approx(5.0)
    assert out["offload_share"] == pytest.approx(0.2)
    assert out["cost_models"] == pytest.approx((0.8 + 0.2 + 0.2 * 20.0) / 20.0)
