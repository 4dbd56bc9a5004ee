"""The optional posture regression (auxiliary) head: shapes, loss arithmetic, and that the
exported decision path does not depend on it."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from models.metadata import InputSpec
from models.nets import CloudNet, EdgeNet
from models.train import TrainConfig, WindowSet, aux_loss, build_net, train_video_model


def test_aux_loss_averages_the_targets_into_the_estimates_steps() -> None:
    target = torch.tensor([[[0.0], [2.0], [2.0], [4.0]]])  # [1,4,1] -> steps (1, 3)
    assert float(aux_loss(torch.tensor([[[1.0], [3.0]]]), target)) == pytest.approx(0.0)
    assert float(aux_loss(torch.zeros(1, 2, 1), target)) == pytest.approx((1.0 + 9.0) / 2)


@pytest.mark.parametrize(
    ("net", "shape"),
    [
        (CloudNet(width=4, aux_dim=2), (3, 3, 16, 32, 32)),
        (EdgeNet(frames=8, width=4, aux_dim=2), (3, 1, 8, 32, 32)),
    ],
)
def test_forward_aux_gives_a_posture_per_step_and_the_same_logits(
    net: CloudNet | EdgeNet, shape: tuple[int, ...]
) -> None:
    net.eval()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, emb = net(x)
        logits_aux, pose = net.forward_aux(x)
    assert pose.shape == (3, 4, 2)
    assert torch.equal(logits, logits_aux)
    assert emb.shape[0] == 3


def test_nets_without_an_aux_head_refuse_forward_aux() -> None:
    spec = InputSpec(frames=8, height=32, width=32, color="gray", fps=4.0)
    net = build_net("edge", spec, width=4)
    assert net.aux_head is None
    with pytest.raises(ValueError, match="auxiliary head"):
        net.forward_aux(torch.zeros(1, 1, 8, 32, 32))


def test_the_aux_head_leaves_the_other_layers_initial_weights_alone() -> None:
    torch.manual_seed(3)
    plain = CloudNet(width=4)
    torch.manual_seed(3)
    with_aux = CloudNet(width=4, aux_dim=2)
    for name, value in plain.state_dict().items():
        assert torch.equal(value, with_aux.state_dict()[name]), name


def _toy_set(aux: bool) -> WindowSet:
    rng = np.random.default_rng(0)
    n = 24
    y = np.array([1, 0, 0] * 8, dtype=np.int64)
    clip = np.repeat(np.arange(8), 3)
    x = rng.integers(0, 255, (n, 1, 8, 32, 32), dtype=np.uint8)
    pose = rng.random((n, 16, 2)).astype(np.float32) if aux else None
    return WindowSet(x, y, clip, np.ones(n, dtype=np.int64), pose)


def test_training_with_posture_targets_builds_and_trains_the_aux_head() -> None:
    spec = InputSpec(frames=8, height=32, width=32, color="gray", fps=4.0)
    cfg = TrainConfig(epochs=1, width=4, batch_size=8, progress=False, aux_weight=1.0,
                      val_fraction=0.25, augment="light")  # fmt: skip
    torch.manual_seed(cfg.seed)  # as train_video_model does before building its net
    untrained = build_net("edge", spec, width=4, aux_dim=2).aux_head
    res = train_video_model("edge", _toy_set(aux=True), spec, cfg)
    assert isinstance(res.net, EdgeNet) and res.net.aux_head is not None
    assert untrained is not None
    # The head only gets gradients from the aux loss (the optimizer skips grad-less params).
    assert not torch.equal(res.net.aux_head.weight, untrained.weight)


def test_aux_weight_without_posture_targets_warns_and_trains_without_the_head(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec = InputSpec(frames=8, height=32, width=32, color="gray", fps=4.0)
    cfg = TrainConfig(epochs=1, width=4, batch_size=8, progress=False, aux_weight=1.0,
                      val_fraction=0.25, augment="light")  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="models.train"):
        res = train_video_model("edge", _toy_set(aux=False), spec, cfg)
    assert isinstance(res.net, EdgeNet) and res.net.aux_head is None
    assert "no posture targets" in caplog.text
