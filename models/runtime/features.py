"""Switcher input features, built in numpy from what the edge model emits.

Inputs: edge `probs [N,2]`, `embedding [N,D]` (D may be 0), `stats [N,k]` (columns
named by `models.runtime.preprocess.STAT_NAMES`) and a list of feature names.
Output: float32 `[N,F]` in exactly the order of the names, so a switcher's
`fallwatch.features` metadata fully determines its input.
Names: `p_fall`, `confidence` (max prob), `entropy` (nats), `margin` (|p1-p0|),
`logit` (log p1/p0, clipped to ±12), `stat.<STAT_NAME>`, `emb.<i>`.
Failure modes: `InferenceError` for an unknown name or an embedding/stat index
the edge output does not have.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from models.runtime.errors import InferenceError
from models.runtime.preprocess import STAT_NAMES

__all__ = ["PROB_FEATURES", "build_features", "default_feature_names", "feature_columns"]

PROB_FEATURES: tuple[str, ...] = ("p_fall", "confidence", "entropy", "margin", "logit")
_EPS = 1e-7


def default_feature_names(embedding_dim: int) -> tuple[str, ...]:
    """Probability features + every frame statistic + every embedding dimension."""
    return (
        PROB_FEATURES
        + tuple(f"stat.{s}" for s in STAT_NAMES)
        + tuple(f"emb.{i}" for i in range(embedding_dim))
    )


def _prob_matrix(probs: np.ndarray) -> np.ndarray:
    """[N, 5] columns in PROB_FEATURES order."""
    p = np.clip(probs.astype(np.float64), _EPS, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    out = np.empty((p.shape[0], len(PROB_FEATURES)), dtype=np.float64)
    out[:, 0] = p[:, 1]
    out[:, 1] = p.max(axis=1)
    out[:, 2] = -(p * np.log(p)).sum(axis=1)
    out[:, 3] = np.abs(p[:, 1] - p[:, 0])
    out[:, 4] = np.clip(np.log(p[:, 1] / p[:, 0]), -12.0, 12.0)
    return out


def feature_columns(names: Sequence[str], embedding_dim: int) -> np.ndarray:
    """Column of each name in the matrix [prob features | stats | embedding]."""
    n_prob, n_stat = len(PROB_FEATURES), len(STAT_NAMES)
    cols = np.empty(len(names), dtype=np.int64)
    for j, name in enumerate(names):
        if name in PROB_FEATURES:
            cols[j] = PROB_FEATURES.index(name)
        elif name.startswith("stat.") and name[5:] in STAT_NAMES:
            cols[j] = n_prob + STAT_NAMES.index(name[5:])
        elif name.startswith("emb."):
            try:
                k = int(name[4:])
            except ValueError as exc:
                raise InferenceError(f"bad embedding feature name {name!r}") from exc
            if not 0 <= k < embedding_dim:
                raise InferenceError(
                    f"switcher wants {name} but the edge embedding has {embedding_dim} dims"
                )
            cols[j] = n_prob + n_stat + k
        else:
            raise InferenceError(f"unknown switcher feature {name!r}")
    return cols


@lru_cache(maxsize=16)
def _cached_columns(names: tuple[str, ...], embedding_dim: int) -> np.ndarray:
    cols = feature_columns(names, embedding_dim)
    cols.setflags(write=False)
    return cols


def build_features(
    probs: np.ndarray, embedding: np.ndarray, stats: np.ndarray, names: Sequence[str]
) -> np.ndarray:
    """Assemble `[N, len(names)]` float32 features (see module docstring)."""
    if probs.ndim != 2 or probs.shape[1] != 2:
        raise InferenceError(f"edge probs must be [N,2], got {probs.shape}")
    if stats.ndim != 2 or stats.shape[1] != len(STAT_NAMES):
        raise InferenceError(f"frame stats must be [N,{len(STAT_NAMES)}], got {stats.shape}")
    emb = embedding if embedding.ndim == 2 else embedding.reshape(len(probs), -1)
    cols = _cached_columns(tuple(names), int(emb.shape[1]))
    full = np.concatenate([_prob_matrix(probs), stats, emb], axis=1)
    return full[:, cols].astype(np.float32)
