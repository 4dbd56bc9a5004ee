"""Which of the held-out cameras' differences costs a per-frame stage its joints?

``.venv/bin/python scripts/camera_shift.py [--segmenter FILE] [--clips 120] [--windows 400]
[--variants none viewpoint size ... all]``

A diagnostic for ML engineers, not part of the product. The ``heldout`` preset differs from
``train`` in many ranges at once (``models.synth.presets``). This script renders the first
``--clips`` held-out clips (the seeds of ``data/heldout``) once per variant: ``none`` as they
are, one variant per group of ranges with that group set back to the train preset's ranges
(``viewpoint``: camera height, field of view, roll and aim; ``size``: the person's share of
the frame; ``look``: palettes and wall and floor textures; ``noise``; ``blur``: defocus and
shutter; ``grey``: night mode; ``codec``: H.264 quality; ``light``; ``clutter``: occluders, a
second person, furniture), ``all`` with every group set back, and the halves of the held-out
camera ranges alone (``low``/``high`` camera, ``small``/``large`` person). For each it prints
the cloud segmenter's joint error against the renderer's truth (``segmenter_ablation.
perception_errors``): in cells, and relative to the person's size in the frame (an error in
cells grows with the person, so ``size`` variants compare fairly only relatively). A group
whose variant lowers the error a lot is a shift the per-frame stage does not carry across.

The variants render the same scenes apart from the changed ranges: for as long as the script
runs, ``presets.draw`` always consumes its interval pick (a single range then leaves the random
generator where a two-interval range does), so this script's ``none`` is not byte-identical to
``data/heldout`` (the scenes differ, the ranges do not). Changing how many things are drawn
(``clutter``: furniture count) still shifts what follows. Clips are rendered with a fork-based
pool so the changed preset reaches the workers. Needs the ``train`` extra (torch); about 35 s
per variant on 2 cores.
"""

from __future__ import annotations

import argparse
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from segmenter_ablation import perception_errors

import models.dataset
import models.synth.clip
import models.synth.presets
import models.synth.render
import models.synth.scene
from models.build_zoo import FULL, HELDOUT_SEED
from models.dataset import clip_seeds, synth_clipframes
from models.silhouette import (
    TARGET_STRIDE,
    SilhouetteNet,
    load_segmenter,
    segmenter_has_motion,
    silhouette_spec,
)
from models.synth.presets import PRESETS, Range

GROUPS: dict[str, tuple[str, ...]] = {
    "viewpoint": ("cam_height", "hfov_deg", "cam_roll_deg", "aim_jitter_deg"),
    "size": ("subject_frac",),
    "look": ("palettes", "wall_textures", "floor_textures"),
    "noise": ("noise_sigma",),
    "blur": ("blur_prob", "exposure_prob", "max_exposure_s"),
    "grey": ("grey_prob",),
    "codec": ("crf",),
    "light": ("light_gain", "light_step_prob", "tint_strength"),
    "clutter": ("occluder_prob", "second_person_prob", "extra_furniture"),
}
# One side of a two-interval held-out range, read from the preset itself.
_LOW, _HIGH = PRESETS["heldout"].cam_height
_SMALL, _LARGE = PRESETS["heldout"].subject_frac
HALVES: dict[str, dict[str, Any]] = {
    "low": {"cam_height": (_LOW,)},
    "high": {"cam_height": (_HIGH,)},
    "small": {"subject_frac": (_SMALL,)},
    "large": {"subject_frac": (_LARGE,)},
}


def paired_draw(rng: np.random.Generator, rng_range: Range) -> float:
    """`presets.draw`, except that it always draws the interval pick, so variants stay in step."""
    lengths = np.array([hi - lo for lo, hi in rng_range])
    i = int(rng.choice(len(rng_range), p=lengths / lengths.sum()))
    lo, hi = rng_range[i]
    return float(rng.uniform(lo, hi))


def fork_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=max(1, workers), mp_context=multiprocessing.get_context("fork"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segmenter", type=Path, default=Path("models/zoo/cloud_segmenter.npz"))
    parser.add_argument("--clips", type=int, default=120, help="held-out clips per variant")
    parser.add_argument("--windows", type=int, default=400, help="windows measured per variant")
    parser.add_argument("--variants", nargs="+", default=["none", *GROUPS, "all", *HALVES],
                        choices=["none", *GROUPS, "all", *HALVES])  # fmt: skip
    args = parser.parse_args()
    for module in (models.synth.presets, models.synth.scene, models.synth.clip, models.synth.render):
        module.draw = paired_draw  # type: ignore[attr-defined]
    models.dataset._pool = fork_pool
    if not segmenter_has_motion(args.segmenter):
        raise SystemExit(f"camera_shift: expects a cloud segmenter (motion channels), got {args.segmenter}")
    net = SilhouetteNet(width=FULL.cloud_width, in_channels=3, motion=True)
    load_segmenter(net, args.segmenter)
    net.eval()
    torch.set_num_threads(2)
    spec = silhouette_spec()
    heldout, train = PRESETS["heldout"], PRESETS["train"]
    print(f"{args.segmenter}: first {args.clips} held-out clips, {args.windows} windows per variant")
    print(f"{'variant':10s} {'joints':>7s} {'median':>6s} {'p90':>5s} {'>3 cells':>8s} "
          f"{'rel median':>10s} {'rel > 0.15':>10s} {'IoU':>5s}  set back to train / changed")
    try:
        for v in args.variants:
            if v in HALVES:
                changes = dict(HALVES[v])
            else:
                fields = [f for g in GROUPS.values() for f in g] if v == "all" else GROUPS.get(v, ())
                changes = {f: getattr(train, f) for f in fields}
            PRESETS["heldout"] = replace(heldout, **changes)
            held = synth_clipframes(clip_seeds(HELDOUT_SEED, args.clips), "heldout", spec,
                                    target_stride=TARGET_STRIDE, progress=False)  # fmt: skip
            n = min(args.windows, len(held.first))
            windows = np.sort(np.random.default_rng(1).choice(len(held.first), n, replace=False))
            err, rel, iou = perception_errors(net, held, windows)
            what = ("-" if not changes else
                    str(changes) if v in HALVES else ", ".join(changes))  # fmt: skip
            print(f"{v:10s} {len(err):7d} {np.median(err):6.2f} {np.quantile(err, 0.9):5.2f} "
                  f"{np.mean(err > 3):8.3f} {np.median(rel):10.3f} {np.mean(rel > 0.15):10.3f} "
                  f"{iou.mean():5.3f}  {what}", flush=True)
    finally:
        PRESETS["heldout"] = heldout


if __name__ == "__main__":
    main()
