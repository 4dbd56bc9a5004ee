"""Per-frame feature banks: the trained per-frame stage run once over every frame, so stage B
cuts its windows from cached features and an epoch costs seconds.

Inputs: a net in eval mode, a `ClipFrames`, an `InputSpec`, optional per-row camera
changes (`theta`), re-lighting and mirroring. Outputs: float32 banks `[F, FRAME_FEATURES]`
per frame, or `[N, T, FRAME_FEATURES]` per window for motion nets (`window_feature_bank`),
the `FeatureBanks` of a training run (`feature_banks`), windows cut from a bank
(`window_stack`, `windows_of`) and p_fall of windows of features (`head_scores`).
Guarantees: no gradients; the same frames, draws and net give the same banks.
Failure modes: none of its own; torch errors propagate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from models.runtime.metadata import InputSpec
from models.runtime.preprocess import temporal_indices
from models.runtime.windows import WINDOW_FRAMES
from models.training.dataset import ClipFrames
from models.training.silhouette.augment import clip_thetas, warp
from models.training.silhouette.augment import photometric as jitter
from models.training.silhouette.config import SilhouetteConfig, split_clips
from models.training.silhouette.net import (
    FRAME_FEATURES,
    SilhouetteNet,
    as_model_frames,
    with_motion,
)


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
                xb = warp(xb, theta[i : i + batch])
            if photometric is not None:
                xb = jitter(xb, photometric)
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
        xb = warp(xb, theta.repeat_interleave(t, dim=0))
    if photometric is not None:
        c, h, wd = xb.shape[1:]
        tiled = xb.view(b, t, c, h, wd).permute(0, 2, 3, 1, 4).reshape(b, c, h, t * wd)
        tiled = jitter(tiled, photometric)
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


def window_stack(bank: np.ndarray, first: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Windows `[N,T,F]` cut from a per-frame bank: of each canonical 16-frame window that
    starts at `first`, the frames preprocessing picks for `spec` (`temporal_indices`)."""
    offsets = temporal_indices(WINDOW_FRAMES, spec.frames)
    out: np.ndarray = bank[first[:, None] + offsets[None, :]]
    return out


def windows_of(bank: np.ndarray, data: ClipFrames, spec: InputSpec,
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
    thetas = clip_thetas(owner, gen)
    photo_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))

    def bank(rows: np.ndarray | None, *, refilm: bool, mirror: bool) -> np.ndarray:
        # Re-filming re-seeds the photometric draws, so the plain and the mirrored pass over
        # the same rows get the same re-lighting (draws follow batch order).
        th = photo = None
        if refilm:
            th = thetas if rows is None else thetas[torch.from_numpy(rows)]
            photo = torch.Generator().manual_seed(photo_seed)
        if net.motion:
            return window_feature_bank(
                net,
                data,
                spec,
                windows=rows,
                theta=th,
                photometric=photo,
                mirror=mirror,
                progress=cfg.progress,
            )
        x = data.x if rows is None else data.x[rows]
        return frame_feature_bank(net, x, spec, theta=th, photometric=photo, mirror=mirror,
                                  progress=cfg.progress)  # fmt: skip

    banks = FeatureBanks(bank(None, refilm=False, mirror=False),
                         bank(None, refilm=True, mirror=False))  # fmt: skip
    if net.tta_flip:  # mirrored banks for the validation clips only: they pick the threshold
        val_clips = np.unique(data.clip[split_clips(data.clip, cfg.val_fraction, cfg.seed)])
        rows = np.flatnonzero(np.isin(owner, val_clips))
        banks.filmed_mirror = np.zeros_like(banks.filmed)
        banks.refilmed_mirror = np.zeros_like(banks.filmed)
        banks.filmed_mirror[rows] = bank(rows, refilm=False, mirror=True)
        banks.refilmed[rows] = bank(rows, refilm=True, mirror=False)
        banks.refilmed_mirror[rows] = bank(rows, refilm=True, mirror=True)
    return banks
