"""The pose cloud: track features, max over tracks, the composite CloudModel and its files."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from models.runtime.cloud_pose.features import FEATURE_NAMES, mirror_tracks, window_features
from models.runtime.errors import ModelLoadError
from models.runtime.pose.tracker import TrackerConfig
from tests.unit.models.pose_fakes import (
    H,
    T,
    W,
    fake_pose_model,
    standing_then_lying_track,
    standing_track,
    window,
)

K = TrackerConfig().max_tracks


def col(name: str) -> int:
    return FEATURE_NAMES.index(name)


def test_standing_then_lying_track_changes_axis_box_and_height() -> None:
    x = window_features(window(standing_then_lying_track()), K)
    assert x.shape == (K, T, len(FEATURE_NAMES))
    first, last = x[0, 0], x[0, -1]
    assert first[col("axis_cos")] > 0.95 and abs(first[col("axis_sin")]) < 0.2  # upright
    assert abs(last[col("axis_cos")]) < 0.3 and abs(last[col("axis_sin")]) > 0.9  # lying
    assert first[col("box_log_aspect")] < 0 < last[col("box_log_aspect")]  # tall → wide
    assert last[col("box_h")] < 0.5 * first[col("box_h")]
    assert last[col("hip_y")] > first[col("hip_y")] + 0.2  # hips sank (image y grows down)
    assert last[col("shoulder_y")] > first[col("shoulder_y")] + 0.3
    # the drop shows as one velocity spike at the change, nowhere else
    d = x[0, :, col("d_box_bottom")]
    assert np.argmax(np.abs(x[0, :, col("d_hip_y")])) == T // 2
    assert np.count_nonzero(d) <= 2
    assert np.all(x[1:] == 0.0)  # padded rows, track_valid 0
    assert np.all(x[0, :, col("track_valid")] == 1.0)


def test_no_track_gives_all_zero_features() -> None:
    x = window_features(window(), K)
    assert x.shape == (K, T, len(FEATURE_NAMES)) and not x.any()


def test_absent_frames_are_zero_but_the_track_stays_valid() -> None:
    tr = standing_then_lying_track()
    seen = tr.seen.copy()
    seen[-3:] = False
    x = window_features(window(replace(tr, seen=seen)), K)
    assert not x[0, -3:, 1:].any() and np.all(x[0, :, col("track_valid")] == 1)
    assert np.isfinite(x).all()


def test_mirror_flips_the_axis_and_keeps_heights() -> None:
    w = window(standing_then_lying_track())
    x, xm = window_features(w, K), window_features(mirror_tracks(w), K)
    np.testing.assert_allclose(xm[0, :, col("axis_sin")], -x[0, :, col("axis_sin")], atol=1e-5)
    for name in ("axis_cos", "hip_y", "box_h", "box_bottom"):
        np.testing.assert_allclose(xm[0, :, col(name)], x[0, :, col(name)], atol=1e-5)
    np.testing.assert_allclose(xm[0, :, col("box_cx")], 1 - x[0, :, col("box_cx")], atol=1e-5)


def _tiny_net(seed: int = 0):  # type: ignore[no-untyped-def]  # torch types stay in the test
    import torch

    from models.training.cloud_pose.net import TrackClassifier

    torch.manual_seed(seed)
    n = len(FEATURE_NAMES)
    return TrackClassifier(torch.zeros(n), torch.ones(n), width=8, hidden=8).eval()


def test_a_second_standing_person_does_not_lower_the_fallen_persons_score() -> None:
    import torch

    net = _tiny_net()
    with torch.no_grad():
        # hand-set: the track's fall logit follows how far its hips sank (hip_y)
        for p in net.parameters():
            p.zero_()
        net.conv[0].weight[0, col("hip_y"), 1] = 1.0
        net.conv[2].weight[0, 0, 1] = 1.0  # channel 0 passed through the later layers
        net.conv[4].weight[0, 0, 1] = 1.0
        net.head[0].weight[0, 8] = 1.0  # max-pooled channel 0
        net.head[3].weight[0, 0] = 10.0
        net.head[3].bias[0] = -5.0
    fallen = window_features(window(standing_then_lying_track(0)), K)
    both = window_features(window(standing_track(1), standing_then_lying_track(0)), K)
    standing = window_features(window(standing_track(1)), K)
    with torch.no_grad():
        p = {name: float(net(torch.from_numpy(x[None]))[0][0, 1])
             for name, x in (("fallen", fallen), ("both", both), ("standing", standing))}  # fmt: skip
    assert p["fallen"] > 0.9 > 0.5 > p["standing"]
    assert p["both"] == pytest.approx(p["fallen"], abs=1e-6)
    # an untrained net: the window is exactly its best track, whatever else is in view
    net = _tiny_net(seed=3)
    with torch.no_grad():
        _, track_p = net(torch.from_numpy(both[None]))
        window_p = net(torch.from_numpy(both[None]))[0][0, 1]
    assert float(window_p) == pytest.approx(float(track_p.max()), abs=1e-6)


def test_no_track_uses_the_learned_nobody_input() -> None:
    import torch

    net = _tiny_net()
    with torch.no_grad():
        net.nobody.fill_(1.5)
        probs, track_p = net(torch.zeros(2, K, T, len(FEATURE_NAMES)))
    np.testing.assert_allclose(probs[:, 1].numpy(), 1 / (1 + np.exp(-1.5)), rtol=1e-6)
    assert not track_p.any()


def _export(tmp_path: Path, pose: Path, pose_name: str = "pose/fake.onnx") -> Path:
    from models.runtime.pose.multipose import MultiPoseModel
    from models.training.cloud_pose.train import export_pose_cloud

    zoo = tmp_path / "zoo"
    target = zoo / pose_name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(pose.read_bytes())
    sha = MultiPoseModel.load(target).meta.sha256
    export_pose_cloud(_tiny_net(), zoo / "cloud.onnx", target, sha, long_side=64,
                      min_score=0.1, tracker=TrackerConfig(), extra={}, seed=0)  # fmt: skip
    return zoo / "cloud.onnx"


def test_composite_cloud_loads_checks_the_pose_file_and_predicts(tmp_path: Path) -> None:
    from models.runtime.cloud_pose.pipeline import PoseCloudModel
    from models.runtime.onnx_models import CloudModel

    cloud_path = _export(tmp_path, fake_pose_model(tmp_path / "fake.onnx"))
    cloud = CloudModel.load(cloud_path)
    assert isinstance(cloud, PoseCloudModel)
    rng = np.random.default_rng(0)
    windows = [rng.integers(0, 255, (16, H, W, 3), dtype=np.uint8),
               rng.integers(0, 255, (12, 120, 160, 3), dtype=np.uint8)]  # fmt: skip
    out = cloud.predict(windows)
    assert out.probs.shape == (2, 2) and out.probs.dtype == np.float32
    np.testing.assert_allclose(out.probs.sum(1), 1.0, rtol=1e-6)
    x = cloud.preprocess(windows)
    assert x.shape == (2, K, 16, len(FEATURE_NAMES)) and np.all(x[:, 0, :, 0] == 1)
    # another pose file under the recorded name: refused
    fake_pose_model(cloud_path.parent / "pose" / "fake.onnx", person_score=0.7)
    with pytest.raises(ModelLoadError, match="trained on"):
        CloudModel.load(cloud_path)
    (cloud_path.parent / "pose" / "fake.onnx").unlink()
    with pytest.raises(ModelLoadError):
        CloudModel.load(cloud_path)


def test_composite_cloud_runs_with_onnxruntime_only(tmp_path: Path) -> None:
    cloud_path = _export(tmp_path, fake_pose_model(tmp_path / "fake.onnx"))
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # any torch import now fails\n"
        "import numpy as np\n"
        "from models.runtime.onnx_models import CloudModel\n"
        f"m = CloudModel.load({str(cloud_path)!r})\n"
        "p = m.predict([np.zeros((16, 48, 64, 3), np.uint8)]).probs\n"
        "assert p.shape == (1, 2), p.shape\n"
        "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n"
        "print(type(m).__name__)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False, cwd=Path(__file__).resolve().parents[4])  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "PoseCloudModel"


def test_old_single_onnx_cloud_still_loads_as_before(tmp_path: Path) -> None:
    from models.runtime.cloud_pose.pipeline import PoseCloudModel
    from models.runtime.onnx_models import CloudModel
    from tests.unit.models.model_factory import cloud_model, save

    cloud = CloudModel.load(save(cloud_model(), tmp_path / "c.onnx"))
    assert not isinstance(cloud, PoseCloudModel)
    assert cloud.predict([np.zeros((4, 8, 8, 3), np.uint8)]).probs.shape == (1, 2)
    with pytest.raises(ModelLoadError):
        PoseCloudModel.load(tmp_path / "c.onnx")


def test_a_window_filmed_from_further_keeps_its_posture() -> None:
    from models.runtime.cloud_pose.features import rescale_tracks

    w = window(standing_then_lying_track())
    x, xs = window_features(w, K), window_features(rescale_tracks(w, 0.5, 0.1, 0.0), K)
    np.testing.assert_allclose(xs[0, :, col("box_h")], 0.5 * x[0, :, col("box_h")], rtol=1e-5)
    for name in ("axis_cos", "axis_sin", "box_log_aspect", "kp11_y", "kp0_x"):
        np.testing.assert_allclose(xs[0, :, col(name)], x[0, :, col(name)], atol=1e-5)


def test_fusion_recovers_the_weights_of_two_informative_scores() -> None:
    from models.training.cloud_pose.fusion import fit_fusion

    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.3).astype(np.float64)
    strong = 3.0 * (2 * y - 1) + rng.normal(0, 2, 2000)  # informative
    noise = rng.normal(0, 2, 2000)  # carries nothing
    w, _bias, f1 = fit_fusion(np.stack([noise, strong], 1), y, np.arange(2000), y.astype(int))
    assert abs(w[0]) < 0.1 < w[1]
    assert f1 > 0.8


def test_fused_composite_runs_both_clouds_and_checks_the_pixel_file(tmp_path: Path) -> None:
    import json

    import onnx

    from models.runtime.cloud_pose.pipeline import PIPELINE_KEY, PoseCloudModel, PosePipelineSpec
    from models.runtime.metadata import read_metadata, stamp_metadata
    from models.runtime.onnx_models import CloudModel
    from models.training.export import write_model_atomic
    from tests.unit.models.model_factory import cloud_model, save

    cloud_path = _export(tmp_path, fake_pose_model(tmp_path / "fake.onnx"))
    pixel = CloudModel.load(save(cloud_model(), cloud_path.parent / "pixel.onnx"))
    plain = CloudModel.load(cloud_path)
    assert isinstance(plain, PoseCloudModel)
    fusion = {"pixel_file": "pixel.onnx", "pixel_sha256": pixel.meta.sha256,
              "pose_weight": 0.0, "pixel_weight": 1.0, "bias": 0.0}  # fmt: skip
    model = onnx.load(str(cloud_path))
    meta = read_metadata(model)
    spec = PosePipelineSpec.from_meta(meta, str(cloud_path))
    extra = {**meta.extra, PIPELINE_KEY: replace(spec, fusion=fusion).to_json()}
    stamp_metadata(model, replace(meta, extra=extra, sha256=""))
    fused_path = cloud_path.parent / "fused.onnx"
    write_model_atomic(model, fused_path)
    fused = CloudModel.load(fused_path)
    assert isinstance(fused, PoseCloudModel) and fused.pixel is not None
    red = np.zeros((16, 48, 64, 3), np.uint8)
    red[..., 0] = 230
    windows = [red, np.zeros((16, 48, 64, 3), np.uint8)]
    # weights (0, 1, 0): the fused answer is the pixel cloud's
    np.testing.assert_allclose(fused.predict(windows).probs, pixel.predict(windows).probs,
                               atol=1e-5)  # fmt: skip
    assert fused.predict(windows).probs.shape == (2, 2)
    save(cloud_model(gain=3.0), cloud_path.parent / "pixel.onnx")  # another pixel file
    with pytest.raises(ModelLoadError, match="fusion"):
        CloudModel.load(fused_path)
    assert json.loads(meta.extra[PIPELINE_KEY]).get("fusion") is None
