"""Evaluation: how good the zoo is, never how it is trained.

- `evaluate`: every routing policy side by side on a labelled clip folder
  (`fallwatch evaluate`); `metrics`: F1, AUC, thresholds and the routing policies;
- `model_card`: the zoo's MODEL_CARD.md from a build summary and an evaluation;
- `pose_measure`: how well the pose stage sees rendered people
  (`python -m models.evaluation.pose_measure`).
Guarantees: imports `models.runtime` (and the renderer for `pose_measure`), never
`models.training` nor torch. Importing this package does no work.
"""
