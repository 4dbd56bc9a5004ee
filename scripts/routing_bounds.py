"""How much can routing between THIS edge and THIS cloud be worth at clip level?

``.venv/bin/python scripts/routing_bounds.py PRED.npz``, where ``PRED.npz`` comes from
``fallwatch evaluate --data DIR --predictions PRED.npz`` (per-window edge and cloud
probabilities, switcher scores, clip ids and labels; no model is run here, it takes a second).

A diagnostic for ML engineers, not part of the product. Every routing policy answers each
window with the edge's decision or the cloud's, so it prints what bounds them on this folder:
each model alone (precision, recall, F1), how often they disagree, the clip F1 of flagging a
clip when EITHER model flags it and when BOTH do (what the two decisions hold together), and
the confidence cascade at several offload rates with the share of edge/cloud disagreements
it hands to the cloud. A label-free switcher is trained to send disagreements to the cloud:
sending all of them makes the hybrid exactly the cloud. When the cascade's F1 stays flat
while it covers more disagreements, imitating the cloud is worth nothing on this folder,
and a better switcher cannot lift the hybrid above the cloud (docs/MODEL_EXPERIMENTS.md,
session 6).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from models.metrics import clip_level, prf, top_k_mask

RATES = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions", type=Path, help="npz from fallwatch evaluate --predictions")
    args = parser.parse_args(argv)
    with np.load(args.predictions, allow_pickle=False) as z:
        edge_p, cloud_p = z["edge_probs"][:, 1], z["cloud_probs"][:, 1]
        switcher, clip, clip_label = z["switcher_score"], z["clip"], z["clip_label"]
    edge, cloud = edge_p >= 0.5, cloud_p >= 0.5
    disagree = edge != cloud

    def row(name: str, decisions: np.ndarray, extra: str = "") -> None:
        pred, truth = clip_level(decisions, clip, clip_label)
        p, r, f1 = prf(pred, truth)
        print(f"{name:<28} precision {p:.3f}  recall {r:.3f}  F1 {f1:.3f}{extra}")

    n = len(edge)
    print(f"{args.predictions}: {n} windows, {len(np.unique(clip))} clips; edge and cloud "
          f"disagree on {disagree.mean():.1%} of windows")  # fmt: skip
    row("edge only", edge)
    row("cloud only", cloud)
    row("either flags (edge OR cloud)", edge | cloud)
    row("both flag (edge AND cloud)", edge & cloud)
    for name, score in (("confidence", -np.abs(edge_p - 0.5)), ("switcher", switcher)):
        for rate in RATES:
            off = top_k_mask(score, round(rate * n), largest=True)
            covered = (off & disagree).sum() / max(1, disagree.sum())
            row(f"{name} at {rate:.0%}", np.where(off, cloud, edge),
                f"  disagreements offloaded {covered:.0%}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
