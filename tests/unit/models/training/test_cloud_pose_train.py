"""The pose cloud's training path at toy size: pose cache → track set → train → export → load.

The fake pose model (one upright person per frame) makes the pose stage trivial, so what
is checked is the plumbing: the cache and the composite runtime compute the same
features for the same windows, and a trained, exported classifier loads as the cloud.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from models.runtime.clips import iter_windows
from models.runtime.cloud_pose.features import FEATURE_NAMES
from models.runtime.pose.multipose import MultiPoseModel
from models.runtime.pose.tracker import TrackerConfig
from models.training.cloud_pose.cache import PoseCacheKey, cache_folder, clip_cache_path
from models.training.cloud_pose.dataset import folder_tracks
from tests.unit.models.pose_fakes import fake_pose_model

pytestmark = pytest.mark.slow


def _write_clip(path: Path, n_frames: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(n_frames):
            img = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _folder(root: Path) -> Path:
    (root / "clips").mkdir(parents=True)
    rows = ["file,label,action,fall_start_s,fall_end_s"]
    for i in range(4):
        _write_clip(root / "clips" / f"{i}.mp4", 40, i)
        rows.append(
            f"clips/{i}.mp4,fall,fall,2.0,3.0" if i % 2 else f"clips/{i}.mp4,no_fall,walk,,"
        )
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_cache_dataset_train_export_and_the_runtime_agree(tmp_path: Path) -> None:
    from models.runtime.cloud_pose.pipeline import PoseCloudModel
    from models.runtime.onnx_models import CloudModel
    from models.training.cloud_pose.train import TrainConfig, export_pose_cloud, train_classifier

    data = _folder(tmp_path / "clips")
    pose_path = fake_pose_model(tmp_path / "zoo" / "pose" / "fake.onnx")
    pose = MultiPoseModel.load(pose_path)
    done, skipped = cache_folder(data, tmp_path / "cache", pose, shard=0, shards=2)
    assert (done, skipped) == (2, 0)
    assert cache_folder(data, tmp_path / "cache", pose, shard=0, shards=2) == (0, 2)  # resumed
    cache_folder(data, tmp_path / "cache", pose, shard=1, shards=2)
    assert clip_cache_path(tmp_path / "cache", "clips/3.mp4").is_file()

    key = PoseCacheKey(pose.meta.sha256, pose.long_side, 0.1)
    cfg = TrackerConfig()
    ts = folder_tracks(data, tmp_path / "cache", key, cfg, cfg.max_tracks, mirror=True)
    assert ts.x.shape[1:] == (cfg.max_tracks, 16, len(FEATURE_NAMES))
    assert ts.x_mirror is not None and ts.x_mirror.shape == ts.x.shape
    assert set(ts.y.tolist()) == {0, 1} and len(np.unique(ts.clip)) == 4

    res = train_classifier(ts, TrainConfig(epochs=2, batch=8, val_fraction=0.5, seed=1),
                           progress=False)  # fmt: skip
    assert 0.0 < res.threshold < 1.0
    export_pose_cloud(res.net, tmp_path / "zoo" / "cloud.onnx", pose_path, pose.meta.sha256,
                      long_side=pose.long_side, min_score=0.1, tracker=cfg, extra={},
                      seed=0)  # fmt: skip
    cloud = CloudModel.load(tmp_path / "zoo" / "cloud.onnx")
    assert isinstance(cloud, PoseCloudModel)
    windows = [w for _, _, w, _ in iter_windows(data)]
    assert len(windows) == len(ts)
    # the runtime computes, on the decoded windows, the very features training saw
    np.testing.assert_array_equal(cloud.preprocess(windows), ts.x)
    probs = cloud.predict(windows).probs
    assert probs.shape == (len(ts), 2)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)


def test_a_pose_file_outside_the_zoo_is_copied_beside_the_classifier(tmp_path: Path) -> None:
    import torch

    from models.runtime.cloud_pose.pipeline import PosePipelineSpec
    from models.runtime.onnx_models import CloudModel
    from models.training.cloud_pose.net import TrackClassifier
    from models.training.cloud_pose.train import export_pose_cloud

    pose_path = fake_pose_model(tmp_path / "elsewhere" / "fake.onnx")
    (tmp_path / "elsewhere" / "licences").mkdir()
    (tmp_path / "elsewhere" / "licences" / "NOTICE").write_text("upstream notice\n")
    sha = MultiPoseModel.load(pose_path).meta.sha256
    n = len(FEATURE_NAMES)
    net = TrackClassifier(torch.zeros(n), torch.ones(n), width=4, hidden=4).eval()
    out = tmp_path / "zoo" / "cloud.onnx"
    export_pose_cloud(net, out, pose_path, sha, long_side=64, min_score=0.1,
                      tracker=TrackerConfig(), extra={}, seed=0)  # fmt: skip
    assert (tmp_path / "zoo" / "pose" / "fake.onnx").read_bytes() == pose_path.read_bytes()
    assert (tmp_path / "zoo" / "pose" / "licences" / "NOTICE").is_file()
    cloud = CloudModel.load(out)
    spec = PosePipelineSpec.from_meta(cloud.meta, str(out))
    assert spec.pose_file == "pose/fake.onnx" and spec.pose_sha256 == sha
