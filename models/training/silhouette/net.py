"""The two-stage net itself: per-frame perception, per-frame geometry, temporal heads.

Inputs: frames `[N,C,T,H,W]` in 0..1 (`SilhouetteNet.forward`), or single frames
(`SilhouetteNet.segment`). Outputs: fall logits `[N,2]` with each head's folded threshold,
and the pooled embedding. Also the input specs of the cloud (`silhouette_spec`) and the
edge (`edge_silhouette_spec`), `as_model_frames` (data frames → the model's size and
colour), and the per-frame stage's weights as a plain .npz (`save_segmenter`,
`load_segmenter`, `segmenter_has_motion`).
Guarantees: the layout of the per-frame features (`FRAME_FEATURES`, `WINDOW_EXTRA`) is
fixed here and nowhere else; the .npz holds no pickle.
Failure modes: `ValueError` for `heads < 1`; `TrainingError` when a segmenter file cannot be
read or does not fit the net.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.runtime.errors import TrainingError
from models.runtime.metadata import InputSpec
from models.training.dataset import KEYPOINTS

N_KEY = len(KEYPOINTS)
GEOM = 12  # silhouette geometry values per frame (see frame_features)
# Geometry only, no appearance: pooled appearance channels and silhouette profiles raised
# validation AUC but lowered held-out F1 (0.79 -> 0.52-0.75 at the validation threshold):
# they describe the training rooms, not the person (docs/MODEL_EXPERIMENTS.md).
FRAME_FEATURES = GEOM + 3 * N_KEY
WINDOW_EXTRA = 2 * N_KEY + 2 + 4  # per-window normalised tracks added by window_features
TARGET_STRIDE = 4
_HEAD, _PELVIS = KEYPOINTS.index("head"), KEYPOINTS.index("pelvis")
_ANKLES = (KEYPOINTS.index("ankle_l"), KEYPOINTS.index("ankle_r"))


def silhouette_spec() -> InputSpec:
    """The cloud: 16 RGB frames at 96x128 (the 4:3 of our cameras), area resize."""
    return InputSpec(frames=16, height=96, width=128, color="rgb", fps=8.0, resample="box")


def edge_silhouette_spec() -> InputSpec:
    """The edge: 8 grey frames (4 fps) at 48x64, area resize: a quarter of the cloud's
    pixels, half its frames, one channel; its size divides the cloud's, so both train on
    the same rendered frames."""
    return InputSpec(frames=8, height=48, width=64, color="gray", fps=4.0, resample="box")


def _cbr(cin: int, cout: int, k: int = 3, s: int = 1, d: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=s, padding=d * (k // 2), dilation=d, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def with_motion(frames: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Frames (channels in dim 1, 0..1) with the motion channels appended: each frame minus
    the mean of its window's frames (`background`, broadcast), offset to 0.5.

    The cameras are fixed, so what differs from the window's mean is what moved: the person
    falling, whatever the room looks like. The segmenter sees the room it has never seen
    and, beside it, where something moved (docs/MODEL_EXPERIMENTS.md, session 7)."""
    return torch.cat([frames, (frames - background + 0.5).clamp(0.0, 1.0)], dim=1)


