"""Demo matching and summary on hand-built cases (pure, no network)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streams.devtools.report import (
    PublishedWindow,
    ReceivedAlert,
    SeenResult,
    StagedFall,
    WindowGeometry,
    build_summary,
    format_alert_line,
    format_summary,
    match_alerts,
    percentile,
)

GEO = WindowGeometry(window_s=2.0, stride_s=1.0)


def fall(stream: str, index: int, start: float, end: float) -> StagedFall:
    return StagedFall(stream_id=stream, index=index, start_s=start, end_s=end)


def alert(
    stream: str,
    seq: int,
    *,
    ce_id: str | None = None,
    state: str = "detected",
    received_ns: int = 0,
) -> ReceivedAlert:
    return ReceivedAlert(
        cloudevent_id=ce_id or f"{stream}-{seq}-{state}",
        event_id=f"ev-{stream}-{seq}",
        stream_id=stream,
        state=state,
        first_window_seq=seq,
        decided_by="edge",
        confidence=0.9,
        received_ns=received_ns,
    )


def test_alert_whose_window_overlaps_the_fall_matches_it() -> None:
    # Fall descent 10.2..11.0 s; window 10 covers 10..12 s.
    report = match_alerts([fall("cam0", 0, 10.2, 11.0)], [alert("cam0", 10)], GEO)
    assert report.falls_detected == 1
    assert report.false_alerts == []
    assert report.duplicate_alerts == 0


@pytest.mark.parametrize(("seq", "matched"), [(6, False), (7, True), (12, True), (13, False)])
def test_tolerance_is_two_windows_each_side(seq: int, matched: bool) -> None:
    # Descent 10.2..11.0: windows 9 and 10 overlap it, so 7..12 match with +-2 windows.
    report = match_alerts([fall("cam0", 0, 10.2, 11.0)], [alert("cam0", seq)], GEO)
    assert (report.falls_detected == 1) is matched
    assert (len(report.false_alerts) == 1) is (not matched)


def test_alert_on_another_stream_is_false() -> None:
    report = match_alerts([fall("cam0", 0, 10.2, 11.0)], [alert("cam1", 10)], GEO)
    assert report.falls_detected == 0
    assert [a.stream_id for a in report.false_alerts] == ["cam1"]


def test_two_alerts_for_one_fall_count_one_duplicate() -> None:
    report = match_alerts(
        [fall("cam0", 0, 10.2, 11.0)], [alert("cam0", 10), alert("cam0", 11)], GEO
    )
    assert report.falls_detected == 1
    assert report.duplicate_alerts == 1
    assert report.duplicate_ids == 0


def test_same_cloudevent_id_twice_counts_as_duplicate_id_not_extra_alert() -> None:
    a = alert("cam0", 10, ce_id="same", received_ns=1)
    b = alert("cam0", 10, ce_id="same", received_ns=2)
    report = match_alerts([fall("cam0", 0, 10.2, 11.0)], [a, b], GEO)
    assert report.duplicate_ids == 1
    assert report.duplicate_alerts == 0
    assert len(report.detected) == 1


def test_close_falls_each_get_their_own_alert() -> None:
    # Two falls 3 s apart: both alerts are within tolerance of both falls.
    falls = [fall("cam0", 0, 10.2, 11.0), fall("cam0", 1, 13.2, 14.0)]
    report = match_alerts(falls, [alert("cam0", 10), alert("cam0", 13)], GEO)
    assert report.falls_detected == 2
    assert report.duplicate_alerts == 0
    assert [a.first_window_seq for a in report.matches[("cam0", 1)]] == [13]


def test_resolved_alerts_are_not_matched_or_false() -> None:
    report = match_alerts([fall("cam0", 0, 10.2, 11.0)], [alert("cam0", 40, state="resolved")], GEO)
    assert report.falls_detected == 0
    assert report.false_alerts == []


def test_missed_fall_and_no_alerts() -> None:
    report = match_alerts([fall("cam0", 0, 10.2, 11.0)], [], GEO)
    assert report.falls_detected == 0
    assert report.matches == {("cam0", 0): []}


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([float(v) for v in range(1, 101)], 99) == 99.0


def test_from_cloudevent_reads_fields_and_rejects_garbage() -> None:
    doc: dict[str, Any] = {
        "id": "ce-1",
        "subject": "cam0",
        "data": {
            "event_id": "e1",
            "stream_id": "cam0",
            "state": "detected",
            "first_window_seq": 7,
            "decided_by": "cloud",
            "confidence": 0.8,
            "capture_time": "2026-01-01T00:00:01.500000Z",
        },
    }
    parsed = ReceivedAlert.from_cloudevent(doc, received_ns=10)
    assert (parsed.cloudevent_id, parsed.first_window_seq, parsed.decided_by) == (
        "ce-1",
        7,
        "cloud",
    )
    assert (
        parsed.capture_end_ns is not None and parsed.capture_end_ns % 1_000_000_000 == 500_000_000
    )
    with pytest.raises(ValueError):
        ReceivedAlert.from_cloudevent({"id": "x"}, received_ns=0)


def test_summary_counts_latency_results_and_offload_rate() -> None:
    falls = [
        StagedFall("cam0", 0, 2.2, 3.0, window_seqs=(2,), first_window_capture_end_ns=4_000_000_000)
    ]
    windows = [
        PublishedWindow("cam0", s, (s + 2) * 1_000_000_000, (s + 2) * 1_000_000_000 + 40_000_000)
        for s in range(6)
    ]
    alerts = [
        alert("cam0", 2, received_ns=4_250_000_000),
        alert("cam0", 2, received_ns=4_300_000_000),
    ]
    results = [SeenResult("cam0", s, "edge", 0) for s in range(5)]
    results += [SeenResult("cam0", 2, "cloud", 1)]  # conflicts with the edge result for 2
    results += [SeenResult("cam0", 0, "edge", 0)]  # repeated edge result for window 0
    summary = build_summary(
        falls=falls,
        alerts=alerts,
        windows=windows,
        results=results,
        offload_reasons={"uncertain": 3, "audit": 1},
        dead_letters=2,
        geometry=GEO,
    )
    assert summary["falls_detected"] == 1
    assert summary["duplicate_alert_ids"] == 1  # same generated id for the two copies
    assert summary["false_alerts"] == 0
    assert summary["offload_rate"] == pytest.approx(3 / 6)
    assert summary["latency_ms"]["p50"] == pytest.approx(250.0)
    assert summary["gateway_delay_ms"]["p99"] == pytest.approx(40.0)
    assert summary["detection_delay_ms"]["p50"] == pytest.approx(250.0)
    assert summary["results"]["windows_without_result"] == 1  # window 5
    assert summary["results"]["repeated_results"] == 1
    assert summary["results"]["conflicting_results"] == 1
    assert summary["dead_letters"] == 2
    text = format_summary(summary)
    assert "cam0" in text and "offload_rate" in text
    assert "latency=" in format_alert_line(alerts[0], 250.0)


S = 1_000_000_000


def _pinned_summary() -> dict[str, Any]:
    falls = [
        StagedFall("cam0", 0, 2.2, 3.0, window_seqs=(2,), first_window_capture_end_ns=4 * S),
        StagedFall("cam0", 1, 20.2, 21.0),  # missed
        StagedFall("cam1", 0, 5.2, 6.0, window_seqs=(5,), first_window_capture_end_ns=7 * S),
    ]
    windows = [PublishedWindow("cam0", s, (s + 2) * S, (s + 2) * S + 40_000_000) for s in range(6)]
    windows += [
        PublishedWindow("cam1", s, (s + 2) * S, None if s % 2 else (s + 2) * S + 10_000_000)
        for s in range(8)
    ]
    windows += [PublishedWindow("cam2", 0, 2 * S)]
    cloud_alert = alert("cam1", 5, received_ns=7_125_000_000)
    alerts = [
        alert("cam0", 2, received_ns=4_250_000_000),
        alert("cam0", 2, received_ns=4_300_000_000),  # same id: a duplicate id
        alert("cam0", 3, ce_id="cam0-3b", received_ns=5_500_000_000),  # 2nd alert, same fall
        ReceivedAlert(**{**vars(cloud_alert), "decided_by": "cloud"}),
        alert("cam1", 5, state="resolved", received_ns=9 * S),
        alert("cam2", 30, received_ns=40 * S),  # false, on a window never published
    ]
    results = [SeenResult("cam0", s, "edge", 0) for s in range(5)]
    results += [SeenResult("cam0", 2, "cloud", 1), SeenResult("cam0", 0, "edge", 0)]
    results += [SeenResult("cam1", s, "edge-fallback" if s == 3 else "edge", 0) for s in range(8)]
    results += [SeenResult("cam9", 1, "edge", 0)]  # a stream no gateway published
    return build_summary(
        falls=falls,
        alerts=alerts,
        windows=windows,
        results=results,
        offload_reasons={"uncertain": 4, "audit": 1},
        dead_letters=3,
        geometry=GEO,
        tolerance_windows=2,
        malformed_alerts=1,
    )


PINNED_SUMMARY: dict[str, Any] = {
    "windows": 15,
    "offload_rate": 4 / 15,
    "audit_rate": 1 / 15,
    "alerts": 5,
    "alerts_by_state": {"detected": 4, "resolved": 1},
    "falls_staged": 3,
    "falls_detected": 2,
    "false_alerts": 1,
    "duplicate_alerts": 1,
    "duplicate_alert_ids": 1,
    "dead_letters": 3,
    "malformed_alerts": 1,
    "latency_ms": {"p50": 250.0, "p99": 500.0, "n": 3},
    "gateway_delay_ms": {"p50": 40.0, "p99": 40.0},
    "detection_delay_ms": {"p50": 125.0, "max": 250.0},
    "decided_by": {"edge": 14, "cloud": 1, "edge-fallback": 1},
    "fallbacks": 1,
    "results": {
        "windows_with_result": 13,
        "windows_without_result": 2,
        "missing_windows": ["cam0:5", "cam2:0"],
        "repeated_results": 1,
        "conflicting_results": 1,
        "unexpected_results": 1,
    },
    "per_camera": [
        {
            "stream_id": "cam0",
            "windows": 6,
            "falls_staged": 2,
            "falls_detected": 1,
            "false_alerts": 0,
            "alerts": 2,
        },
        {
            "stream_id": "cam1",
            "windows": 8,
            "falls_staged": 1,
            "falls_detected": 1,
            "false_alerts": 0,
            "alerts": 1,
        },
        {
            "stream_id": "cam2",
            "windows": 1,
            "falls_staged": 0,
            "falls_detected": 0,
            "false_alerts": 1,
            "alerts": 1,
        },
    ],
    "matching": {"tolerance_windows": 2, "window_s": 2.0, "stride_s": 1.0},
}


def test_summary_is_pinned_field_for_field_and_in_order() -> None:
    # The demo writes this dict as JSON: same values and the same key order, byte for byte.
    summary = _pinned_summary()
    assert summary == PINNED_SUMMARY
    assert json.dumps(summary) == json.dumps(PINNED_SUMMARY)
    assert format_summary(summary).split("\n")[-4:] == [
        "camera       windows staged detected false",
        "cam0               6      2        1     0",
        "cam1               8      1        1     0",
        "cam2               1      0        0     1",
    ]
