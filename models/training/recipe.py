"""The zoo's recipe in one place: seeds, clip counts, time budgets, widths, heads, targets.

Inputs: none (constants only; importing this module imports no torch and does no work).
Outputs: the seed bases of the four disjoint clip ranges (`TRAIN_BASE`, `POOL_BASE`,
`FRESH_BASE`, `HELDOUT_SEED`), the zoo's model `VERSION`, `BuildConfig` with the full
(`FULL`, what `make models` builds) and tiny (`QUICK`) recipes, and the per-role settings
both `models.training.build_zoo` and `fallwatch train` use (`ROLE_HIDDEN`,
`ROLE_SEG_BATCH`, `ROLE_DECISION`).
Guarantees: the build (`models.training.build_zoo`), the `fallwatch train` command
(`models.cli`) and any diagnostic read these names from here, so a recipe change is one
edit; the seed ranges are disjoint for the clip counts below (1,000,000 apart).
Failure modes: none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "FRESH_BASE",
    "FULL",
    "HELDOUT_SEED",
    "POOL_BASE",
    "QUICK",
    "ROLE_DECISION",
    "ROLE_HIDDEN",
    "ROLE_SEG_BATCH",
    "TRAIN_BASE",
    "VERSION",
    "BuildConfig",
]

TRAIN_BASE = 1_000_000
POOL_BASE = 2_000_000
FRESH_BASE = 3_000_000
HELDOUT_SEED = 4_000_000
VERSION = "0.1.0"

# Per role, the temporal stage's channels (the embedding has twice as many: the edge's
# 32-d embedding feeds the switcher), the per-frame stage's frames per step, and how the
# decision threshold is picked on validation: best clip F1 (the cloud decides alone) or
# fewest wrong windows (the edge, whose doubtful windows the cloud decides).
ROLE_HIDDEN: dict[str, int] = {"edge": 16, "cloud": 64}
ROLE_SEG_BATCH: dict[str, int] = {"edge": 64, "cloud": 32}
ROLE_DECISION: dict[str, Literal["clip_f1", "window_errors"]] = {
    "edge": "window_errors",
    "cloud": "clip_f1",
}


@dataclass(frozen=True)
class BuildConfig:
    train_clips: int = 1000
    pool_clips: int = 1000
    fresh_pool_clips: int = 100
    heldout_clips: int = 320
    # Both video models are two-stage (models.training.silhouette): stage A, the per-frame
    # perception, runs a fixed number of steps, so a rebuild on a busy machine trains the
    # same models, only later (until 2026-12-06 it had a time budget, and a build beside
    # other jobs got 30 % fewer steps and a cloud 0.03 F1 lower); its minutes are a cap
    # that only a machine several times slower reaches (a build beside two other CPU-bound
    # jobs ran the edge at 4.4 steps/s; the build summary records the
    # steps run). Stage B, the temporal head on cached per-frame features, runs a fixed
    # number of epochs. Quiet pace on this 2-core machine: edge ~15, cloud ~12 steps/s.
    edge_seg_steps: int = 4500
    edge_seg_minutes: float = 30.0
    edge_head_epochs: int = 60
    edge_width: int = 8
    edge_hidden: int = ROLE_HIDDEN["edge"]  # 32-d embedding for the switcher
    cloud_seg_steps: int = 11000
    cloud_seg_minutes: float = 60.0
    cloud_head_epochs: int = 60
    cloud_width: int = 16
    cloud_tta_flip: bool = True  # the cloud averages each window with its mirror image
    # Temporal heads of the cloud, fitted one after another on the same features and
    # averaged: on the shipped segmenter, single heads scored held-out clip F1 0.78-0.84 by
    # head seed alone, three averaged 0.85 (docs/MODEL_EXPERIMENTS.md, session 8).
    cloud_heads: int = 5
    # Share of the cloud segmenter's training frames whose background is replaced
    # (models.training.silhouette.augment.swap_background); 0 turns it off.
    cloud_bg_swap: float = 0.0
    # The cloud's segmenter also sees each frame minus its window's mean
    # (models.training.silhouette.with_motion): held-out joints > 3 cells off 30-32 % -> 26-28 %,
    # cloud window F1 0.643 -> 0.698 with the edge kept (docs/MODEL_EXPERIMENTS.md, session 7).
    cloud_motion: bool = True
    offload_rate: float = 0.2
    workers: int = 2
    train_threads: int = 2
    seed: int = 0
    codec: bool = True
    # Preset of the training clips, the DMD pool and the fresh pool: a built-in name or a
    # *.json preset file (models.synth.presets; docs/PRESET_FILES.md) for one's own cameras.
    train_preset: str = "train"


FULL = BuildConfig()
QUICK = BuildConfig(
    train_clips=60, pool_clips=30, fresh_pool_clips=20, heldout_clips=40, edge_seg_steps=150,
    edge_seg_minutes=0.5, edge_head_epochs=5, edge_width=4, cloud_seg_steps=150,
    cloud_seg_minutes=1.0, cloud_head_epochs=5, cloud_width=8, cloud_heads=2,
)  # fmt: skip
