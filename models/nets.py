"""PyTorch networks for the edge, cloud and switcher models (training only).

Imported only by training/export code; the runtime never imports torch.
- `EdgeNet`: input `[N,1,T,H,W]` grey in 0..1 (default 8 x 64 x 64). Frame
  differences are computed in-graph and stacked with the frames as 2T-1 channels
  of a 2D CNN (four stride-2 3x3 conv+BN+ReLU), global-average-pooled into an
  embedding. Outputs `(logits [N,2], embedding [N,D])`. ~5 M multiply-adds.
- `CloudNet`: input `[N,3,T,H,W]` RGB (default 16 x 112 x 112). A (2+1)D CNN:
  in-graph temporal differences stacked with the frames (6 channels), a 4x4
  stride-4 patchify stem, then factorised blocks (spatial 3x3 conv on each
  frame, temporal 3-tap conv on each pixel), both as 2D convolutions on
  reshaped tensors so PyTorch and onnxruntime use their fast 2D kernels.
  ~100-170 M multiply-adds depending on `width`.
- `SwitcherNet`: MLP on switcher features, standardisation baked in as buffers,
  output `p_wrong [N,1]` (sigmoid); `.logits()` for training.
- `fall_bias` buffers: a constant added to the fall logit, set after training to
  move the decision threshold chosen on the labeled validation split into the
  model (so argmax everywhere means the calibrated decision).
- `ExportWrapper` turns logits into the ONNX contract's `probs` (+ `embedding`).
- `count_macs` counts conv/linear multiply-adds with forward hooks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CloudNet", "EdgeNet", "ExportWrapper", "SwitcherNet", "count_macs"]


def _conv_bn(cin: int, cout: int, k: tuple[int, int], s: tuple[int, int]) -> nn.Sequential:
    pad = (k[0] // 2, k[1] // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=s, padding=pad, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class EdgeNet(nn.Module):
    """Small 2D CNN over stacked frames and in-graph frame differences."""

    def __init__(self, frames: int = 8, width: int = 16, embedding_dim: int = 32) -> None:
        super().__init__()
        cin = 2 * frames - 1
        w = width
        self.features = nn.Sequential(
            _conv_bn(cin, w, (3, 3), (2, 2)),
            _conv_bn(w, 2 * w, (3, 3), (2, 2)),
            _conv_bn(2 * w, 3 * w, (3, 3), (2, 2)),
            _conv_bn(3 * w, 4 * w, (3, 3), (2, 2)),
        )
        self.embed = nn.Linear(4 * w, embedding_dim)
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(embedding_dim, 2)
        self.register_buffer("fall_bias", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = x[:, 0]  # [N,T,H,W]
        # Differences are small next to intensities; x4 brings them to a similar range.
        diff = (g[:, 1:] - g[:, :-1]) * 4.0
        h = self.features(torch.cat([g, diff], dim=1))
        h = h.mean(dim=(2, 3))
        emb = F.relu(self.embed(h))
        logits = self.head(self.dropout(emb))
        return logits + _fall_shift(self.get_buffer("fall_bias")), emb


def _fall_shift(bias: torch.Tensor) -> torch.Tensor:
    """[0, bias]: added to the logits, moves the fall decision threshold."""
    return torch.stack([torch.zeros_like(bias), bias])


class _Spatial(nn.Module):
    """k x k conv applied to every frame: [N,C,T,H,W] → [N,C',T,H',W']."""

    def __init__(self, cin: int, cout: int, k: int, s: int) -> None:
        super().__init__()
        self.conv = _conv_bn(cin, cout, (k, k), (s, s))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, c, t, h, w = x.shape
        y = x.transpose(1, 2).reshape(-1, c, h, w)
        y = self.conv(y)
        c2, h2, w2 = y.shape[1], y.shape[2], y.shape[3]
        out: torch.Tensor = y.reshape(-1, t, c2, h2, w2).transpose(1, 2)
        return out


class _Temporal(nn.Module):
    """3-tap conv along time at every pixel: [N,C,T,H,W] → [N,C',T',H,W]."""

    def __init__(self, cin: int, cout: int, s: int) -> None:
        super().__init__()
        self.conv = _conv_bn(cin, cout, (3, 1), (s, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, c, t, h, w = x.shape
        y = self.conv(x.reshape(-1, c, t, h * w))
        out: torch.Tensor = y.reshape(-1, y.shape[1], y.shape[2], h, w)
        return out


class CloudNet(nn.Module):
    """(2+1)D CNN with aggressive early spatial striding.

    The stem sees the RGB frames and their temporal differences (6 channels; the
    first frame's difference is zero): motion is the main cue for a fall, and
    handing it over explicitly makes the most of a short training budget.
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        self.stem = _Spatial(6, w, 4, 4)
        self.blocks = nn.Sequential(
            _Temporal(w, w, 2),
            _Spatial(w, 2 * w, 3, 2),
            _Temporal(2 * w, 2 * w, 1),
            _Spatial(2 * w, 4 * w, 3, 2),
            _Temporal(4 * w, 4 * w, 2),
            _Spatial(4 * w, 4 * w, 3, 1),
            _Temporal(4 * w, 4 * w, 1),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(4 * w, 2)
        self.register_buffer("fall_bias", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        diff = torch.cat([torch.zeros_like(x[:, :, :1]), x[:, :, 1:] - x[:, :, :-1]], dim=2)
        h = self.blocks(self.stem(torch.cat([x, diff * 4.0], dim=1)))
        emb = h.mean(dim=(2, 3, 4))
        logits = self.head(self.dropout(emb))
        return logits + _fall_shift(self.get_buffer("fall_bias")), emb


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
    clip (test-time augmentation: twice the compute, steadier answers); used for
    the cloud model, where compute is spent to buy accuracy.
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


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-adds of conv and linear layers for one forward pass of `example` (batch 1)."""
    total = 0

    def conv_hook(mod: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(mod, nn.Conv2d)
        k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
        total += int(out.numel()) * k

    def linear_hook(mod: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(mod, nn.Linear)
        total += int(out.numel()) * mod.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
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
