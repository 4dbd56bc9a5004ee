"""How much of the cloud's held-out F1 is the luck of its temporal head, and what averaging
several heads buys.

``.venv/bin/python scripts/head_ensemble.py [--segmenter models/zoo/cloud_segmenter.npz]
[--seeds 0 1 2 3 4 5] [--cache-dir data/cache]``

A diagnostic for ML engineers, not part of the product. It keeps one trained per-frame stage
(a ``save_segmenter`` file with the motion channels, as ``make models`` ships it) and fits the
temporal stage (stage B of ``models.silhouette``) once per head seed on the same training
features, exactly as a build does (same validation split, each head's own threshold folded
into its bias). Then, on the held-out clips (the seeds and preset of ``data/heldout``), it
prints each head's clip-level F1 at its folded threshold and, for every ensemble size K, the
mean, lowest and highest F1 over all K-head combinations of those seeds, averaged as
``SilhouetteNet.classify`` averages them (the decision is the heads' mean margin).

Needs the ``train`` extra (torch); renders or loads the 1,000 training clips (``--cache-dir``)
and renders the held-out clips. About 6 min of features plus ~1 min per seed on 2 cores.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from models.build_zoo import FULL, HELDOUT_SEED, render_train_frames
from models.dataset import clip_seeds, synth_clipframes
from models.metrics import clip_f1_at
from models.silhouette import (
    TARGET_STRIDE,
    SilhouetteConfig,
    SilhouetteNet,
    feature_banks,
    fit_temporal_head,
    load_segmenter,
    segmenter_has_motion,
    silhouette_spec,
    window_feature_bank,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segmenter", type=Path, default=Path("models/zoo/cloud_segmenter.npz"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--train-clips", type=int, default=FULL.train_clips)
    parser.add_argument("--heldout-clips", type=int, default=FULL.heldout_clips)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="training-frame cache, as build_zoo --cache-dir")  # fmt: skip
    args = parser.parse_args()
    if not segmenter_has_motion(args.segmenter):
        raise SystemExit("head_ensemble: expects a segmenter with motion channels, as shipped")
    spec = silhouette_spec()
    train = render_train_frames(replace(FULL, train_clips=args.train_clips), True, args.cache_dir)
    held = synth_clipframes(clip_seeds(HELDOUT_SEED, args.heldout_clips), "heldout", spec,
                            target_stride=TARGET_STRIDE)  # fmt: skip
    # The build's stage-B settings; the validation split is seed 0's for every head.
    cfg = SilhouetteConfig(width=FULL.cloud_width, tta_flip=FULL.cloud_tta_flip,
                           motion=True, progress=False)  # fmt: skip

    def net_with_segmenter(seed: int) -> SilhouetteNet:
        torch.manual_seed(seed)
        net = SilhouetteNet(width=cfg.width, hidden=cfg.hidden, tta_flip=cfg.tta_flip,
                            motion=cfg.motion)  # fmt: skip
        load_segmenter(net, args.segmenter)
        return net

    torch.set_num_threads(cfg.threads)
    net = net_with_segmenter(0)
    banks = feature_banks(net, train, spec, cfg, torch.Generator().manual_seed(0))
    feats = window_feature_bank(net, held, spec)
    mirrored = window_feature_bank(net, held, spec, mirror=True)

    def f1(margin: np.ndarray) -> float:
        return clip_f1_at(1.0 / (1.0 + np.exp(-margin)), held.clip, held.clip_label, 0.5)

    margins = []
    for seed in args.seeds:
        net = net_with_segmenter(seed)
        for p in net.parameters():
            p.requires_grad_(False)
        gen, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
        (thr,), val_f1, _, _, _ = fit_temporal_head(net, train, banks, spec, cfg, gen, rng)
        with torch.no_grad():
            logits, _ = net.classify(torch.from_numpy(feats), torch.from_numpy(mirrored))
        margins.append((logits[:, 1] - logits[:, 0]).numpy())
        print(f"head seed {seed}: threshold {thr:.3f}, validation clip F1 {val_f1:.3f}, "
              f"held-out clip F1 {f1(margins[-1]):.3f}", flush=True)
    stacked = np.stack(margins)
    for k in range(2, len(margins) + 1):
        scores = [f1(stacked[list(c)].mean(axis=0))
                  for c in itertools.combinations(range(len(margins)), k)]  # fmt: skip
        print(f"{k} heads averaged: held-out clip F1 mean {np.mean(scores):.3f}, lowest "
              f"{np.min(scores):.3f}, highest {np.max(scores):.3f} ({len(scores)} combinations)")


if __name__ == "__main__":
    main()
