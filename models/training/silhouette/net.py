"""The cloud model as two stages: per-frame silhouette perception, then a temporal classifier.

Why this shape: a small classifier on the generator's true posture over a 2 s window
scores held-out clip F1 0.99, while end-to-end video CNNs trained for minutes on a CPU
stayed near 0.75: they never learned to see the person (docs/MODEL_EXPERIMENTS.md). Dense
supervision teaches seeing far faster than one label per window, and the renderer knows
every pixel of the person. So:

1. `SilhouetteNet.segment`: a small encoder-decoder on each frame predicts, at 1/4
   resolution, the main person's silhouette and a heatmap for each of their joints in
   `models.dataset.KEYPOINTS` (trained on the generator's masks and joint positions:
   `models.dataset.ClipFrames`).
2. `frame_features`: differentiable geometry of those maps per frame: coverage, centroid,
   spread and tilt of the silhouette, and each joint's position (soft-argmax) and peak.
   Geometry only: appearance channels and silhouette profiles were tried and dropped.
3. `window_features` + `temporal`: per-window normalised tracks (joints relative to the
   window's pelvis in body lengths, the body axis, silhouette height and width relative to
   the window's largest, centroid drop) → dilated 1D convs over the window's frames →
   pooled embedding → fall logits.

Training (`train_silhouette_cloud`): stage A fits the segmenter on single frames with
per-step camera and photometric augmentation; stage B runs it once over every frame of the
training clips (and over a re-filmed copy of each clip: one random camera move, mirror
and re-lighting per clip), caches the per-frame features, and fits the temporal head on
windows cut from them (seconds per epoch), keeping the best epoch by validation window
AUC and folding the decision threshold into the logits. The exported graph is the whole
chain, input `[N,3,16,H,W]` in 0..1, outputs `probs` and `embedding`, like any cloud model.
Failure modes: `TrainingError` when a class is missing from the training split.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from models.dataset import KEYPOINTS, ClipFrames
from models.errors import TrainingError
from models.metadata import InputSpec
from models.metrics import best_clip_threshold, best_window_threshold, clip_f1_at, roc_auc
from models.preprocess import temporal_indices
from models.windows import WINDOW_FRAMES

__all__ = [
    "FeatureBanks",
    "SilhouetteConfig",
    "SilhouetteNet",
    "SilhouetteResult",
    "as_model_frames",
    "edge_silhouette_spec",
    "feature_banks",
    "fit_temporal_head",
    "head_scores",
    "load_segmenter",
    "native_bf16",
    "save_segmenter",
    "segmenter_has_motion",
    "silhouette_spec",
    "train_segmenter",
    "train_silhouette_cloud",
    "window_feature_bank",
    "window_inputs",
    "window_stack",
    "with_motion",
]

N_KEY = len(KEYPOINTS)
GEOM = 12  # silhouette geometry values per frame (see frame_features)
# Geometry only, no appearance: pooled appearance channels and silhouette profiles raised
# validation AUC but lowered held-out F1 (0.79 -> 0.52-0.75 at the validation threshold):
# they describe the training rooms, not the person (docs/MODEL_EXPERIMENTS.md).
FRAME_FEATURES = GEOM + 3 * N_KEY
WINDOW_EXTRA = 2 * N_KEY + 2 + 4  # per-window normalised tracks added by window_features
TARGET_STRIDE = 4
_HEAD, _PELVIS = KEYPOINTS.index("head"), KEYPOINTS.index("pelvis")
_ANKLES = (KEYPOINTS.index("ankle_l"), KEYPOINTS.index("ankle_r"))


def silhouette_spec() -> InputSpec:
    """The cloud: 16 RGB frames at 96x128 (the 4:3 of our cameras), area resize."""
    return InputSpec(frames=16, height=96, width=128, color="rgb", fps=8.0, resample="box")


def edge_silhouette_spec() -> InputSpec:
    """The edge: 8 grey frames (4 fps) at 48x64, area resize: a quarter of the cloud's
    pixels, half its frames, one channel; its size divides the cloud's, so both train on
    the same rendered frames."""
    return InputSpec(frames=8, height=48, width=64, color="gray", fps=4.0, resample="box")


def _cbr(cin: int, cout: int, k: int = 3, s: int = 1, d: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=s, padding=d * (k // 2), dilation=d, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def with_motion(frames: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Frames (channels in dim 1, 0..1) with the motion channels appended: each frame minus
    the mean of its window's frames (`background`, broadcast), offset to 0.5.

    The cameras are fixed, so what differs from the window's mean is what moved: the person
    falling, whatever the room looks like. The segmenter sees the room it has never seen
    and, beside it, where something moved (docs/MODEL_EXPERIMENTS.md, session 7)."""
    return torch.cat([frames, (frames - background + 0.5).clamp(0.0, 1.0)], dim=1)


