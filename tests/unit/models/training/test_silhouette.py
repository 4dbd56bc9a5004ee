"""The cloud's two-stage net (models.training.silhouette) and the generator truth it trains on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.synth.clip import ClipTruth, render_clip
from models.synth.skeleton import JOINTS
from models.training.dataset import KEYPOINTS, target_maps


def test_truth_is_filled_and_leaves_frames_byte_identical() -> None:
    plain, meta = render_clip(5, width=64, height=48, duration_s=2.0)
    truth = ClipTruth.empty()
    framed, meta2 = render_clip(5, width=64, height=48, duration_s=2.0, truth=truth)
    assert np.array_equal(plain, framed) and meta == meta2
    assert truth.masks.shape == plain.shape[:3]
    assert truth.joints_uv.shape == (plain.shape[0], len(JOINTS), 2)
    assert np.array_equal(truth.head_uv, truth.joints_uv[:, JOINTS.index("head")])
    # The person is visible, and their pelvis projects inside or near their silhouette.
    assert truth.masks.any(axis=(1, 2)).mean() > 0.5
    k = int(np.argmax(truth.masks.sum(axis=(1, 2))))
    vs, us = np.nonzero(truth.masks[k])
    u, v = truth.joints_uv[k, JOINTS.index("pelvis")]
    assert us.min() - 3 <= u <= us.max() + 3 and vs.min() - 3 <= v <= vs.max() + 3


def test_target_maps_put_each_gaussian_on_its_joint_and_skip_joints_outside() -> None:
    masks = np.zeros((1, 40, 80), dtype=bool)
    masks[0, 10:30, 20:28] = True
    joints = np.array([[[22.0, 13.0], [-5.0, 3.0]]], dtype=np.float32)  # second: outside
    t = target_maps(masks, joints, (40, 80), (10, 20))
    assert t.shape == (1, 3, 10, 20) and t.dtype == np.uint8
    assert t[0, 0, 3:7, 5:7].min() == 255 and t[0, 0, :2].max() == 0  # box-averaged silhouette
    assert np.unravel_index(int(t[0, 1].argmax()), (10, 20)) == (
        3,
        5,
    )  # (5.5, 3.25) in target cells
    assert t[0, 2].max() == 0


torch = pytest.importorskip("torch")


def _maps_with(mask: np.ndarray, joints_xy: list[tuple[float, float]]) -> torch.Tensor:
    """Map logits whose silhouette is `mask` and whose heatmaps peak sharply at `joints_xy`."""
    h, w = mask.shape
    maps = np.full((1, 1 + len(KEYPOINTS), h, w), -30.0, dtype=np.float32)
    maps[0, 0] = np.where(mask, 30.0, -30.0)
    for j, (x, y) in enumerate(joints_xy):
        maps[0, 1 + j, int(y), int(x)] = 30.0
    return torch.from_numpy(maps)


def test_frame_features_read_the_silhouette_and_the_joints() -> None:
    from models.training.silhouette import GEOM, N_KEY, SilhouetteNet

    standing = np.zeros((24, 32), dtype=bool)
    standing[4:22, 14:18] = True
    lying = np.zeros((24, 32), dtype=bool)
    lying[18:22, 6:26] = True
    joints = [(16.0, 5.0)] + [(16.0, 12.0)] * (N_KEY - 1)
    f_up = SilhouetteNet.frame_features(_maps_with(standing, joints))[0]
    f_down = SilhouetteNet.frame_features(_maps_with(lying, joints))[0]
    # spread x, spread y, log aspect: tall for standing, flat for lying
    assert f_up[5] > f_up[4] and f_down[4] > f_down[5]
    assert f_up[7] > 0 > f_down[7]
    base = GEOM
    head_x, head_y = float(f_up[base]), float(f_up[base + N_KEY])
    assert head_x == pytest.approx(16.5 / 32, abs=1e-3) and head_y == pytest.approx(
        5.5 / 24, abs=1e-3
    )


def test_window_features_do_not_change_when_the_camera_zooms() -> None:
    from models.training.silhouette import FRAME_FEATURES, GEOM, N_KEY, SilhouetteNet

    rng = np.random.default_rng(0)
    per_frame = torch.from_numpy(rng.uniform(0.3, 0.6, (2, 16, FRAME_FEATURES)).astype(np.float32))
    zoomed = per_frame.clone()
    base = GEOM
    coords = list(range(base, base + 2 * N_KEY))
    zoomed[..., coords] = 0.5 + 1.7 * (per_frame[..., coords] - 0.5)
    a = SilhouetteNet.window_features(per_frame)[:, FRAME_FEATURES : FRAME_FEATURES + 2 * N_KEY + 2]
    b = SilhouetteNet.window_features(zoomed)[:, FRAME_FEATURES : FRAME_FEATURES + 2 * N_KEY + 2]
    assert torch.allclose(a, b, atol=2e-2)


def test_export_runs_in_onnxruntime_and_segmenter_weights_round_trip(tmp_path: Path) -> None:
    from models.runtime.metadata import ModelMeta
    from models.runtime.onnx_models import CloudModel
    from models.training.export import export_video_model
    from models.training.silhouette import (
        SilhouetteNet,
        load_segmenter,
        save_segmenter,
        silhouette_spec,
    )

    torch.manual_seed(0)
    net = SilhouetteNet(width=4, hidden=8).eval()
    spec = silhouette_spec()
    meta = ModelMeta(role="cloud", name="t-cloud", version="0", input=spec, seed=0)
    export_video_model(net, meta, tmp_path / "cloud.onnx", with_embedding=False)
    out = CloudModel.load(tmp_path / "cloud.onnx").predict([np.zeros((16, 120, 160, 3), np.uint8)])
    assert out.probs.shape == (1, 2) and np.isclose(out.probs.sum(), 1.0, atol=1e-5)

    save_segmenter(net, tmp_path / "seg.npz", model_sha256="abc")
    with np.load(tmp_path / "seg.npz") as z:
        assert str(z["__model_sha256__"]) == "abc" and int(z["__width__"]) == net.width
    other = SilhouetteNet(width=4, hidden=8)
    load_segmenter(other, tmp_path / "seg.npz")
    assert torch.equal(other.enc1[0].weight, net.enc1[0].weight)
    assert not torch.equal(other.heads[0].head.weight, net.heads[0].head.weight)  # not in the file
    from models.runtime.errors import TrainingError

    with pytest.raises(TrainingError):
        load_segmenter(SilhouetteNet(width=8, hidden=8), tmp_path / "seg.npz")


@pytest.mark.parametrize("motion", [False, True])
def test_a_real_clip_folder_retrains_only_the_temporal_stage(tmp_path: Path, motion: bool) -> None:
    """`fallwatch train --role cloud --data DIR`: footage without silhouettes keeps the given
    per-frame stage (with or without motion channels, as its file says) and fits the
    temporal one; windows and labels are the folder reader's."""
    import argparse

    from models.cli import add_model_commands
    from models.runtime.clips import iter_windows
    from models.runtime.onnx_models import CloudModel
    from models.synth import write_dataset
    from models.training.dataset import folder_clipframes
    from models.training.silhouette import SilhouetteNet, save_segmenter, silhouette_spec

    folder = tmp_path / "clips"
    write_dataset(folder, 6, 41, "train", 1)
    frames = folder_clipframes(folder, silhouette_spec(), progress=False)
    reader = [(cid, label) for cid, _s, _w, label in iter_windows(folder)]
    assert [int(c) for c in frames.clip] == [c for c, _ in reader]
    assert [int(y) for y in frames.y] == [int(label or 0) for _, label in reader]
    assert frames.x.shape[1:] == (3, 96, 128) and not frames.target.any()
    assert frames.first.max() + 16 <= len(frames.x)

    torch.manual_seed(0)
    seg = SilhouetteNet(width=4, motion=motion)  # a mismatched net would refuse these weights
    save_segmenter(seg, tmp_path / "seg.npz")
    parser = argparse.ArgumentParser()
    add_model_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args([
        "train", "--role", "cloud", "--data", str(folder), "--out", str(tmp_path / "c.onnx"),
        "--segmenter", str(tmp_path / "seg.npz"), "--width", "4", "--epochs", "1",
    ])  # fmt: skip
    assert 0 < frames.y.sum() < len(frames.y)  # seed 41 gives both classes
    assert args.handler(args) == 0
    cloud = CloudModel.load(tmp_path / "c.onnx")
    assert cloud.predict([np.zeros((16, 120, 160, 3), np.uint8)]).probs.shape == (1, 2)
    assert not (tmp_path / "c_segmenter.npz").exists()  # the per-frame stage was not retrained


