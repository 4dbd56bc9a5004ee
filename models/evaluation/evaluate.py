"""Evaluate every routing policy side by side on a labeled clip folder.

Inputs: a clip folder (`labels.csv`, read with `models.runtime.clips.iter_windows`),
the edge, cloud and switcher ONNX files, an offload rate (default: the
switcher's calibrated target).
Outputs: a printed table and a JSON dict (written with `--json`) with, per
policy (edge_only, cloud_only, confidence, dmd, oracle): precision, recall, f1
(fall class, clip level: a clip is a detected fall when any of its windows'
final decision is fall), window_f1, offload_rate, compute_ms_per_window,
cost_vs_cloud, f1_ci95 (95 % interval from a paired bootstrap over clips); the
paired F1 differences dmd - cloud_only and dmd - confidence with their intervals;
the measured per-window times and what they include; the F1 vs
offload-rate curve; model versions/sha256. Optional PNG plot (matplotlib Agg).
Policies: dmd offloads windows whose switcher score >= the switcher's
threshold for the rate (calibrated on the unlabeled DMD pool, never here);
confidence offloads the same share of windows with the lowest edge confidence;
oracle offloads exactly the windows the edge gets wrong (uses labels: a bound).
Compute: per window at batch 1, onnxruntime 1 thread, measured in this run on
a sample of the folder's windows as thread CPU time (wall time reported too):
edge = preprocess + frame stats + inference;
switcher = features + inference; cloud = preprocess + inference (video
decoding and window cutting excluded: every policy pays them). cost(policy) =
edge_ms [+ switcher_ms for dmd] + offload_rate * cloud_ms; cost_vs_cloud =
cost / cloud_ms.
Failure modes: loading errors from `models.runtime.onnx_models`; `ValueError` for a folder
without windows or a rate outside [0, 1].
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from models.evaluation.metrics import (
    F1Bootstrap,
    PolicyDecision,
    clip_f1_bootstrap,
    clip_level,
    confidence_policy,
    dmd_policy,
    oracle_policy,
    prf,
)
from models.runtime.onnx_models import CloudModel, EdgeModel, Switcher

__all__ = [
    "ComputeTimes",
    "Predictions",
    "collect_predictions",
    "differences_report",
    "evaluate_folder",
    "f1_bootstrap",
    "f1_curve",
    "format_table",
    "measure_compute",
    "plot_curve",
    "policy_decisions",
    "policy_metrics",
]

POLICIES = ("edge_only", "cloud_only", "confidence", "dmd", "oracle")
# The comparisons the targets are about (docs/STATUS.md), as paired F1 differences.
DIFFERENCES = (("dmd", "cloud_only"), ("dmd", "confidence"))
BOOTSTRAP_REPS = 2000
CURVE_RATES = tuple(round(0.05 * i, 2) for i in range(21))


@dataclass
class Predictions:
    """Per-window outputs of all three models plus ground truth."""

    edge_probs: np.ndarray  # [N,2]
    cloud_probs: np.ndarray  # [N,2]
    switcher_score: np.ndarray  # [N]
    y: np.ndarray  # [N] window labels
    clip: np.ndarray  # [N] clip ids
    clip_label: np.ndarray  # [N] label of the window's clip

    @property
    def edge_pred(self) -> np.ndarray:
        out: np.ndarray = self.edge_probs.argmax(1)
        return out

    @property
    def cloud_pred(self) -> np.ndarray:
        out: np.ndarray = self.cloud_probs.argmax(1)
        return out

    @property
    def edge_confidence(self) -> np.ndarray:
        out: np.ndarray = self.edge_probs.max(1)
        return out


@dataclass(frozen=True)
class ComputeTimes:
    """Per-window compute of each stage, ms: thread CPU time (used for costs) and wall time."""

    edge_ms: float
    switcher_ms: float
    cloud_ms: float
    sample_windows: int
    wall_edge_ms: float = float("nan")
    wall_switcher_ms: float = float("nan")
    wall_cloud_ms: float = float("nan")
    included: str = (
        "per window, batch 1, onnxruntime intra-op threads=1 (runs on the calling thread), "
        "same run, each model in its own pass over the windows (as deployed: edge and cloud "
        "on different machines), median over windows of the median of 5 repeats; ms = thread "
        "CPU time (time.thread_time: the compute a window costs; other jobs on the shared "
        "CPU inflate it far less than wall time, though cache contention still does), "
        "wall-clock medians reported alongside; edge = preprocess (frame pick, "
        "resize, grey, scale) + frame stats + inference; switcher = feature assembly + "
        "inference; cloud = preprocess (frame pick, resize, scale) + inference; excluded: "
        "video decode and window cutting (paid by every policy)"
    )


def collect_predictions(
    edge: EdgeModel,
    cloud: CloudModel,
    switcher: Switcher,
    records: Iterable[tuple[int, float, np.ndarray, int | None]],
    clip_labels: Sequence[int],
    *,
    batch_size: int = 16,
    keep_sample: int = 0,
    progress: bool = True,
    total: int | None = None,
) -> tuple[Predictions, list[np.ndarray]]:
    """Run the three models on every window; also keep `keep_sample` windows for timing."""
    e_p, c_p, s_s, ys, clips = [], [], [], [], []
    sample: list[np.ndarray] = []
    buf: list[np.ndarray] = []

    def flush() -> None:
        e_out = edge.predict(buf)
        e_p.append(e_out.probs)
        s_s.append(switcher.score(e_out))
        c_p.append(cloud.predict(buf).probs)
        buf.clear()

    for cid, _start, win, label in tqdm(records, desc="evaluate", unit="win", total=total,
                                        disable=not progress):  # fmt: skip
        buf.append(win)
        ys.append(int(label or 0))
        clips.append(int(cid))
        if len(sample) < keep_sample and len(ys) % 3 == 1:
            sample.append(np.array(win, copy=True))
        if len(buf) >= batch_size:
            flush()
    if buf:
        flush()
    if not ys:
        raise ValueError("no windows to evaluate")
    clip = np.array(clips, dtype=np.int64)
    return (
        Predictions(
            edge_probs=np.concatenate(e_p),
            cloud_probs=np.concatenate(c_p),
            switcher_score=np.concatenate(s_s),
            y=np.array(ys, dtype=np.int64),
            clip=clip,
            clip_label=np.array([int(clip_labels[c]) for c in clip], dtype=np.int64),
        ),
        sample,
    )


def measure_compute(
    edge_path: Path, cloud_path: Path, switcher_path: Path, windows: Sequence[np.ndarray],
    *, repeats: int = 5,
) -> ComputeTimes:  # fmt: skip
    """Per-window cost of each stage at batch 1 (see `ComputeTimes.included`).

    Each stage is timed in its own pass over the windows, as it runs in deployment (the
    edge on the camera box, the cloud elsewhere): interleaving them would bill the edge
    for the cache misses the cloud's big convolutions leave behind.
    """
    edge = EdgeModel.load(edge_path, threads=1)
    cloud = CloudModel.load(cloud_path, threads=1)
    switcher = Switcher.load(switcher_path, threads=1)
    edge_out = [edge.predict([w]) for w in windows]  # the switcher's inputs, untimed
    stages: dict[str, Callable[[int], object]] = {
        "edge": lambda i: edge.predict([windows[i]]),
        "switcher": lambda i: switcher.score(edge_out[i]),
        "cloud": lambda i: cloud.predict([windows[i]]),
    }
    cpu: dict[str, float] = {}
    wall: dict[str, float] = {}
    for name, run in stages.items():
        for i in range(min(3, len(windows))):  # warm caches and allocator pools
            run(i)
        per_cpu, per_wall = [], []
        for i in range(len(windows)):
            runs_cpu, runs_wall = [], []
            for _ in range(repeats):
                c0, t0 = time.thread_time(), time.perf_counter()
                run(i)
                runs_cpu.append(time.thread_time() - c0)
                runs_wall.append(time.perf_counter() - t0)
            per_cpu.append(statistics.median(runs_cpu) * 1000.0)
            per_wall.append(statistics.median(runs_wall) * 1000.0)
        cpu[name], wall[name] = float(np.median(per_cpu)), float(np.median(per_wall))
    return ComputeTimes(
        edge_ms=cpu["edge"], switcher_ms=cpu["switcher"], cloud_ms=cpu["cloud"],
        sample_windows=len(windows), wall_edge_ms=wall["edge"],
        wall_switcher_ms=wall["switcher"], wall_cloud_ms=wall["cloud"],
    )  # fmt: skip


def _metrics(dec: PolicyDecision, pred: Predictions) -> dict[str, float]:
    c_pred, c_true = clip_level(dec.final, pred.clip, pred.clip_label)
    precision, recall, f1 = prf(c_pred, c_true)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "window_f1": prf(dec.final, pred.y == 1)[2],
        "offload_rate": dec.offload_rate,
    }


def policy_decisions(pred: Predictions, *, threshold: float) -> dict[str, PolicyDecision]:
    """The five policies' decisions; dmd at `threshold`, confidence at dmd's achieved rate."""
    dmd = dmd_policy(pred.edge_pred, pred.cloud_pred, pred.switcher_score, threshold=threshold)
    return {
        "edge_only": PolicyDecision(pred.edge_pred == 1, np.zeros(len(pred.y), dtype=bool)),
        "cloud_only": PolicyDecision(pred.cloud_pred == 1, np.ones(len(pred.y), dtype=bool)),
        "confidence": confidence_policy(
            pred.edge_pred, pred.cloud_pred, pred.edge_confidence, dmd.offload_rate
        ),
        "dmd": dmd,
        "oracle": oracle_policy(pred.edge_pred, pred.cloud_pred, pred.y),
    }


def policy_metrics(
    pred: Predictions,
    times: ComputeTimes | None,
    *,
    threshold: float,
    bootstrap: F1Bootstrap | None = None,
) -> dict[str, dict[str, Any]]:
    """Metrics of the five policies (`policy_decisions`), with F1 intervals when given."""
    out: dict[str, dict[str, Any]] = {}
    for name, dec in policy_decisions(pred, threshold=threshold).items():
        m = _metrics(dec, pred)
        if times is not None:
            if name == "cloud_only":
                ms = times.cloud_ms
            else:
                switcher = times.switcher_ms if name == "dmd" else 0.0
                ms = times.edge_ms + switcher + dec.offload_rate * times.cloud_ms
            m["compute_ms_per_window"] = ms
            m["cost_vs_cloud"] = ms / times.cloud_ms
        out[name] = {**m, **({"f1_ci95": list(bootstrap.intervals[name])} if bootstrap else {})}
    return out


def f1_bootstrap(pred: Predictions, *, threshold: float, seed: int = 0) -> F1Bootstrap:
    """Paired clip bootstrap of every policy's F1 and of the `DIFFERENCES`."""
    finals = {name: dec.final for name, dec in policy_decisions(pred, threshold=threshold).items()}
    return clip_f1_bootstrap(finals, pred.clip, pred.clip_label, pairs=DIFFERENCES,
                             reps=BOOTSTRAP_REPS, seed=seed)  # fmt: skip


