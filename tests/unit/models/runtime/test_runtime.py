"""Runtime wrappers: loading checks, predict/score shapes, failure modes, import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from models import zoo_path
from models.runtime.errors import InferenceError, ModelLoadError, ModelMetadataError, WindowError
from models.runtime.features import default_feature_names
from models.runtime.onnx_models import CloudModel, EdgeModel, EdgeOutput, Switcher
from models.runtime.preprocess import STAT_NAMES
from tests.unit.models.model_factory import (
    cloud_model,
    colour_windows,
    edge_model,
    save,
    switcher_model,
)


@pytest.fixture
def edge_path(tmp_path: Path) -> Path:
    return save(edge_model(), tmp_path / "edge.onnx")


def test_edge_predict_gives_probs_embedding_and_stats(edge_path: Path) -> None:
    edge = EdgeModel.load(edge_path, threads=1)
    wins = colour_windows(3, seed=0)
    out = edge.predict(wins)
    assert out.probs.shape == (3, 2) and out.probs.dtype == np.float32
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0, atol=1e-6)
    assert out.embedding.shape == (3, 2)
    assert out.stats.shape == (3, len(STAT_NAMES))
    # The test edge's p_fall is sigmoid(8 * (grey - 0.5)): check against the window's luma.
    luma = np.array(
        [0.299 * w[0, 0, 0, 0] + 0.587 * w[0, 0, 0, 1] + 0.114 * w[0, 0, 0, 2] for w in wins]
    )
    expected = 1 / (1 + np.exp(-8 * (luma / 255 - 0.5)))
    np.testing.assert_allclose(out.p_fall, expected, atol=0.01)
    assert out.label.tolist() == (expected >= 0.5).astype(int).tolist()
    assert edge.meta.version == "t1" and len(edge.meta.sha256) == 64


def test_edge_without_embedding_output_yields_empty_embedding(tmp_path: Path) -> None:
    edge = EdgeModel.load(save(edge_model(with_embedding=False), tmp_path / "e.onnx"))
    out = edge.predict(colour_windows(2, seed=1))
    assert out.embedding.shape == (2, 0)


def test_cloud_predict_uses_its_own_spec(tmp_path: Path) -> None:
    cloud = CloudModel.load(save(cloud_model(), tmp_path / "c.onnx"))
    wins = colour_windows(4, seed=2)
    probs = cloud.predict(wins).probs
    red = np.array([w[0, 0, 0, 0] / 255 for w in wins])
    np.testing.assert_allclose(probs[:, 1], 1 / (1 + np.exp(-8 * (red - 0.5))), atol=0.01)
    assert cloud.preprocess(wins).shape == (4, 3, 4, 8, 8)


def test_switcher_scores_edge_output_with_metadata_threshold(
    tmp_path: Path, edge_path: Path
) -> None:
    names = default_feature_names(2)
    table = json.dumps({"rates": [0.1, 0.3], "thresholds": [0.9, 0.5]})
    sw = Switcher.load(save(switcher_model(names, threshold=0.6, calibration=table),
                            tmp_path / "s.onnx"))  # fmt: skip
    out = EdgeModel.load(edge_path).predict(colour_windows(5, seed=3))
    score = sw.score(out)
    assert score.shape == (5,) and np.all((score > 0) & (score < 1))
    assert sw.threshold == pytest.approx(0.6)
    assert sw.offload(out).tolist() == (score >= 0.6).tolist()
    assert sw.threshold_for_rate(0.2) == pytest.approx(0.6)  # the calibrated target itself
    assert sw.threshold_for_rate(0.1) == pytest.approx(0.9)
    assert sw.threshold_for_rate(0.15) == pytest.approx(0.8)  # interpolated


def test_switcher_rejects_an_edge_output_it_was_not_built_for(tmp_path: Path) -> None:
    sw = Switcher.load(save(switcher_model(default_feature_names(32)), tmp_path / "s.onnx"))
    out = EdgeOutput(np.full((1, 2), 0.5, np.float32), np.zeros((1, 2), np.float32),
                     np.zeros((1, len(STAT_NAMES)), np.float32))  # fmt: skip
    with pytest.raises(InferenceError, match="embedding"):
        sw.score(out)
    with pytest.raises(InferenceError, match="features"):
        sw.score_features(np.zeros((1, 3), np.float32))


def test_switcher_refuses_an_edge_it_was_not_distilled_for(
    tmp_path: Path, edge_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    edge = EdgeModel.load(edge_path)
    names = default_feature_names(2)

    def switcher_for(edge_sha: str | None, name: str) -> Switcher:
        pair = None if edge_sha is None else json.dumps({"edge": edge_sha, "edge_version": "t0"})
        return Switcher.load(save(switcher_model(names, pair=pair), tmp_path / name))

    switcher_for(edge.meta.sha256, "paired.onnx").check_edge(edge)  # its own edge: accepted
    with pytest.raises(ModelLoadError, match="distilled for edge model sha256 0123456789ab"):
        switcher_for("0123456789ab" + "0" * 52, "other.onnx").check_edge(edge)
    with caplog.at_level("WARNING", logger="models.runtime.onnx_models"):
        switcher_for(None, "unpaired.onnx").check_edge(edge)  # made elsewhere: a warning
    assert [r.getMessage() for r in caplog.records] == ["switcher_pair_unknown"]


def test_load_rejects_wrong_role_missing_file_garbage_and_tampering(
    tmp_path: Path, edge_path: Path
) -> None:
    with pytest.raises(ModelLoadError, match="expected a cloud model"):
        CloudModel.load(edge_path)
    with pytest.raises(ModelLoadError, match="cannot read"):
        EdgeModel.load(tmp_path / "absent.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"junk" * 10)
    with pytest.raises(ModelLoadError):
        EdgeModel.load(tmp_path / "junk.onnx")
    model = onnx.load(str(edge_path))
    model.graph.initializer[2].float_data[0] = 1.0  # change a weight, keep the old hash
    with pytest.raises(ModelLoadError, match="sha256"):
        EdgeModel.from_bytes(model.SerializeToString())


def test_load_rejects_a_graph_without_the_contract_outputs(tmp_path: Path) -> None:
    from models.runtime.metadata import read_metadata, stamp_metadata

    model = cloud_model()
    meta = read_metadata(model)
    model.graph.output[0].name = "scores"
    model.graph.node[-1].output[0] = "scores"
    stamp_metadata(model, meta)
    with pytest.raises(ModelLoadError, match="missing outputs"):
        CloudModel.load(save(model, tmp_path / "c.onnx"))


def test_metadata_errors_are_load_errors(tmp_path: Path) -> None:
    from models.runtime.metadata import ModelMeta, stamp_metadata

    model = edge_model()
    stamp_metadata(model, ModelMeta(role="edge", name="e", version="1"))
    with pytest.raises(ModelMetadataError):
        EdgeModel.load(save(model, tmp_path / "e.onnx"))
    assert issubclass(ModelMetadataError, ModelLoadError)


def test_bad_windows_are_window_errors(edge_path: Path) -> None:
    edge = EdgeModel.load(edge_path)
    with pytest.raises(WindowError):
        edge.predict([np.zeros((16, 8, 8, 3), dtype=np.float64)])
    with pytest.raises(WindowError):
        edge.predict([])


def test_zoo_path_names_the_three_roles(tmp_path: Path) -> None:
    assert zoo_path("edge").name == "edge.onnx"
    assert zoo_path("switcher", tmp_path) == tmp_path / "switcher.onnx"
    with pytest.raises(ValueError, match="unknown model role"):
        zoo_path("teacher")


def test_runtime_imports_neither_torch_nor_kafka_clients() -> None:
    code = (
        "import sys, models, models.runtime.onnx_models, models.evaluation.evaluate, models.training.dmd, models.evaluation.metrics, "
        "models.cli, models.training.dataset; "
        "bad = [m for m in ('torch', 'kafka', 'aiokafka', 'faust', 'redis') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[4])  # fmt: skip
    assert out.stdout.strip() == ""
