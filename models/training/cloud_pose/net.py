"""The fall classifier on pose tracks (PyTorch; training and export only).

Input `tracks` float32 `[N, K, T, F]`: K tracks of T frames with the
`models.runtime.cloud_pose.features.FEATURE_NAMES` columns (column 0 = `track_valid`).
Per track: standardise (buffers), three 1D convolutions over time (dilations 1, 2, 4:
the last layer sees the whole 2 s), mean + max pooling over time, an MLP → one fall
logit. The window's logit is the MAX over its valid tracks (multiple-instance
learning: the window label supervises its most fall-like track, so a second, standing
person in view cannot lower a fallen person's score); a window without any track gets
the learned `nobody` logit. `fall_bias` (a buffer, set from the validation split after
training) moves the decision threshold into the model, so argmax of `probs` is the
calibrated decision, as for the other fallwatch models.
Outputs (`forward`): `probs [N, 2]` (column 1 = fall) and `track_p_fall [N, K]`
(0 on padded rows), for diagnostics.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TrackClassifier"]

_MASK = 1e4  # logit offset that removes a padded track from the max


class TrackClassifier(nn.Module):
    """1D-CNN per track, max over tracks, learned "nobody" logit."""

    def __init__(
        self, mean: torch.Tensor, std: torch.Tensor, *, width: int = 64, hidden: int = 64,
        dropout: float = 0.2, keep: torch.Tensor | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        n = int(mean.numel())
        self.register_buffer("mean", mean.reshape(1, 1, 1, n).float())
        self.register_buffer("std", std.reshape(1, 1, 1, n).float().clamp_min(1e-4))
        # 1 = the feature is read, 0 = ignored (a recipe may leave out camera-bound columns)
        keep = torch.ones(n) if keep is None else keep.float()
        self.register_buffer("keep", keep.reshape(1, 1, 1, n))
        self.register_buffer("fall_bias", torch.zeros(()))
        self.conv = nn.Sequential(
            nn.Conv1d(n, width, 3, padding=1), nn.ReLU(),
            nn.Conv1d(width, width, 3, padding=2, dilation=2), nn.ReLU(),
            nn.Conv1d(width, width, 3, padding=4, dilation=4), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.Linear(2 * width, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )
        self.nobody = nn.Parameter(torch.full((1,), -2.0))

    def track_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-track fall logits `[N, K]` (before `fall_bias`) and the valid mask `[N, K]`."""
        n, k, t, f = x.shape
        valid = x[:, :, 0, 0]
        z = (x - self.get_buffer("mean")) / self.get_buffer("std") * self.get_buffer("keep")
        h = self.conv(z.reshape(n * k, t, f).transpose(1, 2))
        pooled = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
        return self.head(pooled).reshape(n, k), valid

    def window_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The window's fall logit `[N]` (before `fall_bias`): max over valid tracks."""
        logits, valid = self.track_logits(x)
        best = (logits + (valid - 1.0) * _MASK).amax(dim=1)
        any_track = valid.amax(dim=1)
        out: torch.Tensor = any_track * best + (1.0 - any_track) * self.nobody
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, valid = self.track_logits(x)
        bias = self.get_buffer("fall_bias")
        best = (logits + (valid - 1.0) * _MASK).amax(dim=1)
        any_track = valid.amax(dim=1)
        window = any_track * best + (1.0 - any_track) * self.nobody + bias
        p = torch.sigmoid(window)
        probs = torch.stack([1.0 - p, p], dim=1)
        return probs, torch.sigmoid(logits + bias) * valid