def differences_report(boot: F1Bootstrap) -> dict[str, Any]:
    """JSON form of the paired differences: ``{"dmd_minus_cloud_only": {...}, ...}``."""
    return {
        f"{a}_minus_{b}": {"f1": d, "ci95": [lo, hi], "reps": boot.reps, "unit": "clip"}
        for (a, b), (d, lo, hi) in boot.differences.items()
    }


def f1_curve(pred: Predictions, rates: Sequence[float] = CURVE_RATES) -> dict[str, list[float]]:
    """Clip F1 of confidence and DMD (rank-based, exact share) at each offload rate."""
    conf: list[float] = []
    dmd: list[float] = []
    for r in rates:
        for acc, dec in (
            (conf, confidence_policy(pred.edge_pred, pred.cloud_pred, pred.edge_confidence, r)),
            (dmd, dmd_policy(pred.edge_pred, pred.cloud_pred, pred.switcher_score, rate=r)),
        ):
            acc.append(_metrics(dec, pred)["f1"])
    return {"rates": list(rates), "confidence": conf, "dmd": dmd}


def plot_curve(
    curve: dict[str, list[float]], table: dict[str, dict[str, float]], out: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    ax.plot(curve["rates"], curve["confidence"], "o-", ms=3, label="confidence cascade")
    ax.plot(curve["rates"], curve["dmd"], "s-", ms=3, label="DMD switcher")
    ax.axhline(table["cloud_only"]["f1"], color="grey", ls="--", lw=1, label="cloud only")
    ax.plot([0.0], [table["edge_only"]["f1"]], "v", color="black", ms=8, label="edge only")
    ax.plot([1.0], [table["cloud_only"]["f1"]], "^", color="grey", ms=8)
    d = table["dmd"]
    ax.plot([d["offload_rate"]], [d["f1"]], "*", color="red", ms=12, label="DMD operating point")
    ax.set_xlabel("offload rate (share of windows sent to the cloud)")
    ax.set_ylabel("clip-level F1 (fall)")
    ax.set_ylim(max(0.0, min(curve["confidence"] + curve["dmd"]) - 0.05), 1.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def format_table(report: dict[str, Any]) -> str:
    t = report.get("timing")
    head = (f"{'policy':<11} {'prec':>6} {'recall':>6} {'F1':>6} {'F1 95% CI':>13} "
            f"{'win_F1':>6} {'offload':>7} {'ms/win':>7} {'cost':>6}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for name in POLICIES:
        m = report["policies"][name]
        ms = f"{m['compute_ms_per_window']:7.2f}" if "compute_ms_per_window" in m else "      -"
        cost = f"{m['cost_vs_cloud']:6.3f}" if "cost_vs_cloud" in m else "     -"
        ci = "[{:.3f},{:.3f}]".format(*m["f1_ci95"]) if "f1_ci95" in m else "-"
        lines.append(f"{name:<11} {m['precision']:6.3f} {m['recall']:6.3f} {m['f1']:6.3f} "
                     f"{ci:>13} {m['window_f1']:6.3f} {m['offload_rate']:7.1%} {ms} {cost}")  # fmt: skip
    lines.append(f"clips={report['n_clips']} (falls={report['n_fall_clips']}) "
                 f"windows={report['n_windows']} dmd threshold={report['dmd_threshold']:.4f} "
                 f"(target offload {report['target_offload_rate']:.0%})")  # fmt: skip
    for key, diff in report.get("f1_differences", {}).items():
        lo, hi = diff["ci95"]
        lines.append(f"F1 {key.replace('_minus_', ' - ')}: {diff['f1']:+.3f} (95% CI "
                     f"{lo:+.3f} to {hi:+.3f}; paired bootstrap over clips, {diff['reps']} "
                     "resamples: the spread of THIS evaluation set, not of retraining)")  # fmt: skip
    if t:
        lines.append(
            f"measured CPU ms/window: edge {t['edge_ms']:.3f}, switcher "
            f"{t['switcher_ms']:.3f}, cloud {t['cloud_ms']:.3f} (wall: "
            f"{t.get('wall_edge_ms', float('nan')):.3f} / "
            f"{t.get('wall_switcher_ms', float('nan')):.3f} / "
            f"{t.get('wall_cloud_ms', float('nan')):.3f}; n={t['sample_windows']})"
        )
        lines.append(f"timing: {t['included']}")  # fmt: skip
    return "\n".join(lines)


def evaluate_folder(
    folder: Path,
    edge_path: Path,
    cloud_path: Path,
    switcher_path: Path,
    *,
    offload_rate: float | None = None,
    json_out: Path | None = None,
    plot_out: Path | None = None,
    predictions_out: Path | None = None,
    timing_windows: int = 40,
    progress: bool = True,
) -> dict[str, Any]:
    """Run everything on `folder`; print the table; write JSON/plot when asked."""
    from models.runtime.clips import ClipFolder, iter_windows

    if offload_rate is not None and not 0.0 <= offload_rate <= 1.0:
        raise ValueError(f"offload rate must be in [0, 1], got {offload_rate}")
    edge = EdgeModel.load(edge_path, threads=1)
    cloud = CloudModel.load(cloud_path, threads=1)
    switcher = Switcher.load(switcher_path, threads=1)
    switcher.check_edge(edge)
    rate = switcher.meta.target_offload_rate if offload_rate is None else offload_rate
    rate = 0.2 if rate is None else float(rate)
    threshold = switcher.threshold_for_rate(rate)
    clip_labels = [int(rec.label == "fall") for rec in ClipFolder(folder)]
    pred, sample = collect_predictions(edge, cloud, switcher, iter_windows(folder), clip_labels,
                                       keep_sample=timing_windows, progress=progress)  # fmt: skip
    print(f"[evaluate] timing {len(sample)} windows at batch 1, 1 thread ...")
    times = measure_compute(edge_path, cloud_path, switcher_path, sample)
    boot = f1_bootstrap(pred, threshold=threshold)
    table = policy_metrics(pred, times, threshold=threshold, bootstrap=boot)
    curve = f1_curve(pred)
    _, clip_truth = clip_level(pred.y, pred.clip, pred.clip_label)
    report: dict[str, Any] = {
        "data": str(folder),
        "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "n_clips": len(clip_truth),
        "n_fall_clips": int(clip_truth.sum()),
        "n_windows": len(pred.y),
        "n_fall_windows": int(pred.y.sum()),
        "target_offload_rate": rate,
        "dmd_threshold": threshold,
        "policies": table,
        "f1_differences": differences_report(boot),
        "timing": asdict(times),
        "edge_plus_switcher_vs_cloud": (times.edge_ms + times.switcher_ms) / times.cloud_ms,
        "curve": curve,
        "edge_cloud_disagreement": float(np.mean(pred.edge_pred != pred.cloud_pred)),
        "models": {
            m.meta.role: {
                "name": m.meta.name,
                "version": m.meta.version,
                "sha256": m.meta.sha256,
                "flops": m.meta.flops,
            }
            for m in (edge, cloud, switcher)
        },
    }
    print(format_table(report))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2) + "\n")
    if plot_out is not None:
        plot_curve(curve, table, plot_out)
    if predictions_out is not None:
        # Per-window arrays for analysis (numeric .npz, no pickle).
        predictions_out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(predictions_out, edge_probs=pred.edge_probs, cloud_probs=pred.cloud_probs,
                 switcher_score=pred.switcher_score, y=pred.y, clip=pred.clip,
                 clip_label=pred.clip_label)  # fmt: skip
    return report
