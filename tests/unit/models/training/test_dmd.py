"""DMD: pairs, label-free switcher training, threshold calibration, distil end to end."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import onnx
import pytest

from models.runtime.errors import CalibrationError, TrainingError
from models.runtime.onnx_models import CloudModel, EdgeModel, Switcher
from models.training import dmd
from tests.unit.models.model_factory import cloud_model, colour_windows, edge_model, save


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return save(edge_model(), tmp_path / "edge.onnx"), save(cloud_model(), tmp_path / "cloud.onnx")


def _labeled_pool(n: int, seed: int) -> list[tuple[np.ndarray, int]]:
    """(window, label) records like a labeled clip folder would give."""
    rng = np.random.default_rng(seed + 1)
    return [(w, int(rng.integers(0, 2))) for w in colour_windows(n, seed)]


def test_no_dmd_entry_point_accepts_labels() -> None:
    for fn in (dmd.generate_pairs, dmd.train_switcher, dmd.distill, dmd.calibrate_threshold,
               dmd.disagreement_target, dmd.calibration_table):  # fmt: skip
        params = inspect.signature(fn).parameters
        assert not [p for p in params if "label" in p.lower() or p in ("y", "target", "truth")]


def test_pairs_target_is_edge_cloud_disagreement(pair: tuple[Path, Path]) -> None:
    edge, cloud = EdgeModel.load(pair[0]), CloudModel.load(pair[1])
    wins = colour_windows(40, seed=4)
    pairs = dmd.generate_pairs(edge, cloud, iter(wins), batch_size=7, progress=False)
    assert len(pairs) == 40 and pairs.features.shape == (40, len(pairs.feature_names))
    assert "emb.1" in pairs.feature_names
    luma = np.array([w[0, 0, 0] @ np.array([0.299, 0.587, 0.114]) for w in wins]) / 255
    red = np.array([w[0, 0, 0, 0] for w in wins]) / 255
    expected = (luma >= 0.5) != (red >= 0.5)
    # Windows right at 0.5 may round either way after resizing.
    clear = (np.abs(luma - 0.5) > 0.01) & (np.abs(red - 0.5) > 0.01)
    assert pairs.disagree[clear].tolist() == expected[clear].tolist()
    target, kind = dmd.disagreement_target(pairs)
    assert kind == "argmax" and target.tolist() == pairs.disagree.astype(float).tolist()


def test_labels_cannot_change_the_switcher(pair: tuple[Path, Path], tmp_path: Path) -> None:
    """Shuffled, flipped or absent labels give a bit-identical switcher and scores."""
    pool = _labeled_pool(120, seed=5)
    shuffled = np.random.default_rng(9).permutation([y for _, y in pool])
    variants = {
        "as_given": pool,
        "shuffled": list(zip([w for w, _ in pool], shuffled, strict=True)),
        "flipped": [(w, 1 - y) for w, y in pool],
    }
    results = {}
    for name, records in variants.items():
        out = tmp_path / f"sw_{name}.onnx"
        dmd.distill(pair[0], pair[1], (w for w, _ in records), out, offload_rate=0.25, seed=3,
                    progress=False, switcher_epochs=5)  # fmt: skip
        model = onnx.load(str(out))
        weights = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer]
        sw = Switcher.load(out)
        probe = EdgeModel.load(pair[0]).predict(colour_windows(20, seed=77))
        results[name] = (weights, sw.threshold, sw.score(probe))
    ref_w, ref_t, ref_s = results["as_given"]
    for name in ("shuffled", "flipped"):
        w, t, s = results[name]
        assert t == ref_t
        np.testing.assert_array_equal(s, ref_s)
        for a, b in zip(w, ref_w, strict=True):
            np.testing.assert_array_equal(a, b)


def test_distill_writes_a_calibrated_switcher_with_pair_metadata(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "switcher.onnx"
    rep = dmd.distill(pair[0], pair[1], iter(colour_windows(200, seed=6)), out, offload_rate=0.2,
                      seed=0, progress=False, switcher_epochs=5)  # fmt: skip
    sw = Switcher.load(out)
    assert sw.meta.target_offload_rate == pytest.approx(0.2)
    assert sw.threshold == pytest.approx(rep.threshold)
    assert abs(rep.calibration_offload_rate - 0.2) <= 0.02
    assert rep.switcher_train_windows + rep.calibration_windows == 200
    pair_info = sw.meta.extra_json("pair")
    assert pair_info["edge"] == EdgeModel.load(pair[0]).meta.sha256
    assert sw.meta.extra_json("dmd")["target"] == "argmax"
    assert 0 < rep.disagreement_rate < 1


def test_distill_works_for_an_edge_without_embedding(tmp_path: Path) -> None:
    e = save(edge_model(with_embedding=False), tmp_path / "e.onnx")
    c = save(cloud_model(), tmp_path / "c.onnx")
    rep = dmd.distill(
        e,
        c,
        iter(colour_windows(80, seed=8)),
        tmp_path / "s.onnx",
        progress=False,
        switcher_epochs=5,
    )
    assert not [f for f in rep.feature_names if f.startswith("emb.")]
    assert "entropy" in rep.feature_names and "stat.motion_mean" in rep.feature_names
    assert Switcher.load(tmp_path / "s.onnx").score(
        EdgeModel.load(e).predict(colour_windows(3, 1))
    ).shape == (3,)


def test_models_that_always_agree_fall_back_to_the_soft_target(tmp_path: Path) -> None:
    e = save(edge_model(), tmp_path / "e.onnx")
    c = save(cloud_model(), tmp_path / "c.onnx")
    grey = [np.full((16, 12, 16, 3), v, dtype=np.uint8) for v in range(0, 250, 5)]
    rep = dmd.distill(e, c, iter(grey), tmp_path / "s.onnx", progress=False, switcher_epochs=5)
    assert rep.target_kind == "soft"


def test_empty_pool_and_bad_rate_are_rejected(pair: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="empty"):
        dmd.distill(
            pair[0], pair[1], iter([]), tmp_path / "s.onnx", progress=False, switcher_epochs=5
        )
    with pytest.raises(CalibrationError):
        dmd.distill(pair[0], pair[1], iter([]), tmp_path / "s.onnx", offload_rate=1.5)


def test_calibrate_threshold_sends_exactly_the_share() -> None:
    scores = np.array([0.9, 0.1, 0.5, 0.7, 0.3, 0.8, 0.2, 0.6, 0.4, 0.0])
    t = dmd.calibrate_threshold(scores, 0.3)
    assert np.sum(scores >= t) == 3 and 0.6 < t < 0.7  # midpoint of the gap
    assert np.sum(scores >= dmd.calibrate_threshold(scores, 0.01)) == 0
    assert np.sum(scores >= dmd.calibrate_threshold(scores, 0.99)) == 10
    for bad in (0.0, 1.0, -0.2):
        with pytest.raises(CalibrationError):
            dmd.calibrate_threshold(scores, bad)
    with pytest.raises(CalibrationError):
        dmd.calibrate_threshold(np.array([]), 0.2)


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.35])
def test_calibrated_share_holds_on_a_fresh_pool(rate: float) -> None:
    """Threshold from one unlabeled sample, share measured on a fresh sample: within 3 points."""
    rng = np.random.default_rng(11)
    calib, fresh = rng.beta(2, 5, size=3000), rng.beta(2, 5, size=3000)
    t = dmd.calibrate_threshold(calib, rate)
    assert abs(float(np.mean(fresh >= t)) - rate) <= 0.03
    table = dmd.calibration_table(calib)
    assert table["thresholds"] == sorted(table["thresholds"], reverse=True)
