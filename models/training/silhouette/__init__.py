"""The cloud model as two stages: per-frame silhouette perception, then a temporal classifier.

Why this shape: a small classifier on the generator's true posture over a 2 s window
scores held-out clip F1 0.99, while end-to-end video CNNs trained for minutes on a CPU
stayed near 0.75: they never learned to see the person (docs/MODEL_EXPERIMENTS.md). Dense
supervision teaches seeing far faster than one label per window, and the renderer knows
every pixel of the person. So:

1. `SilhouetteNet.segment`: a small encoder-decoder on each frame predicts, at 1/4
   resolution, the main person's silhouette and a heatmap for each of their joints in
   `models.training.dataset.KEYPOINTS` (trained on the generator's masks and joint positions:
   `models.training.dataset.ClipFrames`).
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

Where each part lives (this package's modules):
- `net`: `SilhouetteNet` (stages 1-3), `TemporalHead`, the input specs, `as_model_frames`,
  the per-frame stage's weights as .npz (`save_segmenter`, `load_segmenter`);
- `config`: `SilhouetteConfig`, `SilhouetteResult`, the seeded validation split;
- `augment`: stage A's camera, photometric and background augmentation;
- `segmenter`: stage A (`fit_segmenter`, `native_bf16`);
- `banks`: per-frame feature banks stage B reads (`feature_banks`, `head_scores`);
- `train`: the entry points (`train_silhouette_cloud`, `train_segmenter`,
  `fit_temporal_head`).
Importing this package imports torch (training only; the runtime never imports it).
"""

from __future__ import annotations

from models.training.silhouette.banks import (
    FeatureBanks,
    feature_banks,
    head_scores,
    window_feature_bank,
    window_inputs,
    window_stack,
)
from models.training.silhouette.config import SilhouetteConfig, SilhouetteResult
from models.training.silhouette.net import (
    FRAME_FEATURES,
    GEOM,
    N_KEY,
    TARGET_STRIDE,
    WINDOW_EXTRA,
    SilhouetteNet,
    as_model_frames,
    edge_silhouette_spec,
    load_segmenter,
    save_segmenter,
    segmenter_has_motion,
    silhouette_spec,
    with_motion,
)
from models.training.silhouette.segmenter import native_bf16
from models.training.silhouette.train import (
    fit_temporal_head,
    train_segmenter,
    train_silhouette_cloud,
)

__all__ = [
    "FRAME_FEATURES",
    "GEOM",
    "N_KEY",
    "TARGET_STRIDE",
    "WINDOW_EXTRA",
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
