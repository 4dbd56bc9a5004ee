"""Demo bookkeeping: staged falls vs received alerts, results per window, the summary.

Inputs (all plain values, no Kafka): the staged falls each synthetic camera recorded
(`StagedFall`, from the gateway's ground truth), the alerts received on the alerts topic
(`ReceivedAlert`, parsed from CloudEvents JSON with the time they were received), the
results seen on the results topic (`SeenResult`) and the windows the gateways published
(`PublishedWindow`).

Outputs: `match_alerts` (pure) pairs detected alerts with staged falls; `build_summary`
turns everything into the JSON-friendly summary the demo writes; `format_summary` and
`format_alert_line` render it for a terminal.

Matching rule: a "detected" alert matches a staged fall of the same stream when the
window named by its `first_window_seq` (stream time `[seq*stride, seq*stride + window]`)
overlaps the fall's descent widened by `tolerance_windows * stride` on both sides. An
alert that could match several falls goes to the nearest fall not matched yet.
- `duplicate_alerts`: extra alerts matched to an already-matched fall (distinct ids).
- `duplicate_ids`: the same CloudEvents id received more than once (later copies are
  ignored for everything else).
- `false_alerts`: detected alerts matching no staged fall.
Latency of an alert = received time - capture end of its first fall window (the
pipeline's own latency); `detection_delay` = received time - capture end of the staged
fall's first fall-labelled window (includes the model's own lag).

Failure modes: `ReceivedAlert.from_cloudevent` raises `ValueError` on a document that is
not a fallwatch alert (the demo counts those as malformed and keeps going).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "MatchReport",
    "PublishedWindow",
    "ReceivedAlert",
    "SeenResult",
    "StagedFall",
    "WindowGeometry",
    "build_summary",
    "format_alert_line",
    "format_summary",
    "match_alerts",
    "percentile",
]

_NS = 1_000_000_000


@dataclass(frozen=True)
class WindowGeometry:
    """Where window `seq` lies in stream time (seconds since the stream's first window)."""

    window_s: float = 2.0
    stride_s: float = 1.0

    def interval(self, seq: int) -> tuple[float, float]:
        start = seq * self.stride_s
        return start, start + self.window_s


@dataclass(frozen=True)
class StagedFall:
    """One fall a synthetic camera staged: descent interval in stream time + ground truth."""

    stream_id: str
    index: int
    start_s: float
    end_s: float
    window_seqs: tuple[int, ...] = ()  # windows whose window_label is fall
    first_window_capture_end_ns: int | None = None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> StagedFall:
        return cls(
            stream_id=str(doc["stream_id"]),
            index=int(doc["fall_index"]),
            start_s=float(doc["start_s"]),
            end_s=float(doc["end_s"]),
            window_seqs=tuple(int(s) for s in doc.get("window_seqs", ())),
            first_window_capture_end_ns=(
                int(doc["first_window_capture_end_ns"])
                if doc.get("first_window_capture_end_ns") is not None
                else None
            ),
        )


@dataclass(frozen=True)
class ReceivedAlert:
    """The fields of a fallwatch CloudEvents alert that the demo needs."""

    cloudevent_id: str
    event_id: str
    stream_id: str
    state: str
    first_window_seq: int
    decided_by: str
    confidence: float
    received_ns: int
    capture_end_ns: int | None = None  # of the first fall window (from `capture_time`)

    @classmethod
    def from_cloudevent(cls, doc: Mapping[str, Any], received_ns: int) -> ReceivedAlert:
        """Parse a structured CloudEvents alert; `ValueError` when fields are missing."""
        try:
            data = doc["data"]
            capture_time = data.get("capture_time")
            capture_ns = _rfc3339_to_ns(capture_time) if capture_time else None
            return cls(
                cloudevent_id=str(doc["id"]),
                event_id=str(data["event_id"]),
                stream_id=str(data.get("stream_id") or doc["subject"]),
                state=str(data["state"]),
                first_window_seq=int(data["first_window_seq"]),
                decided_by=str(data.get("decided_by", "?")),
                confidence=float(data.get("confidence", math.nan)),
                received_ns=received_ns,
                capture_end_ns=capture_ns,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a fallwatch alert: {exc!r}") from exc


@dataclass(frozen=True)
class SeenResult:
    """One record seen on the results topic (several may exist per window)."""

    stream_id: str
    window_seq: int
    decided_by: str
    label: int


@dataclass(frozen=True)
class PublishedWindow:
    """One window a gateway published, with its capture end (wall clock, ns)."""

    stream_id: str
    window_seq: int
    capture_end_ns: int
    published_ns: int | None = None  # when the gateway handed it to the producer


@dataclass
class MatchReport:
    """Outcome of `match_alerts`."""

    matches: dict[tuple[str, int], list[ReceivedAlert]] = field(default_factory=dict)
    false_alerts: list[ReceivedAlert] = field(default_factory=list)
    duplicate_ids: int = 0
    detected: list[ReceivedAlert] = field(default_factory=list)  # unique ids, state detected

    @property
    def falls_detected(self) -> int:
        return sum(1 for alerts in self.matches.values() if alerts)

    @property
    def duplicate_alerts(self) -> int:
        return sum(max(0, len(alerts) - 1) for alerts in self.matches.values())


def _rfc3339_to_ns(text: str) -> int:
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(stamp.timestamp() * 1_000_000) * 1000


def _overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def unique_alerts(alerts: Iterable[ReceivedAlert]) -> tuple[list[ReceivedAlert], int]:
    """Drop repeats of a CloudEvents id (keeping the first received); count the repeats."""
    seen: set[str] = set()
    unique: list[ReceivedAlert] = []
    repeats = 0
    for alert in sorted(alerts, key=lambda a: a.received_ns):
        if alert.cloudevent_id in seen:
            repeats += 1
            continue
        seen.add(alert.cloudevent_id)
        unique.append(alert)
    return unique, repeats


def match_alerts(
    falls: Sequence[StagedFall],
    alerts: Iterable[ReceivedAlert],
    geometry: WindowGeometry,
    *,
    tolerance_windows: int = 2,
) -> MatchReport:
    """Pair "detected" alerts with staged falls (rule in the module docstring). Pure."""
    unique, repeats = unique_alerts(alerts)
    report = MatchReport(duplicate_ids=repeats)
    report.matches = {(f.stream_id, f.index): [] for f in falls}
    by_stream: dict[str, list[StagedFall]] = defaultdict(list)
    for fall in falls:
        by_stream[fall.stream_id].append(fall)
    pad = tolerance_windows * geometry.stride_s
    for alert in unique:
        if alert.state != "detected":
            continue
        report.detected.append(alert)
        window = geometry.interval(alert.first_window_seq)
        centre = (window[0] + window[1]) / 2
        candidates = [
            f
            for f in by_stream.get(alert.stream_id, [])
            if _overlaps(window, (f.start_s - pad, f.end_s + pad))
        ]
        if not candidates:
            report.false_alerts.append(alert)
            continue
        # Nearest unmatched fall first, so two close falls each get their own alert.
        candidates.sort(
            key=lambda f: (
                bool(report.matches[(f.stream_id, f.index)]),
                abs((f.start_s + f.end_s) / 2 - centre),
            )
        )
        best = candidates[0]
        report.matches[(best.stream_id, best.index)].append(alert)
    return report


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 100]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _latency_ms(alert: ReceivedAlert, capture_end: Mapping[tuple[str, int], int]) -> float | None:
    end_ns = capture_end.get((alert.stream_id, alert.first_window_seq), alert.capture_end_ns)
    if end_ns is None:
        return None
    return (alert.received_ns - end_ns) / 1e6


def _result_stats(
    windows: Sequence[PublishedWindow], results: Sequence[SeenResult]
) -> dict[str, Any]:
    per_window: dict[tuple[str, int], list[SeenResult]] = defaultdict(list)
    for res in results:
        per_window[(res.stream_id, res.window_seq)].append(res)
    published = {(w.stream_id, w.window_seq) for w in windows}
    missing = sorted(published - per_window.keys())
    repeated = 0
    conflicting = 0
    for key in published & per_window.keys():
        kinds = Counter(r.decided_by for r in per_window[key])
        repeated += sum(n - 1 for n in kinds.values() if n > 1)
        # A window is decided by the edge OR offloaded (cloud / edge-fallback), never both.
        if kinds.get("edge") and (kinds.get("cloud") or kinds.get("edge-fallback")):
            conflicting += 1
    return {
        "windows_with_result": len(published & per_window.keys()),
        "windows_without_result": len(missing),
        "missing_windows": [f"{s}:{q}" for s, q in missing[:20]],
        "repeated_results": repeated,
        "conflicting_results": conflicting,
        "unexpected_results": len(per_window.keys() - published),
    }


def build_summary(
    *,
    falls: Sequence[StagedFall],
    alerts: Sequence[ReceivedAlert],
    windows: Sequence[PublishedWindow],
    results: Sequence[SeenResult],
    offload_reasons: Mapping[str, int],
    dead_letters: int,
    geometry: WindowGeometry,
    tolerance_windows: int = 2,
    malformed_alerts: int = 0,
) -> dict[str, Any]:
    """The demo summary (JSON-friendly). `offload_reasons` counts offload requests by reason."""
    report = match_alerts(falls, alerts, geometry, tolerance_windows=tolerance_windows)
    n_windows = len(windows)
    uncertain = int(offload_reasons.get("uncertain", 0))
    unique, _ = unique_alerts(alerts)
    return {
        "windows": n_windows,
        "offload_rate": (uncertain / n_windows) if n_windows else 0.0,
        "audit_rate": (int(offload_reasons.get("audit", 0)) / n_windows) if n_windows else 0.0,
        "alerts": len(unique),
        "alerts_by_state": dict(Counter(a.state for a in unique)),
        "falls_staged": len(falls),
        "falls_detected": report.falls_detected,
        "false_alerts": len(report.false_alerts),
        "duplicate_alerts": report.duplicate_alerts,
        "duplicate_alert_ids": report.duplicate_ids,
        "dead_letters": dead_letters,
        "malformed_alerts": malformed_alerts,
        **_delay_stats(report, falls, windows),
        "decided_by": dict(Counter(r.decided_by for r in results)),
        "fallbacks": sum(1 for r in results if r.decided_by == "edge-fallback"),
        "results": _result_stats(windows, results),
        "per_camera": _per_camera(report, falls, windows),
        "matching": {"tolerance_windows": tolerance_windows, **vars(geometry)},
    }


def _delay_stats(
    report: MatchReport, falls: Sequence[StagedFall], windows: Sequence[PublishedWindow]
) -> dict[str, dict[str, float | int | None]]:
    """Alert latency, gateway delay and detection delay (definitions in the module docstring)."""
    capture_end = {(w.stream_id, w.window_seq): w.capture_end_ns for w in windows}
    latencies = [v for a in report.detected if (v := _latency_ms(a, capture_end)) is not None]
    delays: list[float] = []
    for fall in falls:
        matched = report.matches[(fall.stream_id, fall.index)]
        if matched and fall.first_window_capture_end_ns is not None:
            delays.append((matched[0].received_ns - fall.first_window_capture_end_ns) / 1e6)
    gateway_ms = [
        (w.published_ns - w.capture_end_ns) / 1e6 for w in windows if w.published_ns is not None
    ]
    return {
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99),
            "n": len(latencies),
        },
        "gateway_delay_ms": {  # capture end -> handed to the producer (encode, framing)
            "p50": percentile(gateway_ms, 50),
            "p99": percentile(gateway_ms, 99),
        },
        "detection_delay_ms": {
            "p50": percentile(delays, 50),
            "max": max(delays) if delays else None,
        },
    }


