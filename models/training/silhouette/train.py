"""Training entry points: both stages (`train_silhouette_cloud`), stage A alone
(`train_segmenter`) and stage B (`fit_temporal_head`: each temporal head fitted in turn,
best epoch by validation window AUC, its threshold folded into its bias).

Inputs: a `ClipFrames`, an `InputSpec`, a `SilhouetteConfig`, optionally a saved segmenter
(then stage A is skipped: head-only retraining on real footage). Output: a
`SilhouetteResult` whose net is in eval mode with the thresholds folded in.
Guarantees: seeded (`cfg.seed`): torch, numpy and the validation split.
Failure modes: `TrainingError` when the training split lacks a class or a segmenter file
cannot be read or does not fit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F

from models.evaluation.metrics import (
    best_clip_threshold,
    best_window_threshold,
    clip_f1_at,
    roc_auc,
)
from models.runtime.errors import TrainingError
from models.runtime.metadata import InputSpec
from models.training.dataset import ClipFrames
from models.training.silhouette.banks import FeatureBanks, feature_banks, head_scores, windows_of
from models.training.silhouette.config import SilhouetteConfig, SilhouetteResult, split_clips
from models.training.silhouette.net import (
    SilhouetteNet,
    TemporalHead,
    load_segmenter,
    segmenter_has_motion,
)
from models.training.silhouette.segmenter import fit_segmenter


@dataclass
class _StageB:
    """Stage B's windows: every bank copy's windows stacked (`feats`, `y`), the training rows,
    and the validation rows with their clips (and mirrored features)."""

    feats: np.ndarray
    y: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    val_clip: np.ndarray
    val_clip_label: np.ndarray
    val_mirror: np.ndarray | None


def _stage_b_windows(
    data: ClipFrames, banks: FeatureBanks, spec: InputSpec, cfg: SilhouetteConfig
) -> _StageB:
    is_val = split_clips(data.clip, cfg.val_fraction, cfg.seed)
    train_w, val_w = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if len(np.unique(data.y[train_w])) < 2:
        raise TrainingError(f"{cfg.role}: training split needs both classes")
    n = len(data.y)
    val_mirror = None
    if banks.filmed_mirror is not None and banks.refilmed_mirror is not None:
        val_mirror = np.concatenate(
            [
                windows_of(banks.filmed_mirror, data, spec, val_w),
                windows_of(banks.refilmed_mirror, data, spec, val_w),
            ]
        )
    # Validation scores both the clips as filmed and re-filmed: the threshold must hold
    # on cameras the training never saw, not just on the training preset's look.
    return _StageB(
        feats=np.concatenate(
            [windows_of(banks.filmed, data, spec), windows_of(banks.refilmed, data, spec)]
        ),
        y=np.concatenate([data.y, data.y]),
        train_idx=np.concatenate([train_w, n + train_w]),
        val_idx=np.concatenate([val_w, n + val_w]),
        val_clip=np.concatenate([data.clip[val_w], data.clip[val_w] + int(data.clip.max()) + 1]),
        val_clip_label=np.concatenate([data.clip_label[val_w], data.clip_label[val_w]]),
        val_mirror=val_mirror,
    )


def _fit_head(
    net: SilhouetteNet, k: int, sb: _StageB, cfg: SilhouetteConfig, gen: torch.Generator,
    rng: np.random.Generator, history: list[dict[str, float]], t0: float,
) -> float:  # fmt: skip
    """Fit head `k` alone: best epoch by validation window AUC, then its threshold (best clip
    F1 or fewest wrong windows, `cfg.decision`) folded into its `fall_bias`. Returns it."""
    head = cast(TemporalHead, net.heads[k])
    params = list(head.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-3)
    y, train_idx = sb.y, sb.train_idx
    pos, neg = train_idx[y[train_idx] == 1], train_idx[y[train_idx] == 0]
    steps = max(1, len(train_idx) // cfg.head_batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr,
                                                total_steps=steps * cfg.head_epochs)  # fmt: skip
    n_pos = max(1, round(cfg.head_batch * cfg.pos_share))
    has_val = len(sb.val_idx) > 0
    best_auc, best_state = -1.0, None
    for epoch in range(1, cfg.head_epochs + 1):
        head.train()
        total = 0.0
        for _ in range(steps):
            idx = np.concatenate([rng.choice(pos, n_pos), rng.choice(neg, cfg.head_batch - n_pos)])
            xb = torch.from_numpy(sb.feats[idx])
            xb = xb + 0.01 * torch.randn(xb.shape, generator=gen)
            logits, _ = net.classify(xb, heads=[k])
            loss = F.cross_entropy(logits, torch.from_numpy(y[idx]), label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]  # torch stubs leave it untyped
            opt.step()
            sched.step()
            total += float(loss.detach())
        net.eval()
        p_val = head_scores(net, sb.feats[sb.val_idx], sb.val_mirror, heads=[k])
        auc = roc_auc(p_val, y[sb.val_idx] == 1) if has_val else float(epoch)
        history.append({"head": k, "epoch": epoch, "train_loss": total / steps, "val_auc": auc,
                        "elapsed_s": time.monotonic() - t0})  # fmt: skip
        if epoch % 10 == 0 or epoch == cfg.head_epochs:
            print(f"[train] {cfg.role} head {k} epoch {epoch}: loss={total / steps:.4f} "
                  f"val_auc={auc:.4f}")  # fmt: skip
        if auc > best_auc:
            best_auc = auc
            best_state = {n: v.detach().clone() for n, v in head.state_dict().items()}
    if best_state is not None:
        head.load_state_dict(best_state)
    for p in params:
        p.requires_grad_(False)
    net.eval()
    threshold = 0.5
    if has_val:
        p_val = head_scores(net, sb.feats[sb.val_idx], sb.val_mirror, heads=[k])
        if cfg.decision == "clip_f1":
            threshold = best_clip_threshold(p_val, sb.val_clip, sb.val_clip_label)
        else:
            threshold = best_window_threshold(p_val, y[sb.val_idx])
    head.get_buffer("fall_bias").fill_(math.log((1.0 - threshold) / threshold))
    return threshold


def fit_temporal_head(
    net: SilhouetteNet, data: ClipFrames, banks: FeatureBanks, spec: InputSpec,
    cfg: SilhouetteConfig, gen: torch.Generator, rng: np.random.Generator,
) -> tuple[list[float], float, float, float, list[dict[str, float]]]:  # fmt: skip
    """Stage B on per-frame feature banks (`feature_banks`): windows are cut from them, so an
    epoch costs seconds. Each of `net.heads` is fitted in turn (`_fit_head`: its own
    initialisation and batches, its own threshold folded into its bias).

    Returns (each head's threshold, val clip F1, val window acc, val AUC, history); the
    validation numbers are the whole net's, every head averaged as the exported model
    decides, on the validation clips as filmed and re-filmed (mirrored too when
    `net.tta_flip`). `net` ends in eval mode."""
    t0 = time.monotonic()
    sb = _stage_b_windows(data, banks, spec, cfg)
    history: list[dict[str, float]] = []
    thresholds = [_fit_head(net, k, sb, cfg, gen, rng, history, t0) for k in range(len(net.heads))]
    val_f1 = val_acc = auc = float("nan")
    if len(sb.val_idx):
        p_val = head_scores(net, sb.feats[sb.val_idx], sb.val_mirror)  # folded: decide at 0.5
        truth = sb.y[sb.val_idx] == 1
        auc = roc_auc(p_val, truth)
        val_f1 = clip_f1_at(p_val, sb.val_clip, sb.val_clip_label, 0.5)
        val_acc = float(np.mean((p_val >= 0.5) == truth))
    print(f"[train] {cfg.role} temporal stage ({len(net.heads)} head(s)): val window AUC "
          f"{auc:.3f}, thresholds {', '.join(f'{t:.3f}' for t in thresholds)}, val clip F1 "
          f"{val_f1:.3f}, val window acc {val_acc:.3f}")  # fmt: skip
    return thresholds, val_f1, val_acc, auc, history


def train_silhouette_cloud(
    data: ClipFrames, spec: InputSpec, cfg: SilhouetteConfig,
    segmenter: Path | None = None,
) -> SilhouetteResult:  # fmt: skip
    """Both stages (module docstring); returns the net in eval mode with the threshold folded in.

    With `segmenter` (a `save_segmenter` file) stage A is skipped: its weights are loaded
    and only the temporal head is fitted, which needs no silhouettes (`data.target` unused):
    how real, unmasked footage retrains the cloud.
    """
    t0 = time.monotonic()
    motion = cfg.motion if segmenter is None else segmenter_has_motion(segmenter)
    net, gen, rng = _seeded_net(spec, cfg, motion)
    if segmenter is not None:
        load_segmenter(net, segmenter)
        seg_steps, seg_secs, seg_forward = 0, 0.0, ""
    else:
        seg_steps, seg_secs, seg_forward = _stage_a(net, data, spec, cfg, gen, rng)
    banks = feature_banks(net, data, spec, cfg, gen)
    thresholds, val_f1, val_acc, auc, history = fit_temporal_head(net, data, banks, spec, cfg,
                                                                  gen, rng)  # fmt: skip
    secs = time.monotonic() - t0
    return SilhouetteResult(net, thresholds, val_f1, val_acc, auc, seg_steps, seg_secs,
                            cfg.head_epochs, secs, history, seg_forward)  # fmt: skip


def train_segmenter(data: ClipFrames, spec: InputSpec, cfg: SilhouetteConfig) -> SilhouetteNet:
    """Stage A alone, seeded and split as `train_silhouette_cloud` does: the per-frame
    perception of a fresh net (eval mode), for diagnostics that compare recipes."""
    net, gen, rng = _seeded_net(spec, cfg, cfg.motion)
    _stage_a(net, data, spec, cfg, gen, rng)
    return net.eval()


def _seeded_net(
    spec: InputSpec, cfg: SilhouetteConfig, motion: bool
) -> tuple[SilhouetteNet, torch.Generator, np.random.Generator]:
    torch.set_num_threads(max(1, cfg.threads))
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = SilhouetteNet(width=cfg.width, hidden=cfg.hidden, in_channels=spec.channels,
                        tta_flip=cfg.tta_flip, motion=motion, heads=cfg.heads)  # fmt: skip
    return net, gen, rng


def _stage_a(
    net: SilhouetteNet, data: ClipFrames, spec: InputSpec, cfg: SilhouetteConfig,
    gen: torch.Generator, rng: np.random.Generator,
) -> tuple[int, float, str]:  # fmt: skip
    """`fit_segmenter` on the frames of the training split's clips."""
    val_clips = np.unique(data.clip[split_clips(data.clip, cfg.val_fraction, cfg.seed)])
    train_frames = np.flatnonzero(~np.isin(data.frame_clip, val_clips))
    return fit_segmenter(net, data, train_frames, spec, cfg, gen, rng)
