"""What a silhouette training run is told (`SilhouetteConfig`) and what it returns
(`SilhouetteResult`), and the seeded validation split both stages share (`split_clips`).

Guarantees: the split takes whole clips and depends only on the clip ids, the fraction
and the seed, so stage A and stage B hold out the same clips.
Failure modes: `ValueError` when `motion` and `bg_swap` are combined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from models.training.silhouette.net import SilhouetteNet


@dataclass(frozen=True)
class SilhouetteConfig:
    seg_minutes: float = 12.0  # stage A time budget
    seg_steps: int = 20000  # stage A step cap
    seg_batch: int = 32  # frames per step
    head_epochs: int = 60  # stage B
    head_batch: int = 64
    lr: float = 3e-3
    width: int = 16
    hidden: int = 64  # temporal channels; the embedding has twice as many
    heads: int = 1  # temporal heads averaged (an ensemble over head seeds)
    seed: int = 0
    # Decision threshold picked on validation: best clip-level F1 (a model deciding alone)
    # or fewest wrong windows (the edge, whose doubtful windows the cloud decides).
    decision: Literal["clip_f1", "window_errors"] = "clip_f1"
    role: str = "cloud"  # for messages
    tta_flip: bool = False  # average each window with its mirror image (2x inference)
    bg_swap: float = 0.0  # stage A: share of frames whose background is replaced
    motion: bool = False  # segmenter also sees each frame minus its window's mean
    # Stage A's forward pass in bfloat16 where the CPU has fast kernels (`native_bf16`): a
    # cloud step of 32 frames 126 -> 94 ms here, so a third more steps in the same minutes.
    # Weights, optimiser, loss, stage B's features and the exported graph stay float32.
    bf16: bool = True
    val_fraction: float = 0.15
    pos_share: float = 0.35
    threads: int = 2
    progress: bool = True

    def __post_init__(self) -> None:
        if self.motion and self.bg_swap > 0:
            # A swapped background would have to be swapped in the window's mean as well.
            raise ValueError("SilhouetteConfig: motion and bg_swap cannot be combined")


@dataclass
class SilhouetteResult:
    net: SilhouetteNet
    thresholds: list[float]  # each head's validation threshold, folded into its fall_bias
    val_clip_f1: float
    val_window_acc: float
    val_auc: float
    seg_steps: int
    seg_seconds: float
    head_epochs: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    seg_forward: str = ""  # stage A's forward precision ("" when stage A was skipped)

    @property
    def threshold(self) -> float:
        """The heads' mean threshold (the one threshold of a single-head net), for reports."""
        return float(np.mean(self.thresholds))


def split_clips(clips: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of windows whose clip is in the validation split (seeded, whole clips)."""
    uniq = np.unique(clips)
    rng = np.random.default_rng(seed + 7919)
    n_val = max(1, round(len(uniq) * fraction)) if fraction > 0 else 0
    val_clips = rng.choice(uniq, size=n_val, replace=False) if n_val else np.array([])
    return np.isin(clips, val_clips)
