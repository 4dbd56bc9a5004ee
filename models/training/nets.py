"""The switcher network and the export helpers (PyTorch, training only).

Imported only by training/export code; the runtime never imports torch.
- The edge and cloud nets are `models.training.silhouette.SilhouetteNet` (per-frame perception +
  temporal classifier, trained in two stages); their `fall_bias` buffer moves the
  decision threshold chosen on the labeled validation split into the model, so argmax
  everywhere means the calibrated decision.
- `SwitcherNet`: MLP on switcher features, standardisation baked in as buffers,
  output `p_wrong [N,1]` (sigmoid); `.logits()` for training.
- `ExportWrapper` turns logits into the ONNX contract's `probs` (+ `embedding`).
- `count_macs` counts conv/linear multiply-adds with forward hooks.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ExportWrapper", "SwitcherNet", "count_macs"]


class SwitcherNet(nn.Module):
    """MLP on raw switcher features (standardised inside) → P(edge wrong)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, hidden: int = 32) -> None:
        super().__init__()
        n = int(mean.numel())
        self.register_buffer("mean", mean.reshape(1, n).float())
        self.register_buffer("std", std.reshape(1, n).float().clamp_min(1e-6))
        self.mlp = nn.Sequential(
            nn.Linear(n, hidden),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores (for BCE-with-logits training)."""
        z: torch.Tensor = self.mlp((features - self.get_buffer("mean")) / self.get_buffer("std"))
        return z

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(features))


class ExportWrapper(nn.Module):
    """Edge/cloud net → ONNX outputs `probs` (softmax) and optionally `embedding`.

    With `tta_flip` the probabilities are averaged with those of the mirrored
    clip (test-time augmentation: twice the compute, steadier answers).
    """

    def __init__(self, net: nn.Module, with_embedding: bool, tta_flip: bool = False) -> None:
        super().__init__()
        self.net = net
        self.with_embedding = with_embedding
        self.tta_flip = tta_flip

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, emb = self.net(x)
        probs = torch.softmax(logits, dim=1)
        if self.tta_flip:
            logits_m, emb_m = self.net(torch.flip(x, dims=[4]))
            probs = 0.5 * (probs + torch.softmax(logits_m, dim=1))
            emb = 0.5 * (emb + emb_m)
        return (probs, emb) if self.with_embedding else (probs,)


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-adds of conv (1D, 2D, 3D) and linear layers for one forward pass of `example`
    (batch 1)."""
    total = 0

    def conv_hook(mod: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(mod, _CONVS)
        k = math.prod(mod.kernel_size) * (mod.in_channels // mod.groups)
        total += int(out.numel()) * k

    def linear_hook(mod: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(mod, nn.Linear)
        total += int(out.numel()) * mod.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, _CONVS):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(example[:1])
    model.train(was_training)
    for h in handles:
        h.remove()
    return total
