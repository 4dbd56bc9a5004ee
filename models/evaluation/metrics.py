"""Metric arithmetic and routing policies (pure numpy, no models).

Inputs: per-window arrays — decisions (bool/int, 1 = fall), window labels, clip
ids, clip labels, edge/cloud decisions, edge confidences, switcher scores.
Outputs: precision/recall/F1 on the fall class, at clip level (a clip is a
detected fall when ANY of its windows' final decision is fall) and at window
level, and each policy's final decisions and offload mask.
Conventions: precision = 0 when nothing is predicted positive, recall = 0 when
there are no positives, F1 = 0 when precision + recall = 0 (as scikit-learn with
zero_division=0). Ties in "lowest confidence"/"highest score" ranking are broken
by window order (stable sort), so results are deterministic.
Uncertainty: `clip_f1_bootstrap` resamples whole clips with replacement (seeded,
the same resamples for every policy, so differences between policies are paired)
and gives percentile intervals of clip F1 and of F1 differences. It measures how
much the F1 of THESE models would move on another draw of clips like these, not
how much retraining with another seed would move it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "F1Bootstrap",
    "PolicyDecision",
    "best_clip_threshold",
    "best_window_threshold",
    "clip_f1_at",
    "clip_f1_bootstrap",
    "clip_level",
    "confidence_policy",
    "dmd_policy",
    "oracle_policy",
    "prf",
    "roc_auc",
    "top_k_mask",
]


def prf(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """(precision, recall, f1) of the positive class."""
    p = np.asarray(pred).astype(bool)
    t = np.asarray(truth).astype(bool)
    tp = int(np.sum(p & t))
    fp = int(np.sum(p & ~t))
    fn = int(np.sum(~p & t))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def roc_auc(score: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); 0.5 with one class."""
    s = np.asarray(score, dtype=np.float64)
    t = np.asarray(truth).astype(bool)
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        return 0.5
    order = np.argsort(s, kind="stable")
    ranks = np.empty(len(s), dtype=np.float64)
    ranks[order] = np.arange(1, len(s) + 1)
    # Average the ranks of tied scores.
    uniq, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    if len(uniq) < len(s):
        sums = np.zeros(len(uniq))
        np.add.at(sums, inverse, ranks)
        ranks = (sums / counts)[inverse]
    return float((ranks[t].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def clip_level(
    decisions: np.ndarray, clip: np.ndarray, clip_label: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per clip (sorted by id): (any window decided fall, clip label)."""
    ids, inverse = np.unique(clip, return_inverse=True)
    pred = np.zeros(len(ids), dtype=bool)
    np.logical_or.at(pred, inverse, np.asarray(decisions).astype(bool))
    truth = np.zeros(len(ids), dtype=bool)
    truth[inverse] = np.asarray(clip_label).astype(bool)
    return pred, truth


def clip_f1_at(p_fall: np.ndarray, clip: np.ndarray, clip_label: np.ndarray, t: float) -> float:
    """Clip-level F1 when windows with p_fall >= t are decided fall."""
    pred, truth = clip_level(p_fall >= t, clip, clip_label)
    return prf(pred, truth)[2]


def best_clip_threshold(
    p_fall: np.ndarray, clip: np.ndarray, clip_label: np.ndarray, lo: float = 0.02, hi: float = 0.98
) -> float:
    """Decision threshold maximising clip-level F1 (clip score = max window p_fall).

    Among equally good thresholds the widest gap is used and the threshold is put
    in its middle, so it is not balanced on one validation clip's score.
    """
    ids, inverse = np.unique(clip, return_inverse=True)
    score = np.full(len(ids), -np.inf)
    np.maximum.at(score, inverse, p_fall)
    truth = np.zeros(len(ids), dtype=bool)
    truth[inverse] = np.asarray(clip_label).astype(bool)
    if not truth.any() or truth.all():
        return 0.5
    cuts = np.unique(np.clip(np.concatenate([[lo, hi], score]), lo, hi))
    best_f1, best_gap, best_t = -1.0, -1.0, 0.5
    # A threshold anywhere in (cuts[i-1], cuts[i]] gives the same decisions.
    for i in range(1, len(cuts)):
        lower, upper = cuts[i - 1], cuts[i]
        f1 = prf(score >= upper, truth)[2]
        gap = upper - lower
        if f1 > best_f1 + 1e-12 or (abs(f1 - best_f1) <= 1e-12 and gap > best_gap):
            best_f1, best_gap, best_t = f1, gap, 0.5 * (lower + upper)
    return float(np.clip(best_t, lo, hi))


def best_window_threshold(
    p_fall: np.ndarray, window_label: np.ndarray, lo: float = 0.02, hi: float = 0.98
) -> float:
    """Decision threshold with the fewest window errors (midpoint of the best gap).

    For a model whose every window decision is used on its own (the edge in the
    hybrid): fewest wrong windows leaves the least for the cloud budget to fix.
    """
    p = np.clip(np.asarray(p_fall, dtype=np.float64), lo, hi)
    y = np.asarray(window_label).astype(bool)
    cuts = np.unique(np.concatenate([[lo, hi], p]))
    order = np.argsort(p, kind="stable")
    ps, ys = p[order], y[order]
    best_err, best_gap, best_t = np.inf, -1.0, 0.5
    for i in range(1, len(cuts)):
        lower, upper = cuts[i - 1], cuts[i]
        k = int(np.searchsorted(ps, upper, side="left"))  # windows below: decided no-fall
        err = int(ys[:k].sum()) + int((~ys[k:]).sum())
        gap = upper - lower
        if err < best_err or (err == best_err and gap > best_gap):
            best_err, best_gap, best_t = err, gap, 0.5 * (lower + upper)
    return float(np.clip(best_t, lo, hi))


def top_k_mask(values: np.ndarray, k: int, *, largest: bool) -> np.ndarray:
    """Boolean mask of the k largest (or smallest) values, ties by position."""
    n = len(values)
    k = int(min(max(k, 0), n))
    order = np.argsort(-values if largest else values, kind="stable")
    mask = np.zeros(n, dtype=bool)
    mask[order[:k]] = True
    return mask


@dataclass(frozen=True)
class PolicyDecision:
    """Final per-window decisions of a routing policy and which windows it offloaded."""

    final: np.ndarray  # bool [N], True = fall
    offload: np.ndarray  # bool [N]

    @property
    def offload_rate(self) -> float:
        return float(np.mean(self.offload)) if len(self.offload) else 0.0


def _route(edge_pred: np.ndarray, cloud_pred: np.ndarray, offload: np.ndarray) -> PolicyDecision:
    final = np.where(offload, np.asarray(cloud_pred) == 1, np.asarray(edge_pred) == 1)
    return PolicyDecision(final=final.astype(bool), offload=offload.astype(bool))


def confidence_policy(
    edge_pred: np.ndarray, cloud_pred: np.ndarray, edge_confidence: np.ndarray, rate: float
) -> PolicyDecision:
    """Offload the round(rate * N) windows with the lowest edge confidence."""
    k = round(rate * len(edge_pred))
    return _route(edge_pred, cloud_pred, top_k_mask(edge_confidence, k, largest=False))


def dmd_policy(
    edge_pred: np.ndarray,
    cloud_pred: np.ndarray,
    switcher_score: np.ndarray,
    *,
    threshold: float | None = None,
    rate: float | None = None,
) -> PolicyDecision:
    """Offload where switcher score >= threshold, or the top round(rate * N) scores."""
    if (threshold is None) == (rate is None):
        raise ValueError("give exactly one of threshold or rate")
    if threshold is not None:
        offload = np.asarray(switcher_score) >= threshold
    else:
        assert rate is not None
        offload = top_k_mask(np.asarray(switcher_score), round(rate * len(edge_pred)), largest=True)
    return _route(edge_pred, cloud_pred, offload)


def oracle_policy(
    edge_pred: np.ndarray, cloud_pred: np.ndarray, window_label: np.ndarray
) -> PolicyDecision:
    """Offload exactly the windows the edge gets wrong (uses labels: an upper bound)."""
    return _route(edge_pred, cloud_pred, np.asarray(edge_pred) != np.asarray(window_label))


@dataclass(frozen=True)
class F1Bootstrap:
    """Percentile intervals of clip F1 per policy and of paired F1 differences."""

    reps: int
    level: float
    intervals: dict[str, tuple[float, float]]  # policy -> (low, high)
    differences: dict[
        tuple[str, str], tuple[float, float, float]
    ]  # (a, b) -> (F1 a - b, low, high)


def clip_f1_bootstrap(
    decisions: dict[str, np.ndarray],
    clip: np.ndarray,
    clip_label: np.ndarray,
    *,
    pairs: tuple[tuple[str, str], ...] = (),
    reps: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> F1Bootstrap:
    """Clip-level F1 intervals from ``reps`` resamples of the clips (paired across policies).

    ``decisions`` maps a policy name to its per-window final decisions (1 = fall); every
    policy sees the same resampled clips, so ``pairs`` ``(a, b)`` get an interval of
    ``F1(a) - F1(b)`` that accounts for the two sharing clips. F1 of a resample without
    any predicted or true fall is 0 (the `prf` convention).
    """
    if reps < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"need reps >= 1 and 0 < level < 1, got {reps}, {level}")
    ids, inverse = np.unique(clip, return_inverse=True)
    truth = np.zeros(len(ids), dtype=bool)
    truth[inverse] = np.asarray(clip_label).astype(bool)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(ids), size=(reps, len(ids)))
    # counts[r, c]: how often clip c is in resample r.
    counts = np.zeros((reps, len(ids)), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(reps), len(ids)), draws.ravel()), 1)

    def f1s(pred: np.ndarray) -> np.ndarray:
        tp = counts @ (pred & truth).astype(np.int64)
        wrong = counts @ (pred ^ truth).astype(np.int64)  # false positives + false negatives
        denom = 2 * tp + wrong
        return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)

    point: dict[str, float] = {}
    samples: dict[str, np.ndarray] = {}
    for name, final in decisions.items():
        pred, _ = clip_level(final, clip, clip_label)
        point[name] = prf(pred, truth)[2]
        samples[name] = f1s(pred)
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2

    def interval(x: np.ndarray) -> tuple[float, float]:
        lo, hi = np.percentile(x, [lo_q, hi_q])
        return float(lo), float(hi)

    return F1Bootstrap(
        reps=reps,
        level=level,
        intervals={name: interval(x) for name, x in samples.items()},
        differences={
            (a, b): (point[a] - point[b], *interval(samples[a] - samples[b])) for a, b in pairs
        },
    )
