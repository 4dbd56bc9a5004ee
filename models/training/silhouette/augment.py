"""Training-time augmentation of rendered frames (torch, seeded by a `torch.Generator`).

- `photometric`: colour-channel shuffle, gamma, exposure, contrast, grey, blur, a
  low-resolution round trip and noise per sample;
- `affine` / `warp` / `warp_targets`: a random mirror, zoom, shift and roll, applied alike
  to frames and their target maps; `clip_thetas`: one such camera change per clip;
- `swap_background`: keep the main person, replace the room (texture or another frame).
Inputs and outputs are `[B,C,H,W]` float tensors in 0..1.
Guarantees: the same generator state gives the same draws (draws follow batch order).
Failure modes: none of its own; shape errors come from torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

_PERMUTATIONS = torch.tensor([[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])


def _uniform(b: int, gen: torch.Generator) -> Callable[..., torch.Tensor]:
    """`u(lo, hi, *shape)`: uniform draws from `gen`, shape `(b,)` unless given."""

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(shape or (b,), generator=gen)

    return u


def photometric(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
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
    x = (mean + (x - mean) * u(0.5, 1.3).view(b, 1, 1, 1)) * torch.exp(u(-0.8, 0.45)).view(
        b, 1, 1, 1
    )
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


def swap_background(
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


def affine(b: int, gen: torch.Generator, strength: float = 1.0) -> torch.Tensor:
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


def warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def warp_targets(t: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(t.shape), align_corners=False)
    return F.grid_sample(t, grid, padding_mode="zeros", align_corners=False)


def clip_thetas(frame_clip: np.ndarray, gen: torch.Generator) -> torch.Tensor:
    """One random camera change per clip, repeated for each of its frames."""
    clips, inverse = np.unique(frame_clip, return_inverse=True)
    per_clip = affine(len(clips), gen, strength=0.8)
    return per_clip[torch.from_numpy(inverse)]
