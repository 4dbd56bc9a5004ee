"""How much of a model's held-out F1 is the luck of its temporal head, and what averaging
several heads buys.

``.venv/bin/python scripts/head_ensemble.py [--role cloud|edge] [--segmenter FILE]
[--seeds 0 1 2 3 4 5] [--cache-dir data/cache] [--predictions PRED.npz]``

A diagnostic for ML engineers, not part of the product. It keeps one trained per-frame stage
(a ``save_segmenter`` file as ``make models`` ships it: the cloud's with motion channels, or
the edge's) and fits the temporal stage (stage B of ``models.silhouette``) once per head seed
on the same training features, exactly as a build does for that role (same validation split,
each head's own threshold folded into its bias; the edge decides by fewest wrong windows, the
cloud by best clip F1). Then, on the held-out clips (the seeds and preset of
``data/heldout``), it prints each head's clip-level F1 at its folded threshold and, for every
ensemble size K, the mean, lowest and highest F1 over all K-head combinations of those seeds,
averaged as ``SilhouetteNet.classify`` averages them (the decision is the heads' mean margin).

``--role edge --predictions PRED.npz`` (``fallwatch evaluate --data data/heldout
--predictions PRED.npz`` of a zoo) also prints the confidence cascade at 20 % offload with that
zoo's cloud answers: the edge's effect on a hybrid, not only alone.

Needs the ``train`` extra (torch); renders or loads the 1,000 training clips (``--cache-dir``)
and renders the held-out clips. Cloud: about 6 min of features plus ~1 min per seed on 2
cores; edge: ~1.5 min of features plus ~25 s per seed.
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
    edge_silhouette_spec,
    feature_banks,
    fit_temporal_head,
    frame_feature_bank,
    load_segmenter,
    segmenter_has_motion,
    silhouette_spec,
    window_feature_bank,
    window_stack,
)

OFFLOAD = 0.2  # the confidence cascade's offload rate, as `fallwatch evaluate`'s default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("cloud", "edge"), default="cloud")
    parser.add_argument("--segmenter", type=Path, default=None,
                        help="default models/zoo/<role>_segmenter.npz")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--width", type=int, default=None,
                        help="the segmenter's channel width (default the build's for the role)")
    parser.add_argument("--train-clips", type=int, default=FULL.train_clips)
    parser.add_argument("--heldout-clips", type=int, default=FULL.heldout_clips)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="training-frame cache, as build_zoo --cache-dir")  # fmt: skip
    parser.add_argument("--predictions", type=Path, default=None,
                        help="edge only: `fallwatch evaluate --predictions` file of a zoo, for "
                             "the confidence cascade with its cloud")  # fmt: skip
    args = parser.parse_args()
    edge = args.role == "edge"
    segmenter = args.segmenter or Path(f"models/zoo/{args.role}_segmenter.npz")
    if args.predictions is not None and not edge:
        raise SystemExit("head_ensemble: --predictions goes with --role edge")
    motion = segmenter_has_motion(segmenter)
    if motion == edge:
        want = "without" if edge else "with"
        raise SystemExit(f"head_ensemble: expects a {args.role} segmenter ({want} motion "
                         f"channels, as shipped), got {segmenter}")  # fmt: skip
    spec = edge_silhouette_spec() if edge else silhouette_spec()
    train = render_train_frames(replace(FULL, train_clips=args.train_clips), True, args.cache_dir)
    # Rendered at the cloud's size like the training frames; the edge's size divides it.
    held = synth_clipframes(clip_seeds(HELDOUT_SEED, args.heldout_clips), "heldout",
                            silhouette_spec(), target_stride=TARGET_STRIDE)  # fmt: skip
    # The build's stage-B settings for the role (models.build_zoo); the validation split is
    # seed 0's for every head.
    if edge:
        cfg = SilhouetteConfig(width=args.width or FULL.edge_width, hidden=FULL.edge_hidden,
                               seg_batch=64,
                               decision="window_errors", role="edge", progress=False)  # fmt: skip
    else:
        cfg = SilhouetteConfig(width=args.width or FULL.cloud_width, tta_flip=FULL.cloud_tta_flip,
                               motion=True, progress=False)  # fmt: skip

    def net_with_segmenter(seed: int) -> SilhouetteNet:
        torch.manual_seed(seed)
        net = SilhouetteNet(width=cfg.width, hidden=cfg.hidden, in_channels=spec.channels,
                            tta_flip=cfg.tta_flip, motion=cfg.motion)  # fmt: skip
        load_segmenter(net, segmenter)
        return net

    torch.set_num_threads(cfg.threads)
    net = net_with_segmenter(0)
    banks = feature_banks(net, train, spec, cfg, torch.Generator().manual_seed(0))
    if edge:
        feats = window_stack(frame_feature_bank(net, held.x, spec), held.first, spec)
        mirrored = None
    else:
        feats = window_feature_bank(net, held, spec)
        mirrored = window_feature_bank(net, held, spec, mirror=True)
    p_cloud = None
    if args.predictions is not None:
        with np.load(args.predictions) as pred:
            if not (np.array_equal(pred["clip"], held.clip) and np.array_equal(pred["y"], held.y)):
                raise SystemExit(f"head_ensemble: {args.predictions} is not of the held-out "
                                 "windows rendered here (another folder or clip count?)")  # fmt: skip
            p_cloud = pred["cloud_probs"][:, 1]

    def f1(margin: np.ndarray) -> list[float]:
        """Clip F1 of the heads' decision alone, and in the confidence cascade when given."""
        p = 1.0 / (1.0 + np.exp(-margin))
        out = [clip_f1_at(p, held.clip, held.clip_label, 0.5)]
        if p_cloud is not None:
            doubt = np.abs(p - 0.5)  # the confidence cascade: least sure windows to the cloud
            final = np.where(doubt <= np.quantile(doubt, OFFLOAD), p_cloud, p)
            out.append(clip_f1_at(final, held.clip, held.clip_label, 0.5))
        return out

    def one(scores: list[float]) -> str:
        cascade = "" if len(scores) == 1 else f" (confidence cascade {scores[1]:.3f})"
        return f"{scores[0]:.3f}{cascade}"

    def spread(rows: list[list[float]]) -> str:
        cols = [f"mean {c.mean():.3f}, lowest {c.min():.3f}, highest {c.max():.3f}"
                for c in np.array(rows).T]  # fmt: skip
        return cols[0] + ("" if len(cols) == 1 else f" (confidence cascade {cols[1]})")

    margins = []
    for seed in args.seeds:
        net = net_with_segmenter(seed)
        for p in net.parameters():
            p.requires_grad_(False)
        gen, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
        (thr,), val_f1, _, _, _ = fit_temporal_head(net, train, banks, spec, cfg, gen, rng)
        with torch.no_grad():
            m = None if mirrored is None else torch.from_numpy(mirrored)
            logits, _ = net.classify(torch.from_numpy(feats), m)
        margins.append((logits[:, 1] - logits[:, 0]).numpy())
        print(
            f"head seed {seed}: threshold {thr:.3f}, validation clip F1 {val_f1:.3f}, "
            f"held-out clip F1 {one(f1(margins[-1]))}",
            flush=True,
        )
    stacked = np.stack(margins)
    for k in range(2, len(margins) + 1):
        scores = [f1(stacked[list(c)].mean(axis=0))
                  for c in itertools.combinations(range(len(margins)), k)]  # fmt: skip
        print(f"{k} heads averaged: held-out clip F1 {spread(scores)} ({len(scores)} combinations)")


if __name__ == "__main__":
    main()
