"""Stage A: fit the per-frame stage (`SilhouetteNet.segment`) on single rendered frames.

Inputs: a `ClipFrames` (frames with the renderer's silhouette and joint maps), the rows of
the training frames, an `InputSpec` and a `SilhouetteConfig` (time budget, step cap,
batch, augmentation, motion channels, bfloat16). Output: the net's per-frame stage
trained in place; `fit_segmenter` returns (steps, seconds, forward precision).
Guarantees: the step count is re-planned from the pace so the cosine schedule ends with
the time budget, never past `seg_steps`; bfloat16 only where the CPU has native kernels
(`native_bf16`); weights, optimiser and loss stay float32.
Failure modes: none of its own; torch errors propagate.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from models.runtime.metadata import InputSpec
from models.runtime.preprocess import temporal_indices
from models.runtime.windows import WINDOW_FRAMES
from models.training.dataset import ClipFrames
from models.training.silhouette.augment import (
    affine,
    photometric,
    swap_background,
    warp,
    warp_targets,
)
from models.training.silhouette.config import SilhouetteConfig
from models.training.silhouette.net import (
    SEGMENTER_PARTS,
    TARGET_STRIDE,
    SilhouetteNet,
    as_model_frames,
    with_motion,
)


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


def fit_segmenter(
    net: SilhouetteNet, data: ClipFrames, train_frames: np.ndarray, spec: InputSpec,
    cfg: SilhouetteConfig, gen: torch.Generator, rng: np.random.Generator,
) -> tuple[int, float, str]:  # fmt: skip
    """Stage A: fit the segmenter on single frames; returns (steps, seconds, the forward
    pass's precision: "bfloat16" or "float32")."""
    out_hw = (spec.height // TARGET_STRIDE, spec.width // TARGET_STRIDE)
    seg_params = [p for n, p in net.named_parameters()
                  if n.split(".")[0] in SEGMENTER_PARTS]  # fmt: skip
    opt = torch.optim.AdamW(seg_params, lr=cfg.lr, weight_decay=1e-4)
    plan = {"steps": cfg.seg_steps}

    def lr_factor(step: int) -> float:
        warm = 100
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (
            1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, plan["steps"] - warm)))
        )

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
            x = swap_background(x, tgt, gen, cfg.bg_swap)
        theta = affine(len(idx), gen)
        if not net.motion:
            x = as_model_frames(photometric(warp(x, theta), gen), spec)
        else:
            # Frame and mean side by side through one photometric draw: one camera's look.
            bg = torch.from_numpy(means[pick]).float() / 255.0
            c = x.shape[1]
            warped = warp(torch.cat([x, bg], dim=1), theta)  # one resampling for both
            both = photometric(torch.cat([warped[:, :c], warped[:, c:]], dim=3), gen)
            x, bg = both[..., : x.shape[3]], both[..., x.shape[3] :]
            x = with_motion(as_model_frames(x, spec), as_model_frames(bg, spec))
        tgt = warp_targets(tgt, theta)
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