def _per_camera(
    report: MatchReport, falls: Sequence[StagedFall], windows: Sequence[PublishedWindow]
) -> list[dict[str, Any]]:
    """One row per stream that published a window or staged a fall, sorted by stream id."""
    streams = sorted({w.stream_id for w in windows} | {f.stream_id for f in falls})
    false_by_stream = Counter(a.stream_id for a in report.false_alerts)
    per_camera = []
    for sid in streams:
        cam_falls = [f for f in falls if f.stream_id == sid]
        per_camera.append(
            {
                "stream_id": sid,
                "windows": sum(1 for w in windows if w.stream_id == sid),
                "falls_staged": len(cam_falls),
                "falls_detected": sum(
                    1 for f in cam_falls if report.matches[(f.stream_id, f.index)]
                ),
                "false_alerts": false_by_stream.get(sid, 0),
                "alerts": sum(1 for a in report.detected if a.stream_id == sid),
            }
        )
    return per_camera


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"
    return str(value)


def format_summary(summary: Mapping[str, Any]) -> str:
    """A fixed-width table of the summary for the terminal."""
    lat = summary["latency_ms"]
    gw = summary["gateway_delay_ms"]
    rows = [
        ("windows", summary["windows"]),
        ("offload_rate", summary["offload_rate"]),
        ("falls staged / detected", f"{summary['falls_staged']} / {summary['falls_detected']}"),
        ("alerts (unique ids)", summary["alerts"]),
        ("false alerts", summary["false_alerts"]),
        (
            "duplicate alerts / ids",
            (f"{summary['duplicate_alerts']} / {summary['duplicate_alert_ids']}"),
        ),
        ("dead letters", summary["dead_letters"]),
        ("latency p50 / p99 (ms)", f"{_fmt(lat['p50'])} / {_fmt(lat['p99'])}"),
        ("gateway delay p50 / p99 (ms)", f"{_fmt(gw['p50'])} / {_fmt(gw['p99'])}"),
        ("decided_by", ", ".join(f"{k}={v}" for k, v in sorted(summary["decided_by"].items()))),
        ("fallbacks", summary["fallbacks"]),
        ("windows without result", summary["results"]["windows_without_result"]),
    ]
    width = max(len(name) for name, _ in rows)
    lines = ["== fallwatch demo summary =="]
    lines += [f"{name:<{width}}  {_fmt(value)}" for name, value in rows]
    lines.append("")
    header = f"{'camera':<12} {'windows':>7} {'staged':>6} {'detected':>8} {'false':>5}"
    lines.append(header)
    for cam in summary["per_camera"]:
        lines.append(
            f"{cam['stream_id']:<12} {cam['windows']:>7} {cam['falls_staged']:>6} "
            f"{cam['falls_detected']:>8} {cam['false_alerts']:>5}"
        )
    return "\n".join(lines)


def format_alert_line(alert: ReceivedAlert, latency_ms: float | None) -> str:
    """One terminal line per alert: time, stream, state, decided_by, confidence, latency."""
    when = datetime.fromtimestamp(alert.received_ns / _NS).strftime("%H:%M:%S.%f")[:-3]
    lat = f"{latency_ms:7.0f} ms" if latency_ms is not None else "      - ms"
    return (
        f"{when}  {alert.stream_id:<10} {alert.state:<9} seq={alert.first_window_seq:<5} "
        f"by={alert.decided_by:<13} conf={alert.confidence:.2f}  latency={lat}"
    )
