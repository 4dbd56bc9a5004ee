"""Train the edge model on labeled windows (PyTorch, CPU); the cloud trains in `models.silhouette`.

Inputs: a `WindowSet` — model-ready uint8 inputs `[N,C,T,H,W]` (see
`models.preprocess.to_model_uint8`), window labels, clip ids and clip labels —
plus an `InputSpec` and a `TrainConfig`.
Output: `TrainResult` with the trained net (eval mode, `fall_bias` set) and
validation numbers.
Procedure and guarantees:
- a validation split of whole clips (`val_fraction`, seeded) is held out of the
  gradient steps; it is part of the labeled TRAINING data, never the held-out set;
- class-balanced sampling (positives drawn as often as `pos_share` of a batch),
  label smoothing, AdamW with warm-up + cosine LR, per-step augmentations aimed at
  camera/domain shift (`augment="full"`: flip, zoom/shift/roll, gain/contrast/
  tint, grey, blur, noise; `"light"`: flip, integer shift, gain/contrast, noise;
  `"flip"` for big inputs already jittered at render time by `models.augment`);
- the best epoch by validation window ROC AUC is kept; then the fall decision
  threshold that maximises clip-level F1 (`decision="clip_f1"`) or minimises
  wrong windows (`"window_errors"`, for the edge) on the validation split is
  folded into the net as a fall-logit bias, so argmax (p_fall >= 0.5) is the
  calibrated decision;
- deterministic for a seed and thread count (and, with `max_minutes`, for the
  epoch count the budget allowed); with `max_minutes` the number of epochs is
  re-planned after every epoch from the mean epoch time so the budget holds
  (after at least one epoch), and it says so.
Failure modes: `TrainingError` when a class is missing from the training split.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from models.errors import TrainingError
from models.metadata import InputSpec
from models.metrics import best_clip_threshold, best_window_threshold, clip_f1_at, roc_auc
from models.nets import EdgeNet, ExportWrapper

__all__ = ["TrainConfig", "TrainResult", "WindowSet", "default_spec", "train_video_model"]

log = logging.getLogger(__name__)
Role = Literal["edge", "cloud"]


def default_spec(role: Role) -> InputSpec:
    """Edge: 8 grey 64x64 frames, nearest resize. Cloud: `models.silhouette.silhouette_spec`."""
    if role == "edge":
        return InputSpec(frames=8, height=64, width=64, color="gray", fps=4.0, resample="nearest")
    from models.silhouette import silhouette_spec

    return silhouette_spec()


@dataclass
class WindowSet:
    """Labeled, model-ready windows for one model's input spec."""

    x: np.ndarray  # uint8 [N,C,T,H,W]
    y: np.ndarray  # int64 [N] window labels (window_label)
    clip: np.ndarray  # int64 [N] clip id
    clip_label: np.ndarray  # int64 [N] label of the window's clip (1 = fall clip)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, idx: np.ndarray) -> WindowSet:
        return WindowSet(self.x[idx], self.y[idx], self.clip[idx], self.clip_label[idx])


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-3
    seed: int = 0
    width: int = 16
    val_fraction: float = 0.15
    samples_per_epoch: int | None = None  # default: size of the training split
    pos_share: float = 0.35  # share of fall windows in each batch (balanced sampling)
    max_minutes: float | None = None
    threads: int = 1
    augment: Literal["full", "light", "flip", "none"] = "full"  # per-step augmentation
    tta_flip: bool = False  # cloud: average with the mirrored clip (also at export)
    # How the decision threshold is chosen on validation: best clip-level F1 (a model
    # deciding alone) or fewest wrong windows (the edge, whose windows the cloud fixes).
    decision: Literal["clip_f1", "window_errors"] = "clip_f1"
    progress: bool = True


@dataclass
class TrainResult:
    role: Role
    net: nn.Module
    spec: InputSpec
    config: TrainConfig
    threshold: float  # chosen on validation p_fall, folded into net.fall_bias
    val_clip_f1: float
    val_window_acc: float
    epochs_run: int
    seconds: float
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)


def build_net(role: Role, spec: InputSpec, width: int) -> nn.Module:
    if role != "edge":
        raise TrainingError("the cloud model trains in two stages: models.silhouette")
    return EdgeNet(frames=spec.frames, width=width)


