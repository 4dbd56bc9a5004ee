"""Whole model chain at toy size: render → train edge + two-stage cloud → export (checked
against PyTorch) → distil on an unlabeled pool → write a held-out folder → `fallwatch evaluate`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_train_export_distil_evaluate_chain(tmp_path: Path) -> None:
    import torch  # the `train` extra (installed in dev and CI)

    from models.cli import add_model_commands
    from models.runtime.metadata import ModelMeta
    from models.runtime.onnx_models import CloudModel, EdgeModel, Switcher
    from models.synth import write_dataset
    from models.training.dataset import clip_seeds, synth_clipframes, synth_pool_windows
    from models.training.dmd import distill
    from models.training.export import check_agreement, export_video_model
    from models.training.nets import ExportWrapper
    from models.training.silhouette import (
        SilhouetteConfig,
        edge_silhouette_spec,
        silhouette_spec,
        train_silhouette_cloud,
    )

    torch.set_num_threads(1)
    specs = {"edge": edge_silhouette_spec(), "cloud": silhouette_spec()}
    frames = synth_clipframes(clip_seeds(11, 8), "train", specs["cloud"], workers=1,
                              progress=False)  # fmt: skip
    assert 0 < frames.y.sum() < len(frames.y) and frames.target[:, 0].max() == 255
    paths = {}
    for role in ("edge", "cloud"):
        cfg = SilhouetteConfig(seg_steps=3, seg_batch=4, head_epochs=2, width=4, hidden=8,
                               threads=1, progress=False, role=role,
                               decision="window_errors" if role == "edge" else "clip_f1",
                               tta_flip=role == "cloud", motion=role == "cloud",
                               heads=2 if role == "cloud" else 1)  # fmt: skip
        res = train_silhouette_cloud(frames, specs[role], cfg)
        assert len(res.thresholds) == cfg.heads and all(0.0 < t < 1.0 for t in res.thresholds)
        paths[role] = tmp_path / f"{role}.onnx"
        meta = ModelMeta(role=role, name=f"smoke-{role}", version="0", input=specs[role], seed=0)
        export_video_model(res.net, meta, paths[role], with_embedding=role == "edge")
        s = specs[role]
        worst = check_agreement(ExportWrapper(res.net, role == "edge"), paths[role].read_bytes(),
                                (1, s.channels, s.frames, s.height, s.width), "frames", seed=5)  # fmt: skip
        assert worst <= 1e-4
    # The exported edge reproduces the trained net's decisions on real windows.
    edge = EdgeModel.load(paths["edge"])
    assert edge.predict([np.zeros((16, 120, 160, 3), np.uint8)]).embedding.shape == (1, 16)

    pool = synth_pool_windows(clip_seeds(22, 4), "train", workers=1, progress=False)
    rep = distill(paths["edge"], paths["cloud"], pool, tmp_path / "switcher.onnx",
                  offload_rate=0.2, progress=False, switcher_epochs=5)  # fmt: skip
    assert rep.pool_windows > 10
    assert Switcher.load(tmp_path / "switcher.onnx").features == rep.feature_names

    heldout = tmp_path / "heldout"
    write_dataset(heldout, 4, 33, "heldout", 1)
    parser = argparse.ArgumentParser()
    add_model_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args([
        "evaluate", "--data", str(heldout), "--json", str(tmp_path / "ev.json"),
        "--plot", str(tmp_path / "ev.png"), "--edge", str(paths["edge"]),
        "--cloud", str(paths["cloud"]), "--switcher", str(tmp_path / "switcher.onnx"),
    ])  # fmt: skip
    assert args.handler(args) == 0
    report = json.loads((tmp_path / "ev.json").read_text())
    assert report["n_clips"] == 4
    for name in ("edge_only", "cloud_only", "confidence", "dmd", "oracle"):
        m = report["policies"][name]
        for key in ("precision", "recall", "f1", "window_f1", "offload_rate", "cost_vs_cloud"):
            assert 0.0 <= m[key] <= 1.0 + 1e-9 or key == "cost_vs_cloud"
    assert report["policies"]["cloud_only"]["cost_vs_cloud"] == pytest.approx(1.0)
    assert report["timing"]["cloud_ms"] > 0 and report["timing"]["edge_ms"] > 0
    assert (tmp_path / "ev.png").stat().st_size > 1000
    _ = CloudModel.load(paths["cloud"])