def test_test_time_mirroring_makes_the_answer_mirror_invariant(tmp_path: Path) -> None:
    from models.runtime.metadata import ModelMeta
    from models.training.export import export_video_model
    from models.training.silhouette import SilhouetteNet, silhouette_spec

    torch.manual_seed(1)
    net = SilhouetteNet(width=4, hidden=8, tta_flip=True).eval()
    x = torch.rand(2, 3, 16, 96, 128)
    with torch.no_grad():
        a, emb_a = net(x)
        b, emb_b = net(x.flip(4))
        plain, _ = SilhouetteNet(width=4, hidden=8).eval()(x)
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(emb_a, emb_b, atol=1e-5)
    assert plain.shape == a.shape
    meta = ModelMeta(role="cloud", name="t-cloud", version="0", input=silhouette_spec(), seed=0)
    export_video_model(net, meta, tmp_path / "c.onnx", with_embedding=False)  # checks 1e-4


def test_background_swap_keeps_the_person_and_replaces_the_room() -> None:
    from models.training.silhouette import N_KEY
    from models.training.silhouette.augment import swap_background

    gen = torch.Generator().manual_seed(0)
    b, h, w = 6, 96, 128
    x = torch.rand(b, 3, h, w, generator=gen)
    tgt = torch.zeros(b, 1 + N_KEY, h // 4, w // 4)
    tgt[:, 0, 6:18, 12:20] = 1.0  # the person: rows 24..72, columns 48..80 at full size
    person = (slice(None), slice(None), slice(30, 66), slice(54, 74))
    room = (slice(None), slice(None), slice(0, 12), slice(0, 24))

    assert torch.equal(swap_background(x, tgt, gen, 0.0), x)
    out = swap_background(x, tgt, gen, 1.0)
    assert out.shape == x.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.allclose(out[person], x[person], atol=1e-6)
    # Every frame's room changed: a texture or another frame's (person-free) room.
    changed = (out[room] - x[room]).abs().flatten(1).mean(1)
    assert bool((changed > 0.05).all()), changed


def test_motion_channels_show_only_what_moved() -> None:
    from models.training.silhouette import with_motion

    torch.manual_seed(0)
    room = 0.2 + 0.5 * torch.rand(1, 3, 1, 8, 8)  # 0.2..0.7
    still = room.expand(1, 3, 16, 8, 8).clone()
    out = with_motion(still, still.mean(dim=2, keepdim=True))
    assert out.shape == (1, 6, 16, 8, 8) and torch.equal(out[:, :3], still)
    assert torch.allclose(out[:, 3:], torch.full_like(still, 0.5), atol=1e-6)
    moving = still.clone()
    moving[:, :, 8:, 2:4, 2:4] = 1.0  # something bright arrives in the second half
    diff = with_motion(moving, moving.mean(dim=2, keepdim=True))[:, 3:] - 0.5
    assert float(diff[:, :, 12, 2:4, 2:4].min()) > 0.1  # there now: brighter than the mean
    assert float(diff[:, :, 2, 2:4, 2:4].max()) < -0.1  # not there yet: darker
    assert float(diff[:, :, :, 5:, 5:].abs().max()) < 1e-6  # the rest of the room: nothing


def test_motion_net_trains_on_what_it_exports_and_stamps_its_segmenter(tmp_path: Path) -> None:
    """The temporal head's training features (window banks) are what the exported chain
    computes on the same window, and the segmenter file says it reads motion channels."""
    from models.runtime.errors import TrainingError
    from models.runtime.metadata import ModelMeta
    from models.runtime.onnx_models import CloudModel
    from models.training.dataset import clip_seeds, synth_clipframes
    from models.training.export import export_video_model
    from models.training.silhouette import (
        SilhouetteNet,
        head_scores,
        load_segmenter,
        save_segmenter,
        segmenter_has_motion,
        silhouette_spec,
        window_feature_bank,
    )

    spec = silhouette_spec()
    data = synth_clipframes(clip_seeds(5, 1), "train", spec, workers=1, progress=False)
    torch.manual_seed(0)
    net = SilhouetteNet(width=4, hidden=8, motion=True).eval()
    bank = window_feature_bank(net, data, spec, windows=np.array([0, 1]))
    x = torch.stack([torch.from_numpy(data.x[f : f + 16]) for f in data.first[:2]]).float() / 255
    with torch.no_grad():
        direct = torch.softmax(net(x.transpose(1, 2))[0], dim=1)[:, 1].numpy()
    assert np.allclose(head_scores(net, bank), direct, atol=1e-5)

    meta = ModelMeta(role="cloud", name="t-cloud", version="0", input=spec, seed=0)
    export_video_model(net, meta, tmp_path / "c.onnx", with_embedding=False)  # checks 1e-4
    assert CloudModel.load(tmp_path / "c.onnx").predict(
        [np.zeros((16, 96, 128, 3), np.uint8)]
    ).probs.shape == (1, 2)

    save_segmenter(net, tmp_path / "seg.npz")
    assert segmenter_has_motion(tmp_path / "seg.npz")
    load_segmenter(SilhouetteNet(width=4, hidden=8, motion=True), tmp_path / "seg.npz")
    with pytest.raises(TrainingError):
        load_segmenter(SilhouetteNet(width=4, hidden=8), tmp_path / "seg.npz")
    save_segmenter(SilhouetteNet(width=4, hidden=8), tmp_path / "plain.npz")
    assert not segmenter_has_motion(tmp_path / "plain.npz")


def test_several_heads_decide_by_their_mean_margin_and_each_keeps_its_threshold(
    tmp_path: Path,
) -> None:
    """An ensemble of temporal heads: the net's logits are the heads' means (each with its own
    folded bias), stage B fits every head and folds its own threshold, and the exported
    chain computes the same thing."""
    import math

    from models.runtime.metadata import ModelMeta
    from models.training.dataset import clip_seeds, synth_clipframes
    from models.training.export import export_video_model
    from models.training.silhouette import (
        SilhouetteConfig,
        SilhouetteNet,
        feature_banks,
        fit_temporal_head,
        head_scores,
        silhouette_spec,
        window_stack,
    )

    with pytest.raises(ValueError, match="heads"):
        SilhouetteNet(width=4, hidden=8, heads=0)
    spec = silhouette_spec()
    data = synth_clipframes(clip_seeds(11, 6), "train", spec, workers=1, progress=False)
    assert 0 < data.y.sum() < len(data.y)
    torch.manual_seed(0)
    net = SilhouetteNet(width=4, hidden=8, heads=3)
    cfg = SilhouetteConfig(head_epochs=2, width=4, hidden=8, heads=3, threads=1, progress=False,
                           val_fraction=0.34)  # fmt: skip
    gen, rng = torch.Generator().manual_seed(0), np.random.default_rng(0)
    banks = feature_banks(net, data, spec, cfg, gen)
    thresholds, _, _, _, history = fit_temporal_head(net, data, banks, spec, cfg, gen, rng)
    assert len(thresholds) == 3 and {h["head"] for h in history} == {0, 1, 2}
    for head, t in zip(net.heads, thresholds, strict=True):
        assert math.isclose(
            float(head.get_buffer("fall_bias")), math.log((1 - t) / t), rel_tol=1e-5
        )
    # Heads differ (own initialisation and batches), and the net averages their logits.
    assert not torch.equal(net.heads[0].head.weight, net.heads[1].head.weight)
    feats = torch.from_numpy(window_stack(banks.filmed, data.first, spec))
    with torch.no_grad():
        each = torch.stack([net.classify(feats, heads=[k])[0] for k in range(3)])
        both, emb = net.classify(feats)
    assert torch.allclose(both, each.mean(dim=0), atol=1e-6) and emb.shape == (len(feats), 16)
    margin = (each[..., 1] - each[..., 0]).mean(dim=0).numpy()
    assert np.array_equal(head_scores(net, feats.numpy()) >= 0.5, margin >= 0)
    meta = ModelMeta(role="cloud", name="t-cloud", version="0", input=spec, seed=0)
    export_video_model(net, meta, tmp_path / "c.onnx", with_embedding=False)  # checks 1e-4


def test_count_macs_counts_1d_convolutions_so_every_temporal_head_is_in_the_compute() -> None:
    from torch import nn

    from models.training.nets import count_macs
    from models.training.silhouette import FRAME_FEATURES, WINDOW_EXTRA, SilhouetteNet

    toy = nn.Sequential(nn.Conv1d(4, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 16, 2))
    assert count_macs(toy, torch.zeros(1, 4, 16)) == 16 * 8 * 4 * 3 + 2 * 8 * 16
    x = torch.zeros(1, 3, 16, 96, 128)
    one, three = (count_macs(SilhouetteNet(width=4, hidden=8, heads=k), x) for k in (1, 3))
    per_head = count_macs(SilhouetteNet(width=4, hidden=8).heads[0],
                          torch.zeros(1, FRAME_FEATURES + WINDOW_EXTRA, 16))  # fmt: skip
    assert per_head > 0 and three - one == 2 * per_head


def test_stage_a_in_bfloat16_trains_like_float32_and_keeps_float32_weights() -> None:
    """`SilhouetteConfig.bf16` only changes the precision of stage A's forward pass (where
    the CPU has fast bfloat16 kernels): the weights stay float32, and two runs from one seed
    move them far and end close to each other."""
    from dataclasses import replace

    from models.training.dataset import clip_seeds, synth_clipframes
    from models.training.silhouette import SilhouetteConfig, native_bf16, silhouette_spec
    from models.training.silhouette.train import _seeded_net, _stage_a

    spec = silhouette_spec()
    data = synth_clipframes(clip_seeds(11, 3), "train", spec, workers=1, progress=False)
    cfg = SilhouetteConfig(width=4, hidden=8, motion=True, seg_steps=40, seg_minutes=10.0,
                           seg_batch=8, val_fraction=0.0, progress=False, threads=1)  # fmt: skip
    runs = []
    for bf16 in (False, True):
        run_cfg = replace(cfg, bf16=bf16)
        net, gen, rng = _seeded_net(spec, run_cfg, True)
        before = [p.detach().clone() for p in net.parameters()]
        steps, _, forward = _stage_a(net, data, spec, run_cfg, gen, rng)
        assert steps == 40
        assert forward == ("bfloat16" if bf16 and native_bf16() else "float32")
        assert all(p.dtype == torch.float32 for p in net.parameters())
        runs.append((before, [p.detach().clone() for p in net.parameters()]))
    (start_a, end_a), (start_b, end_b) = runs
    assert all(torch.equal(a, b) for a, b in zip(start_a, start_b, strict=True))  # same seed
    moved = sum(float((e - s).abs().sum()) for s, e in zip(start_a, end_a, strict=True))
    apart = sum(float((a - b).abs().sum()) for a, b in zip(end_a, end_b, strict=True))
    assert moved > 0
    if native_bf16():
        assert 0 < apart < 0.5 * moved  # a different precision, the same descent
    else:
        assert apart == 0  # no fast kernels: the flag leaves float32 on


def test_stage_a_runs_the_recipes_steps_and_a_rebuild_from_one_seed_is_the_same_net() -> None:
    """The recipe fixes stage A's steps (models.training.recipe): whatever the machine's pace,
    a rebuild runs the same steps on the same draws and ends with the same weights."""
    from models.training.dataset import clip_seeds, synth_clipframes
    from models.training.recipe import FULL
    from models.training.silhouette import SilhouetteConfig, silhouette_spec
    from models.training.silhouette.train import _seeded_net, _stage_a

    assert FULL.cloud_seg_steps > 0 and FULL.edge_seg_steps > 0
    spec = silhouette_spec()
    data = synth_clipframes(clip_seeds(12, 2), "train", spec, workers=1, progress=False)
    cfg = SilhouetteConfig(width=4, hidden=8, seg_steps=15, seg_minutes=10.0, seg_batch=8,
                           val_fraction=0.0, progress=False, threads=1, bf16=False)  # fmt: skip
    ends = []
    for _ in range(2):
        net, gen, rng = _seeded_net(spec, cfg, True)
        steps, _, _ = _stage_a(net, data, spec, cfg, gen, rng)
        assert steps == 15
        ends.append([p.detach().clone() for p in net.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*ends, strict=True))
