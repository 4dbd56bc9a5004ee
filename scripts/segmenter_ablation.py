"""Does a per-frame recipe see people better on cameras it was not trained on?

``.venv/bin/python scripts/segmenter_ablation.py [--minutes 5] [--seeds 0 1] [--windows 300]``

A diagnostic for ML engineers, not part of the product. It trains the cloud's per-frame stage
(stage A of ``models.silhouette``) from scratch twice per seed, with and without the motion
channels (``SilhouetteConfig.motion``: each frame beside itself minus its window's mean), on
the same training clips ``make models`` uses and for the same minutes, then measures both on
held-out windows (the seeds and preset of ``data/heldout``) against the renderer's truth:
the distance between each visible joint's soft-argmax and its true position, in cells of the
24x32 output (median, 90th percentile, share farther than 3 cells), and the silhouette's
intersection over union at 0.5.

Only stage A is compared: no fall labels, no temporal head, no threshold; joint error is what
separated the shipped cloud (held-out F1 ~0.78) from its ceiling on true joints (0.934,
``scripts/perception_ceiling.py``). The steps each arm gets depend on the machine's load, and
are printed. Needs the ``train`` extra (torch); renders or loads the 1,000 training clips
(``--cache-dir``, as ``python -m models.build_zoo --cache-dir``) and renders the held-out clips:
about 2 x minutes x seeds + 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from models.build_zoo import FULL, HELDOUT_SEED, render_train_frames
from models.dataset import ClipFrames, clip_seeds, synth_clipframes
from models.silhouette import (
    GEOM,
    N_KEY,
    TARGET_STRIDE,
    SilhouetteConfig,
    SilhouetteNet,
    silhouette_spec,
    train_segmenter,
    window_inputs,
)


class Perception(NamedTuple):
    """Held-out perception of a per-frame stage, over visible joints (`errors`, `relative`)
    and frames with a person (`iou`)."""

    errors: np.ndarray  # distance to the true joint, in cells of the 24x32 output
    relative: np.ndarray  # the same over the person's extent in that frame (widest visible joint pair, >= 2 cells)
    iou: np.ndarray  # silhouette intersection over union at 0.5


def perception_errors(
    net: SilhouetteNet, data: ClipFrames, windows: np.ndarray, batch: int = 4
) -> Perception:
    """Joint errors and silhouette IoU of every frame of `windows`, each frame seen as the
    exported model sees it. `relative` divides by the person's size, so small and large
    people compare fairly (an error in cells grows with the person)."""
    spec = silhouette_spec()
    errors, relative, ious = [], [], []
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            w = windows[i : i + batch]
            maps = net.segment(window_inputs(net, data, spec, w))
            feats = net.frame_features(maps).numpy()
            rows = (data.first[w][:, None] + np.arange(spec.frames)).ravel()
            truth = data.target[rows].astype(np.float32) / 255.0
            h, wd = truth.shape[-2:]
            heat = truth[:, 1:].reshape(len(rows), N_KEY, -1)
            visible = heat.max(axis=2) > 0.5
            peak = heat.argmax(axis=2)
            ty, tx = peak // wd + 0.5, peak % wd + 0.5
            pair = np.hypot(tx[:, :, None] - tx[:, None, :], ty[:, :, None] - ty[:, None, :])
            both = visible[:, :, None] & visible[:, None, :]
            extent = np.maximum(np.where(both, pair, 0.0).max(axis=(1, 2)), 2.0)
            kx = feats[:, GEOM : GEOM + N_KEY] * wd
            ky = feats[:, GEOM + N_KEY : GEOM + 2 * N_KEY] * h
            err = np.hypot(kx - tx, ky - ty)
            errors.append(err[visible])
            relative.append((err / extent[:, None])[visible])
            pred = torch.sigmoid(maps[:, 0]).numpy() > 0.5
            true = truth[:, 0] > 0.5
            union = (pred | true).sum(axis=(1, 2))
            has = true.any(axis=(1, 2))
            ious.append(((pred & true).sum(axis=(1, 2)) / np.maximum(union, 1))[has])
    return Perception(np.concatenate(errors), np.concatenate(relative), np.concatenate(ious))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="stage A budget per arm")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--windows", type=int, default=300, help="held-out windows measured")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="training-frame cache, as build_zoo --cache-dir")  # fmt: skip
    args = parser.parse_args()
    spec = silhouette_spec()
    train = render_train_frames(FULL, True, args.cache_dir)
    held = synth_clipframes(clip_seeds(HELDOUT_SEED, FULL.heldout_clips), "heldout", spec,
                            target_stride=TARGET_STRIDE)  # fmt: skip
    windows = np.sort(np.random.default_rng(1).choice(len(held.first), args.windows,
                                                      replace=False))  # fmt: skip
    base = SilhouetteConfig(seg_minutes=args.minutes, width=FULL.cloud_width, progress=False)
    print(f"held-out: {len(windows)} windows, {len(windows) * spec.frames} frames; "
          f"stage A {args.minutes:g} min per arm")
    for seed in args.seeds:
        for motion in (False, True):
            net = train_segmenter(train, spec, replace(base, seed=seed, motion=motion))
            err, _, iou = perception_errors(net, held, windows)
            print(f"seed {seed} motion={'on ' if motion else 'off'}: joint error median "
                  f"{np.median(err):.2f} p90 {np.quantile(err, 0.9):.2f} > 3 cells "
                  f"{np.mean(err > 3):.3f}; silhouette IoU {iou.mean():.3f}", flush=True)


if __name__ == "__main__":
    main()