class TemporalHead(nn.Module):
    """One temporal classifier on window tracks (`SilhouetteNet.window_features`): dilated
    1D convs → mean- and max-pooled embedding → fall logits, plus its own `fall_bias`, the
    decision threshold picked on validation and folded in (argmax = the calibrated decision)."""

    def __init__(self, nin: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(nin)
        self.temporal = nn.Sequential(
            nn.Conv1d(nin, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, 3, padding=2, dilation=2),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, 3, padding=4, dilation=4),
            nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(2 * hidden, 2)
        self.register_buffer("fall_bias", torch.zeros(()))

    def _one(self, tracks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.temporal(self.norm(tracks))
        emb = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
        logits: torch.Tensor = self.head(self.dropout(emb))
        return logits, emb

    def forward(
        self, tracks: torch.Tensor, mirrored: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Window tracks `[N,F,T]` (and those of the mirrored frames) → (logits `[N,2]` with
        the fall bias, embedding); with `mirrored`, both views are averaged before the bias
        is added, so the folded threshold means the same with and without mirroring."""
        logits, emb = self._one(tracks)
        if mirrored is not None:
            logits_m, emb_m = self._one(mirrored)
            logits, emb = 0.5 * (logits + logits_m), 0.5 * (emb + emb_m)
        bias = self.get_buffer("fall_bias")
        return logits + torch.stack([torch.zeros_like(bias), bias]), emb


class SilhouetteNet(nn.Module):
    """Per-frame perception + geometry + temporal classifier(s); `forward` → (logits, embedding).

    With `heads` > 1 the temporal stage is an ensemble: each head is fitted with its own
    initialisation and batches and folds its own threshold; logits and embeddings are
    averaged, so the decision is the heads' mean margin over their thresholds."""

    def __init__(
        self, width: int = 16, hidden: int = 64, in_channels: int = 3, tta_flip: bool = False,
        motion: bool = False, heads: int = 1,
    ) -> None:  # fmt: skip
        super().__init__()
        self.width = w = width
        self.in_channels = in_channels
        self.tta_flip = tta_flip  # average with the mirrored clip at inference
        # Also show the segmenter each frame minus its window's mean (`with_motion`).
        self.motion = motion
        self.enc1 = _cbr(in_channels * (2 if motion else 1), w, s=2)  # 1/2
        self.enc2 = nn.Sequential(_cbr(w, 2 * w, s=2), _cbr(2 * w, 2 * w))  # 1/4
        self.enc3 = nn.Sequential(_cbr(2 * w, 3 * w, s=2), _cbr(3 * w, 3 * w, d=2))  # 1/8
        self.enc4 = nn.Sequential(_cbr(3 * w, 4 * w, s=2), _cbr(4 * w, 4 * w))  # 1/16: context
        self.fuse3 = _cbr(7 * w, 3 * w, k=1)
        self.fuse = nn.Sequential(_cbr(5 * w, 2 * w, k=1), _cbr(2 * w, 2 * w))
        self.maps = nn.Conv2d(2 * w, 1 + N_KEY, 1)  # silhouette logit, one heatmap per joint
        if heads < 1:
            raise ValueError(f"SilhouetteNet: heads must be >= 1, got {heads}")
        nin = FRAME_FEATURES + WINDOW_EXTRA
        self.heads = nn.ModuleList([TemporalHead(nin, hidden) for _ in range(heads)])

    # -- stage 1: per-frame maps ---------------------------------------------------------
    def segment(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames `[B,C,H,W]` in 0..1 → map logits `[B,1+K,H/4,W/4]`; with `motion`, `C` is
        twice the model's channels (`with_motion`)."""
        e2 = self.enc2(self.enc1(frames - 0.5))
        e3 = self.enc3(e2)
        e3 = self.fuse3(torch.cat([e3, _up(self.enc4(e3))], dim=1))
        out: torch.Tensor = self.maps(self.fuse(torch.cat([e2, _up(e3)], dim=1)))
        return out

    # -- stage 2: geometry per frame -----------------------------------------------------
    @staticmethod
    def frame_features(maps: torch.Tensor) -> torch.Tensor:
        """Map logits → `[B, FRAME_FEATURES]` (coordinates in 0..1 of the frame).

        Order: 12 silhouette values (coverage, log coverage, centroid x/y, spread x/y, x-y
        correlation, log aspect, peak, the centroid's offset from the pelvis estimate x/y,
        head-to-centroid height in spreads), then per joint its soft-argmax x, y and peak.
        """
        _, k1, h, w = maps.shape
        m = torch.sigmoid(maps[:, 0])
        eps = 1e-4
        mass = m.sum(dim=(1, 2)) + eps
        xs = (torch.arange(w, dtype=m.dtype) + 0.5) / w
        ys = (torch.arange(h, dtype=m.dtype) + 0.5) / h
        col = m.sum(dim=1)  # [B,w]
        row = m.sum(dim=2)  # [B,h]
        cx = (col * xs).sum(1) / mass
        cy = (row * ys).sum(1) / mass
        dx = xs.view(1, 1, w) - cx.view(-1, 1, 1)
        dy = ys.view(1, h, 1) - cy.view(-1, 1, 1)
        sx = torch.sqrt((m * dx * dx).sum(dim=(1, 2)) / mass + eps)
        sy = torch.sqrt((m * dy * dy).sum(dim=(1, 2)) / mass + eps)
        corr = (m * dx * dy).sum(dim=(1, 2)) / mass / (sx * sy)
        heat = torch.softmax(maps[:, 1:].reshape(-1, k1 - 1, h * w), dim=2).reshape(
            -1, k1 - 1, h, w
        )
        kx = (heat.sum(2) * xs).sum(2)  # [B,K]
        ky = (heat.sum(3) * ys).sum(2)
        peak = heat.reshape(-1, k1 - 1, h * w).amax(dim=2) * (h * w) / 100.0
        area = mass / (h * w)
        geom = torch.stack(
            [area, torch.log(area + 1e-3), cx, cy, sx, sy, corr, torch.log(sy / sx),
             m.amax(dim=(1, 2)), cx - kx[:, _PELVIS], cy - ky[:, _PELVIS],
             (ky[:, _HEAD] - cy) / sy],
            dim=1,
        )  # fmt: skip
        return torch.cat([geom, kx, ky, peak], dim=1)

    # -- stage 3: the window -------------------------------------------------------------
    @staticmethod
    def window_features(per_frame: torch.Tensor) -> torch.Tensor:
        """`[N,T,FRAME_FEATURES]` → `[N,FRAME_FEATURES+WINDOW_EXTRA,T]`, adding tracks in the
        window's own scale, so a near and a far camera see the same fall the same way: every
        joint relative to the window's mean pelvis over the body's longest head-to-ankle
        extent in the window, the body axis (head minus ankles) in that unit, and the
        silhouette's height and width over their window maxima, centroid drop in spreads."""
        base = GEOM
        kx = per_frame[..., base : base + N_KEY]
        ky = per_frame[..., base + N_KEY : base + 2 * N_KEY]
        ank_x = 0.5 * (kx[..., _ANKLES[0]] + kx[..., _ANKLES[1]])
        ank_y = 0.5 * (ky[..., _ANKLES[0]] + ky[..., _ANKLES[1]])
        ax, ay = kx[..., _HEAD] - ank_x, ky[..., _HEAD] - ank_y  # [N,T]
        ext = torch.sqrt(ax * ax + ay * ay + 1e-6).amax(dim=1, keepdim=True) + 1e-2  # [N,1]
        px = kx[..., _PELVIS].mean(dim=1, keepdim=True)
        py = ky[..., _PELVIS].mean(dim=1, keepdim=True)
        rel_x = (kx - px.unsqueeze(2)) / ext.unsqueeze(2)
        rel_y = (ky - py.unsqueeze(2)) / ext.unsqueeze(2)
        sx, sy, cy = per_frame[..., 4], per_frame[..., 5], per_frame[..., 3]
        body = sy.mean(dim=1, keepdim=True)
        sil = torch.stack(
            [sy / sy.amax(dim=1, keepdim=True), sx / sx.amax(dim=1, keepdim=True),
             (cy - cy[:, :1]) / body, (cy - cy.mean(dim=1, keepdim=True)) / body],
            dim=2,
        )  # fmt: skip
        axis = torch.stack([ax / ext, ay / ext], dim=2)
        return torch.cat([per_frame, rel_x, rel_y, axis, sil], dim=2).transpose(1, 2)

    def classify(
        self, per_frame: torch.Tensor, mirrored: torch.Tensor | None = None,
        heads: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Per-frame features `[N,T,F]` → (logits `[N,2]` with the fall biases, embedding),
        averaged over the heads (`heads`: only those, for fitting one at a time).

        With `mirrored` (the features of the mirrored frames) each head averages both views
        before its bias is added (`TemporalHead.forward`)."""
        tracks = self.window_features(per_frame)
        tracks_m = None if mirrored is None else self.window_features(mirrored)
        picked = range(len(self.heads)) if heads is None else heads
        outs: list[tuple[torch.Tensor, torch.Tensor]] = [self.heads[k](tracks, tracks_m)
                                                         for k in picked]  # fmt: skip
        if len(outs) == 1:
            return outs[0]
        logits = torch.stack([o[0] for o in outs]).mean(dim=0)
        emb = torch.stack([o[1] for o in outs]).mean(dim=0)
        return logits, emb

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.motion:
            x = with_motion(x, x.mean(dim=2, keepdim=True))
        n, c, t, hh, ww = x.shape
        frames = x.transpose(1, 2).reshape(n * t, c, hh, ww)
        if not self.tta_flip:
            return self.classify(self.frame_features(self.segment(frames)).reshape(n, t, -1))
        both = self.frame_features(self.segment(torch.cat([frames, frames.flip(3)])))
        per_frame, mirrored = both.reshape(2, n, t, -1).unbind(0)
        return self.classify(per_frame, mirrored)


def as_model_frames(x: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """RGB frames `[B,3,H,W]` (0..1, at the data's size) → the model's size and colour.

    Area-averages down to `spec` (ClipFrames are rendered at the cloud's size; the edge's
    size divides it) and takes ITU-R 601 luma for grey models, as preprocessing does.
    """
    if tuple(x.shape[-2:]) != (spec.height, spec.width):
        x = F.adaptive_avg_pool2d(x, (spec.height, spec.width))
    if spec.channels == 1:
        x = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    return x


SEGMENTER_PARTS = ("enc1", "enc2", "enc3", "enc4", "fuse3", "fuse", "maps")


def save_segmenter(net: SilhouetteNet, path: Path, *, model_sha256: str = "") -> None:
    """The per-frame stage's weights as a plain .npz (no pickle), for head-only retraining.

    Stamped with the net's width (`__width__`), whether it reads motion channels
    (`__motion__`) and the sha256 of the ONNX model (edge or cloud) exported from the same
    net (`__model_sha256__`); `load_segmenter` skips the stamps."""
    arrays = {k: v.detach().numpy() for k, v in net.state_dict().items()
              if k.split(".")[0] in SEGMENTER_PARTS}  # fmt: skip
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays, __width__=np.array(net.width), __motion__=np.array(net.motion),
             __model_sha256__=np.array(model_sha256))  # fmt: skip
    tmp.replace(path)


def segmenter_has_motion(path: Path) -> bool:
    """Whether a `save_segmenter` file reads motion channels (files without the stamp do not)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return bool(z["__motion__"]) if "__motion__" in z.files else False
    except (OSError, ValueError) as exc:
        raise TrainingError(f"cannot read segmenter weights {path}: {exc}") from exc


def load_segmenter(net: SilhouetteNet, path: Path) -> None:
    """Load `save_segmenter` weights into `net`; TrainingError when they do not fit."""
    try:
        with np.load(path, allow_pickle=False) as z:
            state = {k: torch.from_numpy(z[k]) for k in z.files if not k.startswith("__")}
    except (OSError, ValueError) as exc:
        raise TrainingError(f"cannot read segmenter weights {path}: {exc}") from exc
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch: another width
        raise TrainingError(f"segmenter {path} does not fit this net: {exc}") from exc
    seg_missing = [k for k in missing if k.split(".")[0] in SEGMENTER_PARTS]
    if seg_missing or unexpected:
        raise TrainingError(f"segmenter {path} does not fit this net: missing {seg_missing[:3]}, "
                            f"unexpected {unexpected[:3]}")  # fmt: skip