def augment_batch(x: torch.Tensor, gen: torch.Generator, rgb: bool) -> torch.Tensor:
    """Random camera/domain changes on a float batch `[B,C,T,H,W]` in 0..1 (same for all frames)."""
    b, c, t, h, w = x.shape

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(shape or (b,), generator=gen)

    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip.view(b, 1, 1, 1, 1), x.flip(4), x)
    # Zoom, shift and roll: subject size and camera placement differ between sites.
    scale = torch.exp(u(-0.3, 0.3))
    ang = u(-8.0, 8.0) * math.pi / 180.0
    tx, ty = u(-0.15, 0.15), u(-0.15, 0.15)
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1
    )  # [B,2,3]
    grid = F.affine_grid(theta, [b, c * t, h, w], align_corners=False)
    x = F.grid_sample(x.reshape(b, c * t, h, w), grid, padding_mode="border", align_corners=False)
    x = x.reshape(b, c, t, h, w)
    if rgb:
        tint = 1.0 + u(-0.2, 0.2, b, 3).view(b, 3, 1, 1, 1)
        x = x * tint
        grey = torch.rand(b, generator=gen) < 0.35
        x = torch.where(grey.view(b, 1, 1, 1, 1), x.mean(1, keepdim=True).expand_as(x), x)
    gain = torch.exp(u(-0.6, 0.4)).view(b, 1, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)
    contrast = u(0.6, 1.3).view(b, 1, 1, 1, 1)
    x = (mean + (x - mean) * contrast) * gain
    blur = (torch.rand(b, generator=gen) < 0.4).view(b, 1, 1, 1, 1)
    blurred = F.avg_pool2d(x.reshape(b, c * t, h, w), 3, 1, 1, count_include_pad=False)
    x = torch.where(blur, blurred.reshape(b, c, t, h, w), x)
    sigma = u(0.0, 0.06).view(b, 1, 1, 1, 1)
    x = x + sigma * torch.randn(x.shape, generator=gen)
    return x.clamp(0.0, 1.0)


def light_augment(x: torch.Tensor, gen: torch.Generator, max_shift: int = 6) -> torch.Tensor:
    """Cheap per-step augmentation: mirror, integer shift, gain/contrast, noise."""
    b, c, t, h, w = x.shape
    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip.view(b, 1, 1, 1, 1), x.flip(4), x)
    padded = F.pad(x.reshape(b, c * t, h, w), (max_shift,) * 4, mode="replicate")
    off = torch.randint(0, 2 * max_shift + 1, (b, 2), generator=gen).tolist()
    x = torch.stack(
        [padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(off)]
    ).reshape(b, c, t, h, w)
    gain = torch.exp(torch.rand(b, generator=gen) * 0.9 - 0.6).view(b, 1, 1, 1, 1)
    contrast = (0.65 + 0.6 * torch.rand(b, generator=gen)).view(b, 1, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)
    x = (mean + (x - mean) * contrast) * gain
    sigma = (torch.rand(b, generator=gen) * 0.04).view(b, 1, 1, 1, 1)
    return (x + sigma * torch.randn(x.shape, generator=gen)).clamp(0.0, 1.0)


