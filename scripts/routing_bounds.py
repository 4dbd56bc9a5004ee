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

from models.evaluate import Predictions
from models.metrics import PolicyDecision, clip_level, confidence_policy, dmd_policy, prf

RATES = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions", type=Path, help="npz from fallwatch evaluate --predictions")
    args = parser.parse_args(argv)
    with np.load(args.predictions, allow_pickle=False) as z:
        pred = Predictions(**{k: z[k] for k in z.files})
    edge, cloud = pred.edge_pred == 1, pred.cloud_pred == 1
    disagree = edge != cloud

    def row(name: str, decisions: np.ndarray, extra: str = "") -> None:
        c_pred, c_true = clip_level(decisions, pred.clip, pred.clip_label)
        p, r, f1 = prf(c_pred, c_true)
        print(f"{name:<28} precision {p:.3f}  recall {r:.3f}  F1 {f1:.3f}{extra}")

    print(f"{args.predictions}: {len(edge)} windows, {len(np.unique(pred.clip))} clips; edge and "
          f"cloud disagree on {disagree.mean():.1%} of windows")  # fmt: skip
    row("edge only", edge)
    row("cloud only", cloud)
    row("either flags (edge OR cloud)", edge | cloud)
    row("both flag (edge AND cloud)", edge & cloud)
    def route(name: str, rate: float) -> PolicyDecision:
        if name == "confidence":
            return confidence_policy(pred.edge_pred, pred.cloud_pred, pred.edge_confidence, rate)
        return dmd_policy(pred.edge_pred, pred.cloud_pred, pred.switcher_score, rate=rate)

    for name in ("confidence", "switcher"):
        for rate in RATES:
            dec = route(name, rate)
            covered = (dec.offload & disagree).sum() / max(1, disagree.sum())
            row(f"{name} at {rate:.0%}", dec.final, f"  disagreements offloaded {covered:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
