"""Dual-Model Distillation: train the switcher without labels, calibrate its threshold.

Inputs: an edge and a cloud ONNX model (any pair following the metadata
convention; their input specs come from the files) and an iterable of UNLABELED
windows (uint8 `[T,H,W,3]`). No function here accepts labels: ground truth
cannot reach the switcher or its threshold.
Steps:
1. `generate_pairs`: run both models on every pool window; switcher features
   from the edge output (`models.runtime.features`; embedding columns only when the edge
   emits one); target = edge and cloud disagree (argmax).
2. Split the pool (seeded, by position): `1 - calib_fraction` trains the switcher
   MLP (`train_switcher`, torch imported lazily), `calib_fraction` calibrates.
3. `calibrate_threshold`: the threshold whose score quantile sends `rate` of the
   calibration windows to the cloud (scores out-of-sample for the switcher).
4. Export `switcher.onnx` with features, threshold, target rate, a calibration
   table (rate → threshold) and the pair's sha256s in metadata.
Guarantees: deterministic for a seed (1 torch thread); identical pools give
identical switchers. If the two models never (or always) disagree on the pool,
the soft disagreement |p_fall(edge) - p_fall(cloud)| is used as the target
instead and `fallwatch.dmd` records it.
Failure modes: `TrainingError` for an empty pool; `CalibrationError` for a rate
outside (0, 1); model loading errors from `models.runtime.onnx_models`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from models.runtime.errors import CalibrationError, TrainingError
from models.runtime.features import build_features, default_feature_names
from models.runtime.metadata import ModelMeta
from models.runtime.onnx_models import CloudModel, EdgeModel, Switcher

if TYPE_CHECKING:
    from models.training.nets import SwitcherNet

__all__ = [
    "CALIBRATION_RATES",
    "DisagreementPairs",
    "DistillReport",
    "calibrate_threshold",
    "calibration_table",
    "disagreement_target",
    "distill",
    "generate_pairs",
    "train_switcher",
]

log = logging.getLogger(__name__)
CALIBRATION_RATES = tuple(round(0.05 * i, 2) for i in range(1, 20))
_MIN_CLASS = 3  # fewer disagreements (or agreements) than this → soft target


@dataclass(frozen=True)
class DisagreementPairs:
    """What DMD learns from: edge features and whether the cloud disagreed."""

    features: np.ndarray  # float32 [N,F]
    feature_names: tuple[str, ...]
    edge_probs: np.ndarray  # [N,2]
    cloud_probs: np.ndarray  # [N,2]

    @property
    def disagree(self) -> np.ndarray:
        out: np.ndarray = self.edge_probs.argmax(1) != self.cloud_probs.argmax(1)
        return out

    def __len__(self) -> int:
        return int(self.features.shape[0])


def _batches(windows: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    it = iter(windows)
    while chunk := list(islice(it, size)):
        yield chunk


def generate_pairs(
    edge: EdgeModel,
    cloud: CloudModel,
    windows: Iterable[np.ndarray],
    *,
    batch_size: int = 16,
    progress: bool = True,
    total: int | None = None,
) -> DisagreementPairs:
    """Run both models on unlabeled windows and build switcher features."""
    feats, e_probs, c_probs = [], [], []
    names: tuple[str, ...] | None = None
    bar = tqdm(total=total, desc="dmd pairs", unit="win", disable=not progress)
    for chunk in _batches(windows, batch_size):
        e_out = edge.predict(chunk)
        c_out = cloud.predict(chunk)
        if names is None:
            names = default_feature_names(e_out.embedding.shape[1])
        feats.append(build_features(e_out.probs, e_out.embedding, e_out.stats, names))
        e_probs.append(e_out.probs)
        c_probs.append(c_out.probs)
        bar.update(len(chunk))
    bar.close()
    if names is None:
        raise TrainingError("DMD pool is empty: no windows to distil from")
    return DisagreementPairs(
        np.concatenate(feats), names, np.concatenate(e_probs), np.concatenate(c_probs)
    )


def disagreement_target(pairs: DisagreementPairs) -> tuple[np.ndarray, str]:
    """The switcher's training target, derived from the two models only.

    "argmax": 1 where edge and cloud decide differently. Falls back to "soft",
    |p_fall(edge) - p_fall(cloud)|, when either class has < 3 windows.
    """
    disagree = pairs.disagree
    n_dis = int(disagree.sum())
    if min(n_dis, len(pairs) - n_dis) >= _MIN_CLASS:
        return disagree.astype(np.float32), "argmax"
    log.warning("dmd_soft_target", extra={"disagreements": n_dis, "pool": len(pairs)})
    return np.abs(pairs.edge_probs[:, 1] - pairs.cloud_probs[:, 1]).astype(np.float32), "soft"


def train_switcher(
    pairs: DisagreementPairs,
    fit_idx: np.ndarray | None = None,
    *,
    seed: int = 0,
    epochs: int = 80,
    hidden: int = 32,
    batch_size: int = 128,
    lr: float = 3e-3,
) -> SwitcherNet:
    """Fit the switcher MLP (BCE) on `pairs[fit_idx]` to the disagreement target.

    Takes only model outputs: there is no way to hand it a label.
    """
    import torch
    import torch.nn.functional as F

    from models.training.nets import SwitcherNet

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    target, _ = disagreement_target(pairs)
    idx = np.arange(len(pairs)) if fit_idx is None else np.asarray(fit_idx)
    x = torch.from_numpy(np.asarray(pairs.features[idx], dtype=np.float32))
    y = torch.from_numpy(target[idx]).reshape(-1, 1)
    net = SwitcherNet(x.mean(0), x.std(0), hidden=hidden)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-3)
    gen = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            batch = perm[i : i + batch_size]
            loss = F.binary_cross_entropy_with_logits(net.logits(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]  # torch stubs leave it untyped
            opt.step()
    return net.eval()


def switcher_scores(net: SwitcherNet, features: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        scores: np.ndarray = net(torch.from_numpy(np.asarray(features, dtype=np.float32))).numpy()
    return scores.reshape(-1)


def calibrate_threshold(scores: np.ndarray, rate: float) -> float:
    """Threshold t such that round(rate * N) of `scores` are >= t (midpoint of the gap)."""
    if not 0.0 < rate < 1.0:
        raise CalibrationError(f"offload rate must be in (0, 1), got {rate}")
    s = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    if len(s) == 0:
        raise CalibrationError("no scores to calibrate on")
    k = round(rate * len(s))
    if k <= 0:
        return float(np.nextafter(s[0], np.inf))
    if k >= len(s):
        return float(s[-1])
    return float(0.5 * (s[k - 1] + s[k]))


def calibration_table(
    scores: np.ndarray, rates: Iterable[float] = CALIBRATION_RATES
) -> dict[str, list[float]]:
    rates = list(rates)
    return {"rates": rates, "thresholds": [calibrate_threshold(scores, r) for r in rates]}


@dataclass(frozen=True)
class DistillReport:
    path: Path
    pool_windows: int
    switcher_train_windows: int
    calibration_windows: int
    disagreement_rate: float
    target_kind: str  # "argmax" or "soft"
    threshold: float
    target_offload_rate: float
    calibration_offload_rate: float  # achieved on the calibration split
    seconds: float
    feature_names: tuple[str, ...]


def distill(
    edge_path: Path,
    cloud_path: Path,
    windows: Iterable[np.ndarray],
    out: Path,
    *,
    offload_rate: float = 0.2,
    seed: int = 0,
    calib_fraction: float = 0.3,
    version: str = "0.1.0",
    progress: bool = True,
    total: int | None = None,
    switcher_epochs: int = 80,
) -> DistillReport:
    """Whole DMD pipeline on unlabeled windows → `out` (switcher.onnx); see module docstring."""
    from models.training.export import export_switcher

    if not 0.0 < offload_rate < 1.0:
        raise CalibrationError(f"offload rate must be in (0, 1), got {offload_rate}")
    t0 = time.monotonic()
    edge = EdgeModel.load(edge_path, threads=1)
    cloud = CloudModel.load(cloud_path, threads=1)
    pairs = generate_pairs(edge, cloud, windows, progress=progress, total=total)
    n = len(pairs)
    n_dis = int(pairs.disagree.sum())
    _, kind = disagreement_target(pairs)
    perm = np.random.default_rng(seed).permutation(n)
    n_cal = max(1, round(n * calib_fraction)) if n > 1 else 0
    cal_idx, fit_idx = perm[:n_cal], perm[n_cal:]
    if len(fit_idx) == 0:
        fit_idx = cal_idx
    net = train_switcher(pairs, fit_idx, seed=seed, epochs=switcher_epochs)
    cal_scores = switcher_scores(net, pairs.features[cal_idx if len(cal_idx) else fit_idx])
    threshold = calibrate_threshold(cal_scores, offload_rate)
    achieved = float(np.mean(cal_scores >= threshold))
    pair_info = {
        "edge": edge.meta.sha256,
        "cloud": cloud.meta.sha256,
        "edge_version": edge.meta.version,
        "cloud_version": cloud.meta.version,
    }
    dmd_info = {
        "target": kind,
        "pool_windows": n,
        "disagreement_rate": n_dis / max(n, 1),
        "fit_windows": len(fit_idx),
        "calibration_windows": len(cal_idx),
    }
    meta = ModelMeta(
        role="switcher",
        name="fallwatch-switcher",
        version=version,
        labels=("edge_right", "edge_wrong"),
        features=pairs.feature_names,
        threshold=threshold,
        target_offload_rate=offload_rate,
        seed=seed,
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        flops=_mlp_macs(net),
        extra={
            "fallwatch.calibration": json.dumps(calibration_table(cal_scores)),
            "fallwatch.pair": json.dumps(pair_info),
            "fallwatch.dmd": json.dumps(dmd_info),
        },
    )
    export_switcher(net, meta, out)
    Switcher.load(out)  # fail here, not in production, if the file does not load
    report = DistillReport(
        path=out, pool_windows=n, switcher_train_windows=len(fit_idx),
        calibration_windows=len(cal_idx), disagreement_rate=n_dis / max(n, 1),
        target_kind=kind, threshold=threshold, target_offload_rate=offload_rate,
        calibration_offload_rate=achieved, seconds=time.monotonic() - t0,
        feature_names=pairs.feature_names,
    )  # fmt: skip
    print(f"[distill] pool={n} windows, edge/cloud disagree on {report.disagreement_rate:.1%} "
          f"(target={kind}); threshold={threshold:.6g} for offload {offload_rate:.0%} "
          f"(calibration split: {achieved:.1%}); {report.seconds:.0f}s -> {out}")  # fmt: skip
    return report


def _mlp_macs(net: SwitcherNet) -> int:
    import torch

    return sum(int(m.in_features * m.out_features) for m in net.modules()
               if isinstance(m, torch.nn.Linear))  # fmt: skip