def _split_clips(clips: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of windows whose clip is in the validation split."""
    uniq = np.unique(clips)
    rng = np.random.default_rng(seed + 7919)
    n_val = max(1, round(len(uniq) * fraction)) if fraction > 0 else 0
    val_clips = rng.choice(uniq, size=n_val, replace=False) if n_val else np.array([])
    return np.isin(clips, val_clips)


def predict_probs(
    net: nn.Module, x: np.ndarray, spec: InputSpec, *, tta_flip: bool, batch: int = 64
) -> np.ndarray:
    """p_fall for uint8 inputs exactly as the exported model computes it."""
    wrapper = ExportWrapper(net, with_embedding=False, tta_flip=tta_flip).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(x[i : i + batch]).float() / spec.scale
            out.append(wrapper(xb)[0][:, 1].numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def _val_scores(
    net: nn.Module, val: WindowSet, spec: InputSpec, tta: bool
) -> tuple[float, float, float]:
    """(NLL, accuracy at 0.5, ROC AUC) of window predictions on the validation split."""
    p = np.clip(predict_probs(net, val.x, spec, tta_flip=tta), 1e-6, 1 - 1e-6)
    y = val.y
    nll = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    acc = float(np.mean((p >= 0.5) == (y == 1)))
    return nll, acc, roc_auc(p, y == 1)


def train_video_model(
    role: Role, data: WindowSet, spec: InputSpec, cfg: TrainConfig
) -> TrainResult:
    """Train, select the best epoch, fold the decision threshold in (see module docstring)."""
    torch.set_num_threads(max(1, cfg.threads))
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    is_val = _split_clips(data.clip, cfg.val_fraction, cfg.seed)
    train, val = data.subset(np.flatnonzero(~is_val)), data.subset(np.flatnonzero(is_val))
    if len(np.unique(train.y)) < 2:
        raise TrainingError(
            f"{role}: training split needs both classes, labels={np.unique(train.y)}"
        )
    net = build_net(role, spec, cfg.width)
    pos, neg = np.flatnonzero(train.y == 1), np.flatnonzero(train.y == 0)
    per_epoch = cfg.samples_per_epoch or len(train)
    steps = max(1, per_epoch // cfg.batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # Warm-up then cosine decay over `plan["epochs"]`; when a time budget is set the
    # plan shrinks after epoch 1 so the schedule still anneals before time runs out.
    plan = {"epochs": cfg.epochs}

    def lr_factor(step: int) -> float:
        total = max(1, steps * plan["epochs"])
        warm = max(1, int(0.1 * total))
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    n_pos = max(1, round(cfg.batch_size * cfg.pos_share))
    best_state: dict[str, torch.Tensor] | None = None
    best_key = math.inf  # lower is better
    history: list[dict[str, float]] = []
    t0 = time.monotonic()
    stopped_early = False
    epoch = 0
    while epoch < plan["epochs"]:
        epoch += 1
        net.train()
        total = 0.0
        desc = f"{role} epoch {epoch}/{plan['epochs']}"
        bar = tqdm(range(steps), desc=desc, disable=not cfg.progress)
        for _ in bar:
            idx = np.concatenate([rng.choice(pos, n_pos), rng.choice(neg, cfg.batch_size - n_pos)])
            xb = torch.from_numpy(train.x[idx]).float() / spec.scale
            if cfg.augment == "full":
                xb = augment_batch(xb, gen, rgb=spec.channels == 3)
            elif cfg.augment == "light":
                xb = light_augment(xb, gen)
            elif cfg.augment == "flip":
                flip = (torch.rand(len(idx), generator=gen) < 0.5).view(-1, 1, 1, 1, 1)
                xb = torch.where(flip, xb.flip(4), xb)
            yb = torch.from_numpy(train.y[idx]).long()
            logits, _ = net(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]  # torch stubs leave it untyped
            opt.step()
            sched.step()
            total += float(loss.detach())
            bar.set_postfix(loss=f"{total / (bar.n + 1):.3f}")
        net.eval()
        v_loss, v_acc, v_auc = (
            _val_scores(net, val, spec, cfg.tta_flip) if len(val) else (total, 0.0, -epoch)
        )
        history.append({"epoch": epoch, "train_loss": total / steps, "val_loss": v_loss,
                        "val_acc": v_acc, "val_auc": v_auc,
                        "elapsed_s": time.monotonic() - t0})  # fmt: skip
        print(f"[train] {role} epoch {epoch}: train_loss={total / steps:.4f} "
              f"val_loss={v_loss:.4f} val_acc={v_acc:.3f} val_auc={v_auc:.4f} "
              f"({time.monotonic() - t0:.0f}s)")  # fmt: skip
        # Select by ranking quality (AUC): training batches are class-balanced, so the
        # validation loss mostly measures calibration, which the threshold fixes later.
        if -v_auc < best_key:
            best_key = -v_auc
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        if cfg.max_minutes is not None:
            # Re-plan after every epoch from the mean epoch time so far: on a shared CPU
            # epochs slow down, and the budget must hold (the schedule is rescaled).
            epoch_s = (time.monotonic() - t0) / epoch
            fit = max(epoch, int(cfg.max_minutes * 60 / max(epoch_s, 1e-3)))
            if fit < plan["epochs"]:
                plan["epochs"] = fit
                stopped_early = True
                print(f"[train] {role}: time budget {cfg.max_minutes} min fits "
                      f"{plan['epochs']} of {cfg.epochs} epochs")  # fmt: skip
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    threshold, val_f1 = 0.5, float("nan")
    if len(val):
        p_val = predict_probs(net, val.x, spec, tta_flip=cfg.tta_flip)
        if cfg.decision == "clip_f1":
            threshold = best_clip_threshold(p_val, val.clip, val.clip_label)
        else:
            threshold = best_window_threshold(p_val, val.y)
        val_f1 = clip_f1_at(p_val, val.clip, val.clip_label, threshold)
    buf = net.get_buffer("fall_bias")
    buf.fill_(math.log((1.0 - threshold) / threshold))
    _, v_acc, _ = _val_scores(net, val, spec, cfg.tta_flip) if len(val) else (0, float("nan"), 0)
    secs = time.monotonic() - t0
    print(f"[train] {role}: threshold on validation p_fall = {threshold:.3f}, "
          f"val clip F1 = {val_f1:.3f}, val window acc = {v_acc:.3f}, {secs:.0f}s")  # fmt: skip
    return TrainResult(role, net, spec, cfg, threshold, val_f1, v_acc, epoch, secs,
                       stopped_early, history)  # fmt: skip