class TemporalHead(nn.Module):
    """One temporal classifier on window tracks (`SilhouetteNet.window_features`): dilated
    1D convs → mean- and max-pooled embedding → fall logits, plus its own `fall_bias`, the
    decision threshold picked on validation and folded in (argmax = the calibrated decision)."""

    def __init__(self, nin: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(nin)
        self.temporal = nn.Sequential(
            nn.Conv1d(nin, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, 3, padding=2, dilation=2),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, 3, padding=4, dilation=4),
            nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(2 * hidden, 2)
        self.register_buffer("fall_bias", torch.zeros(()))

    def _one(self, tracks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.temporal(self.norm(tracks))
        emb = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
        logits: torch.Tensor = self.head(self.dropout(emb))
        return logits, emb

    def forward(
        self, tracks: torch.Tensor, mirrored: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Window tracks `[N,F,T]` (and those of the mirrored frames) → (logits `[N,2]` with
        the fall bias, embedding); with `mirrored`, both views are averaged before the bias
        is added, so the folded threshold means the same with and without mirroring."""
        logits, emb = self._one(tracks)
        if mirrored is not None:
            logits_m, emb_m = self._one(mirrored)
            logits, emb = 0.5 * (logits + logits_m), 0.5 * (emb + emb_m)
        bias = self.get_buffer("fall_bias")
        return logits + torch.stack([torch.zeros_like(bias), bias]), emb


class SilhouetteNet(nn.Module):
    """Per-frame perception + geometry + temporal classifier(s); `forward` → (logits, embedding).

    With `heads` > 1 the temporal stage is an ensemble: each head is fitted with its own
    initialisation and batches and folds its own threshold; logits and embeddings are
    averaged, so the decision is the heads' mean margin over their thresholds."""

    def __init__(
        self, width: int = 16, hidden: int = 64, in_channels: int = 3, tta_flip: bool = False,
        motion: bool = False, heads: int = 1,
    ) -> None:  # fmt: skip
        super().__init__()
        self.width = w = width
        self.in_channels = in_channels
        self.tta_flip = tta_flip  # average with the mirrored clip at inference
        # Also show the segmenter each frame minus its window's mean (`with_motion`).
        self.motion = motion
        self.enc1 = _cbr(in_channels * (2 if motion else 1), w, s=2)  # 1/2
        self.enc2 = nn.Sequential(_cbr(w, 2 * w, s=2), _cbr(2 * w, 2 * w))  # 1/4
        self.enc3 = nn.Sequential(_cbr(2 * w, 3 * w, s=2), _cbr(3 * w, 3 * w, d=2))  # 1/8
        self.enc4 = nn.Sequential(_cbr(3 * w, 4 * w, s=2), _cbr(4 * w, 4 * w))  # 1/16: context
        self.fuse3 = _cbr(7 * w, 3 * w, k=1)
        self.fuse = nn.Sequential(_cbr(5 * w, 2 * w, k=1), _cbr(2 * w, 2 * w))
        self.maps = nn.Conv2d(2 * w, 1 + N_KEY, 1)  # silhouette logit, one heatmap per joint
        if heads < 1:
            raise ValueError(f"SilhouetteNet: heads must be >= 1, got {heads}")
        nin = FRAME_FEATURES + WINDOW_EXTRA
        self.heads = nn.ModuleList([TemporalHead(nin, hidden) for _ in range(heads)])

    # -- stage 1: per-frame maps ---------------------------------------------------------
    def segment(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames `[B,C,H,W]` in 0..1 → map logits `[B,1+K,H/4,W/4]`; with `motion`, `C` is
        twice the model's channels (`with_motion`)."""
        e2 = self.enc2(self.enc1(frames - 0.5))
        e3 = self.enc3(e2)
        e3 = self.fuse3(torch.cat([e3, _up(self.enc4(e3))], dim=1))
        out: torch.Tensor = self.maps(self.fuse(torch.cat([e2, _up(e3)], dim=1)))
        return out

    # -- stage 2: geometry per frame -----------------------------------------------------
    @staticmethod
    def frame_features(maps: torch.Tensor) -> torch.Tensor:
        """Map logits → `[B, FRAME_FEATURES]` (coordinates in 0..1 of the frame).

        Order: 12 silhouette values (coverage, log coverage, centroid x/y, spread x/y, x-y
        correlation, log aspect, peak, the centroid's offset from the pelvis estimate x/y,
        head-to-centroid height in spreads), then per joint its soft-argmax x, y and peak.
        """
        _, k1, h, w = maps.shape
        m = torch.sigmoid(maps[:, 0])
        eps = 1e-4
        mass = m.sum(dim=(1, 2)) + eps
        xs = (torch.arange(w, dtype=m.dtype) + 0.5) / w
        ys = (torch.arange(h, dtype=m.dtype) + 0.5) / h
        col = m.sum(dim=1)  # [B,w]
        row = m.sum(dim=2)  # [B,h]
        cx = (col * xs).sum(1) / mass
        cy = (row * ys).sum(1) / mass
        dx = xs.view(1, 1, w) - cx.view(-1, 1, 1)
        dy = ys.view(1, h, 1) - cy.view(-1, 1, 1)
        sx = torch.sqrt((m * dx * dx).sum(dim=(1, 2)) / mass + eps)
        sy = torch.sqrt((m * dy * dy).sum(dim=(1, 2)) / mass + eps)
        corr = (m * dx * dy).sum(dim=(1, 2)) / mass / (sx * sy)
        heat = torch.softmax(maps[:, 1:].reshape(-1, k1 - 1, h * w), dim=2).reshape(-1, k1 - 1, h, w)
        kx = (heat.sum(2) * xs).sum(2)  # [B,K]
        ky = (heat.sum(3) * ys).sum(2)
        peak = heat.reshape(-1, k1 - 1, h * w).amax(dim=2) * (h * w) / 100.0
        area = mass / (h * w)
        geom = torch.stack(
            [area, torch.log(area + 1e-3), cx, cy, sx, sy, corr, torch.log(sy / sx),
             m.amax(dim=(1, 2)), cx - kx[:, _PELVIS], cy - ky[:, _PELVIS],
             (ky[:, _HEAD] - cy) / sy],
            dim=1,
        )  # fmt: skip
        return torch.cat([geom, kx, ky, peak], dim=1)

    # -- stage 3: the window -------------------------------------------------------------
    @staticmethod
    def window_features(per_frame: torch.Tensor) -> torch.Tensor:
        """`[N,T,FRAME_FEATURES]` → `[N,FRAME_FEATURES+WINDOW_EXTRA,T]`, adding tracks in the
        window's own scale, so a near and a far camera see the same fall the same way: every
        joint relative to the window's mean pelvis over the body's longest head-to-ankle
        extent in the window, the body axis (head minus ankles) in that unit, and the
        silhouette's height and width over their window maxima, centroid drop in spreads."""
        base = GEOM
        kx = per_frame[..., base : base + N_KEY]
        ky = per_frame[..., base + N_KEY : base + 2 * N_KEY]
        ank_x = 0.5 * (kx[..., _ANKLES[0]] + kx[..., _ANKLES[1]])
        ank_y = 0.5 * (ky[..., _ANKLES[0]] + ky[..., _ANKLES[1]])
        ax, ay = kx[..., _HEAD] - ank_x, ky[..., _HEAD] - ank_y  # [N,T]
        ext = torch.sqrt(ax * ax + ay * ay + 1e-6).amax(dim=1, keepdim=True) + 1e-2  # [N,1]
        px = kx[..., _PELVIS].mean(dim=1, keepdim=True)
        py = ky[..., _PELVIS].mean(dim=1, keepdim=True)
        rel_x = (kx - px.unsqueeze(2)) / ext.unsqueeze(2)
        rel_y = (ky - py.unsqueeze(2)) / ext.unsqueeze(2)
        sx, sy, cy = per_frame[..., 4], per_frame[..., 5], per_frame[..., 3]
        body = sy.mean(dim=1, keepdim=True)
        sil = torch.stack(
            [sy / sy.amax(dim=1, keepdim=True), sx / sx.amax(dim=1, keepdim=True),
             (cy - cy[:, :1]) / body, (cy - cy.mean(dim=1, keepdim=True)) / body],
            dim=2,
        )  # fmt: skip
        axis = torch.stack([ax / ext, ay / ext], dim=2)
        return torch.cat([per_frame, rel_x, rel_y, axis, sil], dim=2).transpose(1, 2)

    def classify(
        self, per_frame: torch.Tensor, mirrored: torch.Tensor | None = None,
        heads: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Per-frame features `[N,T,F]` → (logits `[N,2]` with the fall biases, embedding),
        averaged over the heads (`heads`: only those, for fitting one at a time).

        With `mirrored` (the features of the mirrored frames) each head averages both views
        before its bias is added (`TemporalHead.forward`)."""
        tracks = self.window_features(per_frame)
        tracks_m = None if mirrored is None else self.window_features(mirrored)
        picked = range(len(self.heads)) if heads is None else heads
        outs: list[tuple[torch.Tensor, torch.Tensor]] = [self.heads[k](tracks, tracks_m)
                                                         for k in picked]  # fmt: skip
        if len(outs) == 1:
            return outs[0]
        logits = torch.stack([o[0] for o in outs]).mean(dim=0)
        emb = torch.stack([o[1] for o in outs]).mean(dim=0)
        return logits, emb

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.motion:
            x = with_motion(x, x.mean(dim=2, keepdim=True))
        n, c, t, hh, ww = x.shape
        frames = x.transpose(1, 2).reshape(n * t, c, hh, ww)
        if not self.tta_flip:
            return self.classify(self.frame_features(self.segment(frames)).reshape(n, t, -1))
        both = self.frame_features(self.segment(torch.cat([frames, frames.flip(3)])))
        per_frame, mirrored = both.reshape(2, n, t, -1).unbind(0)
        return self.classify(per_frame, mirrored)


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


_PERMUTATIONS = torch.tensor([[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])


def _uniform(b: int, gen: torch.Generator) -> Callable[..., torch.Tensor]:
    """`u(lo, hi, *shape)`: uniform draws from `gen`, shape `(b,)` unless given."""

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(shape or (b,), generator=gen)

    return u


def _photometric(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per-sample colour-channel shuffle, per-channel gamma, exposure, contrast, tint, grey,
    blur, a low-resolution round trip and noise on `[B,3,H,W]` in 0..1: clothes, walls and
    cameras of colours and qualities the renderer's training preset never drew."""
    b = x.shape[0]
    u = _uniform(b, gen)
    perm = _PERMUTATIONS[torch.randint(0, 6, (b,), generator=gen)]  # [B,3]
    x = torch.gather(x, 1, perm.view(b, 3, 1, 1).expand_as(x))
    x = x.clamp_min(1e-4) ** torch.exp(u(-0.3, 0.3, b, 3)).view(b, 3, 1, 1)
    x = x * (1.0 + u(-0.2, 0.2, b, 3)).view(b, 3, 1, 1)
    grey = (torch.rand(b, generator=gen) < 0.35).view(b, 1, 1, 1)
    x = torch.where(grey, x.mean(1, keepdim=True).expand_as(x), x)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (mean + (x - mean) * u(0.5, 1.3).view(b, 1, 1, 1)) * torch.exp(u(-0.8, 0.45)).view(b, 1, 1, 1)
    # Blur and the low-resolution round trip are computed for the picked samples only (a
    # stage-A step's cost matters: its budget is in minutes).
    blur = torch.nonzero(torch.rand(b, generator=gen) < 0.4).flatten()
    if len(blur):
        x[blur] = F.avg_pool2d(x[blur], 3, 1, 1, count_include_pad=False)
    coarse = torch.nonzero(torch.rand(b, generator=gen) < 0.25).flatten()
    if len(coarse):
        x[coarse] = F.interpolate(F.avg_pool2d(x[coarse], 2), scale_factor=2.0, mode="nearest")
    x = x + u(0.0, 0.07).view(b, 1, 1, 1) * torch.randn(x.shape, generator=gen)
    return x.clamp(0.0, 1.0)


def _texture(b: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    """Random procedural backgrounds `[B,3,H,W]`: checkerboards, stripes at any angle and
    smooth gradients in random colours, each with noise: surfaces no training room has."""
    u = _uniform(b, gen)
    ys = torch.linspace(0.0, 1.0, h).view(1, h, 1)
    xs = torch.linspace(0.0, 1.0, w).view(1, 1, w)
    ang = u(0.0, math.pi).view(b, 1, 1)
    along = xs * torch.cos(ang) + ys * torch.sin(ang)
    across = -xs * torch.sin(ang) + ys * torch.cos(ang)
    freq = torch.exp(u(math.log(2.0), math.log(24.0))).view(b, 1, 1)
    bands = torch.floor(along * freq)
    checker = (bands + torch.floor(across * freq)) % 2
    stripes = bands % 2
    kind = torch.randint(0, 3, (b, 1, 1), generator=gen)
    pattern = torch.where(kind == 0, checker, torch.where(kind == 1, stripes, along.clamp(0, 1)))
    c0, c1 = u(0.0, 1.0, b, 3, 1, 1), u(0.0, 1.0, b, 3, 1, 1)
    img = c0 + (c1 - c0) * pattern.unsqueeze(1)
    return (img + 0.05 * torch.randn(img.shape, generator=gen)).clamp(0.0, 1.0)


def _swap_background(
    x: torch.Tensor, tgt: torch.Tensor, gen: torch.Generator, prob: float
) -> torch.Tensor:
    """With probability `prob` per frame, keep the main person (the target silhouette,
    upsampled and softened) and replace everything else: by a procedural texture or by
    another frame of the batch (another room, its own person smudged out). Teaches the
    segmenter the person, not the rooms it was rendered in. Only the swapped frames are
    computed on (a step's cost matters: stage A is time-budgeted)."""
    b, _, h, w = x.shape
    idx = torch.nonzero(torch.rand(b, generator=gen) < prob).flatten()
    if len(idx) == 0:
        return x
    n = len(idx)

    def person(frames: torch.Tensor) -> torch.Tensor:
        m = F.interpolate(tgt[frames, :1], size=(h, w), mode="bilinear", align_corners=False)
        return ((m - 0.15) / 0.5).clamp(0.0, 1.0)

    m = person(idx)
    # Another frame's room with its own person smudged out: no unlabelled person appears.
    donor = (idx + 1) % b
    other, other_m = x[donor], person(donor)
    smudge = F.interpolate(F.avg_pool2d(other, 12), size=(h, w), mode="bilinear",
                           align_corners=False)  # fmt: skip
    bg = other * (1.0 - other_m) + smudge * other_m
    use_tex = torch.nonzero(torch.rand(n, generator=gen) < 0.5).flatten()
    if len(use_tex):
        # Drawn at half size and upsampled: the pattern's scale is what matters, not its pixels.
        tex = _texture(len(use_tex), h // 2, w // 2, gen)
        bg[use_tex] = F.interpolate(tex, size=(h, w), mode="nearest")
    out = x.clone()
    out[idx] = m * x[idx] + (1.0 - m) * bg
    return out


def _affine(b: int, gen: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """Random mirror + zoom (0.7-1.4x) + shift + roll as `[B,2,3]` sampling matrices."""
    u = _uniform(b, gen)
    scale = torch.exp(u(-0.35, 0.35) * strength)
    ang = u(-8.0, 8.0) * strength * math.pi / 180.0
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    tx, ty = u(-0.2, 0.2) * strength, u(-0.2, 0.2) * strength
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    return torch.stack(
        [torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1
    )


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def _warp_targets(t: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(t.shape), align_corners=False)
    return F.grid_sample(t, grid, padding_mode="zeros", align_corners=False)


def _seg_loss(maps: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Silhouette: BCE + soft Dice; joints: cross-entropy of each spatial softmax against its
    Gaussian, over the joints inside the frame."""
    b, k1 = maps.shape[:2]
    m_logit, m_true = maps[:, 0], target[:, 0]
    bce = F.binary_cross_entropy_with_logits(m_logit, m_true, pos_weight=torch.tensor(3.0))
    p = torch.sigmoid(m_logit)
    inter = (p * m_true).sum(dim=(1, 2))
    dice = 1.0 - (2 * inter + 1.0) / (p.sum(dim=(1, 2)) + m_true.sum(dim=(1, 2)) + 1.0)
    heat = target[:, 1:].reshape(b * (k1 - 1), -1)
    has = heat.sum(1) > 0.5
    joints = torch.zeros(())
    if bool(has.any()):
        q = heat[has] / heat[has].sum(1, keepdim=True)
        logq = torch.log_softmax(maps[:, 1:].reshape(b * (k1 - 1), -1)[has], dim=1)
        joints = -(q * logq).sum(1).mean()
    return bce + dice.mean() + 0.3 * joints


def _split_clips(clips: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of windows whose clip is in the validation split (seeded, whole clips)."""
    uniq = np.unique(clips)
    rng = np.random.default_rng(seed + 7919)
    n_val = max(1, round(len(uniq) * fraction)) if fraction > 0 else 0
    val_clips = rng.choice(uniq, size=n_val, replace=False) if n_val else np.array([])
    return np.isin(clips, val_clips)


def as_model_frames(x: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """RGB frames `[B,3,H,W]` (0..1, at the data's size) → the model's size and colour.

    Area-averages down to `spec` (ClipFrames are rendered at the cloud's size; the edge's
    size divides it) and takes ITU-R 601 luma for grey models, as preprocessing does.
    """
    if tuple(x.shape[-2:]) != (spec.height, spec.width):
        x = F.adaptive_avg_pool2d(x, (spec.height, spec.width))
    if spec.channels == 1:
        x = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    return x


def _window_means(data: ClipFrames, spec: InputSpec, windows: np.ndarray) -> np.ndarray:
    """uint8 `[len(windows),3,H,W]`: per window, the mean of the frames the model sees
    (`spec.frames` of the 16), at the data's size: stage A's reference for the motion channels."""
    offsets = temporal_indices(WINDOW_FRAMES, spec.frames)
    out = np.empty((len(windows), *data.x.shape[1:]), dtype=np.uint8)
    for i, f in enumerate(data.first[windows]):
        out[i] = np.rint(data.x[f + offsets].mean(axis=0, dtype=np.float32))
    return out


def native_bf16() -> bool:
    """True when oneDNN has fast bfloat16 kernels on this CPU (AVX-512 and newer: native
    with AVX512-BF16 or AMX); elsewhere autocast would be slower than float32."""
    try:
        available = torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]
        return bool(available and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _train_segmenter(
    net: SilhouetteNet, data: ClipFrames, train_frames: np.ndarray, spec: InputSpec,
    cfg: SilhouetteConfig, gen: torch.Generator, rng: np.random.Generator,
) -> tuple[int, float, str]:  # fmt: skip
    """Stage A: fit the segmenter on single frames; returns (steps, seconds, the forward
    pass's precision: "bfloat16" or "float32")."""
    out_hw = (spec.height // TARGET_STRIDE, spec.width // TARGET_STRIDE)
    seg_params = [p for n, p in net.named_parameters()
                  if n.split(".")[0] in _SEGMENTER_PARTS]  # fmt: skip
    opt = torch.optim.AdamW(seg_params, lr=cfg.lr, weight_decay=1e-4)
    plan = {"steps": cfg.seg_steps}

    def lr_factor(step: int) -> float:
        warm = 100
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, plan["steps"] - warm))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    bf16 = cfg.bf16 and native_bf16()
    forward = "bfloat16" if bf16 else "float32"
    net.train()
    t0 = time.monotonic()
    bar = tqdm(total=plan["steps"], desc=f"{cfg.role} segmenter", disable=not cfg.progress)
    step, running = 0, 0.0
    if net.motion:  # a frame and its window: the window's mean is the motion channels' reference
        train_windows = np.flatnonzero(np.isin(data.first, train_frames))
        means = _window_means(data, spec, train_windows)
        offsets = temporal_indices(WINDOW_FRAMES, spec.frames)
    while step < plan["steps"]:
        if not net.motion:
            idx = np.sort(rng.choice(train_frames, cfg.seg_batch, replace=False))
        else:
            pick = rng.integers(0, len(train_windows), cfg.seg_batch)
            win = train_windows[pick]
            idx = data.first[win] + offsets[rng.integers(0, len(offsets), cfg.seg_batch)]
        x = torch.from_numpy(data.x[idx]).float() / 255.0
        tgt = torch.from_numpy(data.target[idx]).float() / 255.0
        if cfg.bg_swap > 0:
            x = _swap_background(x, tgt, gen, cfg.bg_swap)
        theta = _affine(len(idx), gen)
        if not net.motion:
            x = as_model_frames(_photometric(_warp(x, theta), gen), spec)
        else:
            # Frame and mean side by side through one photometric draw: one camera's look.
            bg = torch.from_numpy(means[pick]).float() / 255.0
            c = x.shape[1]
            warped = _warp(torch.cat([x, bg], dim=1), theta)  # one resampling for both
            both = _photometric(torch.cat([warped[:, :c], warped[:, c:]], dim=3), gen)
            x, bg = both[..., : x.shape[3]], both[..., x.shape[3] :]
            x = with_motion(as_model_frames(x, spec), as_model_frames(bg, spec))
        tgt = _warp_targets(tgt, theta)
        if tuple(tgt.shape[-2:]) != out_hw:
            tgt = F.adaptive_avg_pool2d(tgt, out_hw)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            maps = net.segment(x)
        loss = _seg_loss(maps.float(), tgt)
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]  # torch stubs leave it untyped
        opt.step()
        sched.step()
        step += 1
        value = float(loss.detach())
        running = 0.98 * running + 0.02 * value if step > 1 else value
        bar.update(1)
        bar.set_postfix(loss=f"{running:.3f}")
        if step % 200 == 0:
            # Re-plan the step count from the pace so far (up or down, never past the cap) so
            # the cosine schedule ends when the time budget does on a shared, noisy CPU.
            pace = (time.monotonic() - t0) / step
            plan["steps"] = min(cfg.seg_steps, max(step + 1, int(cfg.seg_minutes * 60 / pace)))
            bar.total = plan["steps"]
    bar.close()
    secs = time.monotonic() - t0
    print(f"[train] {cfg.role} segmenter: {step} steps of {cfg.seg_batch} frames, loss {running:.3f}, "
          f"{secs:.0f}s, {forward} forward")  # fmt: skip
    return step, secs, forward


def frame_feature_bank(
    net: SilhouetteNet, x: np.ndarray, spec: InputSpec, *, theta: torch.Tensor | None = None,
    photometric: torch.Generator | None = None, mirror: bool = False, batch: int = 64,
    progress: bool = False,
) -> np.ndarray:  # fmt: skip
    """Per-frame features `[F, FRAME_FEATURES]` of uint8 RGB frames `[F,3,H,W]` (eval mode),
    brought to the model's size and colour by `as_model_frames`.

    `theta` (`[F,2,3]`) warps each frame first and `photometric` jitters it: a camera
    moved and re-lit, the same for every frame of a clip when the caller repeats rows.
    """
    out = np.empty((len(x), FRAME_FEATURES), dtype=np.float32)
    net.eval()
    with torch.no_grad():
        for i in tqdm(range(0, len(x), batch), desc="features", disable=not progress):
            xb = torch.from_numpy(x[i : i + batch]).float() / 255.0
            if theta is not None:
                xb = _warp(xb, theta[i : i + batch])
            if photometric is not None:
                xb = _photometric(xb, photometric)
            if mirror:
                xb = xb.flip(3)
            maps = net.segment(as_model_frames(xb, spec))
            out[i : i + len(xb)] = net.frame_features(maps).numpy()
    return out


def window_inputs(
    net: SilhouetteNet, data: ClipFrames, spec: InputSpec, windows: np.ndarray, *,
    theta: torch.Tensor | None = None, photometric: torch.Generator | None = None,
    mirror: bool = False,
) -> torch.Tensor:  # fmt: skip
    """What `net.segment` sees for every frame of `windows`: `[len(windows) * T, C, h, w]`,
    window-major, with the motion channels of each window when `net.motion`.

    `theta` (`[len(windows),2,3]`) warps every frame of a window alike and `photometric`
    re-lights a window as one picture (its frames side by side), so the motion channels see
    a moved camera, not per-frame flicker.
    """
    offsets = temporal_indices(WINDOW_FRAMES, spec.frames)
    b, t = len(windows), len(offsets)
    xb = torch.from_numpy(data.x[(data.first[windows][:, None] + offsets).ravel()]).float() / 255.0
    if theta is not None:
        xb = _warp(xb, theta.repeat_interleave(t, dim=0))
    if photometric is not None:
        c, h, wd = xb.shape[1:]
        tiled = xb.view(b, t, c, h, wd).permute(0, 2, 3, 1, 4).reshape(b, c, h, t * wd)
        tiled = _photometric(tiled, photometric)
        xb = tiled.view(b, c, h, t, wd).permute(0, 3, 1, 2, 4).reshape(b * t, c, h, wd)
    if mirror:
        xb = xb.flip(3)
    xb = as_model_frames(xb, spec)
    if net.motion:
        mean = xb.view(b, t, *xb.shape[1:]).mean(dim=1)
        xb = with_motion(xb, mean.repeat_interleave(t, dim=0))
    return xb


def window_feature_bank(
    net: SilhouetteNet, data: ClipFrames, spec: InputSpec, *, windows: np.ndarray | None = None,
    theta: torch.Tensor | None = None, photometric: torch.Generator | None = None,
    mirror: bool = False, batch: int = 4, progress: bool = False,
) -> np.ndarray:  # fmt: skip
    """Per-frame features `[N, spec.frames, FRAME_FEATURES]` of whole windows (`windows`,
    default all), for nets whose frames depend on their window (`motion`): each window's
    frames are seen with their own window's mean, as the exported model sees them.
    `theta` has one row per window; see `window_inputs`.
    """
    rows = np.arange(len(data.first)) if windows is None else windows
    t = spec.frames
    out = np.empty((len(rows), t, FRAME_FEATURES), dtype=np.float32)
    net.eval()
    with torch.no_grad():
        for i in tqdm(range(0, len(rows), batch), desc="features", disable=not progress):
            w = rows[i : i + batch]
            th = None if theta is None else theta[i : i + batch]
            xb = window_inputs(net, data, spec, w, theta=th, photometric=photometric,
                               mirror=mirror)  # fmt: skip
            maps = net.segment(xb)
            out[i : i + len(w)] = net.frame_features(maps).view(len(w), t, -1).numpy()
    return out


def _clip_thetas(frame_clip: np.ndarray, gen: torch.Generator) -> torch.Tensor:
    """One random camera change per clip, repeated for each of its frames."""
    clips, inverse = np.unique(frame_clip, return_inverse=True)
    per_clip = _affine(len(clips), gen, strength=0.8)
    return per_clip[torch.from_numpy(inverse)]


def window_stack(bank: np.ndarray, first: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Windows `[N,T,F]` cut from a per-frame bank: of each canonical 16-frame window that
    starts at `first`, the frames preprocessing picks for `spec` (`temporal_indices`)."""
    offsets = temporal_indices(WINDOW_FRAMES, spec.frames)
    out: np.ndarray = bank[first[:, None] + offsets[None, :]]
    return out


def _windows_of(bank: np.ndarray, data: ClipFrames, spec: InputSpec,
                rows: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Windows `rows` (default all) `[n,T,F]` of a bank: cut from a per-frame bank
    (`frame_feature_bank`) or picked from a window-major one (`window_feature_bank`)."""
    if bank.ndim == 3:
        return bank if rows is None else bank[rows]
    return window_stack(bank, data.first if rows is None else data.first[rows], spec)


def head_scores(
    net: SilhouetteNet, feats: np.ndarray, mirrored: np.ndarray | None = None, batch: int = 512,
    heads: Sequence[int] | None = None,
) -> np.ndarray:  # fmt: skip
    """p_fall of windows of per-frame features `[N,T,F]` (with the folded biases, if any),
    averaged with their mirrored frames' features when given (test-time mirroring), from
    every head or only `heads`."""
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(feats), batch):
            m = None if mirrored is None else torch.from_numpy(mirrored[i : i + batch])
            logits, _ = net.classify(torch.from_numpy(feats[i : i + batch]), m, heads)
            out.append(torch.softmax(logits, dim=1)[:, 1].numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


@dataclass
class FeatureBanks:
    """Per-frame features `[F, FRAME_FEATURES]` of every frame as filmed and re-filmed (one
    random camera change and re-lighting per clip); with test-time mirroring also of the
    mirrored frames (`*_mirror`, filled for the validation clips' frames only). For motion
    nets the banks are window-major, `[N, T, FRAME_FEATURES]` (`window_feature_bank`)."""

    filmed: np.ndarray
    refilmed: np.ndarray
    filmed_mirror: np.ndarray | None = None
    refilmed_mirror: np.ndarray | None = None


def feature_banks(
    net: SilhouetteNet, data: ClipFrames, spec: InputSpec, cfg: SilhouetteConfig,
    gen: torch.Generator,
) -> FeatureBanks:  # fmt: skip
    """The banks `fit_temporal_head` reads, from the trained per-frame stage of `net`: per
    frame (`frame_feature_bank`), or per window for motion nets (`window_feature_bank`: a
    frame's motion channels depend on its window). One camera change per clip."""
    for p in net.parameters():
        p.requires_grad_(False)
    net.eval()
    owner = data.clip if net.motion else data.frame_clip  # the clip of each bank row
    thetas = _clip_thetas(owner, gen)
    photo_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))

    def bank(rows: np.ndarray | None, *, refilm: bool, mirror: bool) -> np.ndarray:
        # Re-filming re-seeds the photometric draws, so the plain and the mirrored pass over
        # the same rows get the same re-lighting (draws follow batch order).
        th = photo = None
        if refilm:
            th = thetas if rows is None else thetas[torch.from_numpy(rows)]
            photo = torch.Generator().manual_seed(photo_seed)
        if net.motion:
            return window_feature_bank(net, data, spec, windows=rows, theta=th,
                                       photometric=photo, mirror=mirror, progress=cfg.progress)
        x = data.x if rows is None else data.x[rows]
        return frame_feature_bank(net, x, spec, theta=th, photometric=photo, mirror=mirror,
                                  progress=cfg.progress)  # fmt: skip

    banks = FeatureBanks(bank(None, refilm=False, mirror=False),
                         bank(None, refilm=True, mirror=False))  # fmt: skip
    if net.tta_flip:  # mirrored banks for the validation clips only: they pick the threshold
        val_clips = np.unique(data.clip[_split_clips(data.clip, cfg.val_fraction, cfg.seed)])
        rows = np.flatnonzero(np.isin(owner, val_clips))
        banks.filmed_mirror = np.zeros_like(banks.filmed)
        banks.refilmed_mirror = np.zeros_like(banks.filmed)
        banks.filmed_mirror[rows] = bank(rows, refilm=False, mirror=True)
        banks.refilmed[rows] = bank(rows, refilm=True, mirror=False)
        banks.refilmed_mirror[rows] = bank(rows, refilm=True, mirror=True)
    return banks


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
    is_val = _split_clips(data.clip, cfg.val_fraction, cfg.seed)
    train_w, val_w = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if len(np.unique(data.y[train_w])) < 2:
        raise TrainingError(f"{cfg.role}: training split needs both classes")
    n = len(data.y)
    val_mirror = None
    if banks.filmed_mirror is not None and banks.refilmed_mirror is not None:
        val_mirror = np.concatenate([_windows_of(banks.filmed_mirror, data, spec, val_w),
                                     _windows_of(banks.refilmed_mirror, data, spec, val_w)])
    # Validation scores both the clips as filmed and re-filmed: the threshold must hold
    # on cameras the training never saw, not just on the training preset's look.
    return _StageB(
        feats=np.concatenate([_windows_of(banks.filmed, data, spec),
                              _windows_of(banks.refilmed, data, spec)]),
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
    """`_train_segmenter` on the frames of the training split's clips."""
    val_clips = np.unique(data.clip[_split_clips(data.clip, cfg.val_fraction, cfg.seed)])
    train_frames = np.flatnonzero(~np.isin(data.frame_clip, val_clips))
    return _train_segmenter(net, data, train_frames, spec, cfg, gen, rng)


_SEGMENTER_PARTS = ("enc1", "enc2", "enc3", "enc4", "fuse3", "fuse", "maps")


def save_segmenter(net: SilhouetteNet, path: Path, *, model_sha256: str = "") -> None:
    """The per-frame stage's weights as a plain .npz (no pickle), for head-only retraining.

    Stamped with the net's width (`__width__`), whether it reads motion channels
    (`__motion__`) and the sha256 of the ONNX model (edge or cloud) exported from the same
    net (`__model_sha256__`); `load_segmenter` skips the stamps."""
    arrays = {k: v.detach().numpy() for k, v in net.state_dict().items()
              if k.split(".")[0] in _SEGMENTER_PARTS}  # fmt: skip
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays, __width__=np.array(net.width), __motion__=np.array(net.motion),
             __model_sha256__=np.array(model_sha256))  # fmt: skip
    tmp.replace(path)


def segmenter_has_motion(path: Path) -> bool:
    """Whether a `save_segmenter` file reads motion channels (files without the stamp do not)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return bool(z["__motion__"]) if "__motion__" in z.files else False
    except (OSError, ValueError) as exc:
        raise TrainingError(f"cannot read segmenter weights {path}: {exc}") from exc


def load_segmenter(net: SilhouetteNet, path: Path) -> None:
    """Load `save_segmenter` weights into `net`; TrainingError when they do not fit."""
    try:
        with np.load(path, allow_pickle=False) as z:
            state = {k: torch.from_numpy(z[k]) for k in z.files if not k.startswith("__")}
    except (OSError, ValueError) as exc:
        raise TrainingError(f"cannot read segmenter weights {path}: {exc}") from exc
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch: another width
        raise TrainingError(f"segmenter {path} does not fit this net: {exc}") from exc
    seg_missing = [k for k in missing if k.split(".")[0] in _SEGMENTER_PARTS]
    if seg_missing or unexpected:
        raise TrainingError(f"segmenter {path} does not fit this net: missing {seg_missing[:3]}, "
                            f"unexpected {unexpected[:3]}")  # fmt: skip
