"""fallwatch.* metadata: round trip, sha256 integrity, malformed values rejected."""

from __future__ import annotations

import json

import onnx
import pytest

from models.runtime.errors import ModelLoadError, ModelMetadataError
from models.runtime.metadata import (
    InputSpec,
    ModelMeta,
    compute_sha256,
    parse_model,
    read_metadata,
    stamp_metadata,
    verify_sha256,
)
from tests.unit.models.model_factory import EDGE_SPEC, edge_model, switcher_model


def _props(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def test_edge_metadata_round_trips_through_serialized_bytes() -> None:
    model = parse_model(edge_model().SerializeToString())
    meta = read_metadata(model)
    assert meta.role == "edge"
    assert meta.labels == ("no_fall", "fall")
    assert meta.input == EDGE_SPEC
    assert meta.seed == 1 and meta.flops == 10
    assert meta.sha256 == verify_sha256(model)
    # Values are plain JSON / strings, readable by any consumer.
    props = _props(model)
    assert json.loads(props["fallwatch.labels"]) == ["no_fall", "fall"]
    assert json.loads(props["fallwatch.input"])["color"] == "gray"


def test_switcher_metadata_carries_features_threshold_and_extras() -> None:
    table = json.dumps({"rates": [0.1, 0.2], "thresholds": [0.7, 0.5]})
    meta = read_metadata(switcher_model(("p_fall", "entropy"), threshold=0.42, calibration=table))
    assert meta.features == ("p_fall", "entropy")
    assert meta.threshold == pytest.approx(0.42)
    assert meta.target_offload_rate == pytest.approx(0.2)
    assert meta.extra_json("calibration") == {"rates": [0.1, 0.2], "thresholds": [0.7, 0.5]}
    assert meta.extra_json("absent") is None


def test_sha256_excludes_itself_and_detects_any_change() -> None:
    model = edge_model()
    stored = _props(model)["fallwatch.sha256"]
    assert compute_sha256(model) == stored
    tampered = onnx.ModelProto()
    tampered.CopyFrom(model)
    for p in tampered.metadata_props:
        if p.key == "fallwatch.version":
            p.value = "evil"
    with pytest.raises(ModelLoadError, match="sha256 mismatch"):
        verify_sha256(tampered)
    weights = onnx.ModelProto()
    weights.CopyFrom(model)
    weights.graph.initializer[2].float_data[0] = 99.0  # the gain
    with pytest.raises(ModelLoadError):
        verify_sha256(weights)


def test_restamping_replaces_old_fallwatch_keys_but_keeps_foreign_ones() -> None:
    model = edge_model()
    model.metadata_props.add(key="other.tool", value="kept")
    stamp_metadata(model, ModelMeta(role="cloud", name="x", version="2", input=EDGE_SPEC))
    props = _props(model)
    assert props["other.tool"] == "kept"
    assert props["fallwatch.role"] == "cloud"
    assert sum(p.key == "fallwatch.sha256" for p in model.metadata_props) == 1
    verify_sha256(model)


def test_missing_sha_and_garbage_bytes_are_load_errors() -> None:
    model = edge_model()
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != "fallwatch.sha256"]
    del model.metadata_props[:]
    for k, v in kept:
        model.metadata_props.add(key=k, value=v)
    with pytest.raises(ModelLoadError, match=r"no fallwatch\.sha256"):
        verify_sha256(model)
    with pytest.raises(ModelLoadError):
        parse_model(b"\x00\x01 definitely not onnx")


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("fallwatch.role", "teacher", "role"),
        ("fallwatch.labels", "no_fall,fall", "not JSON"),
        ("fallwatch.labels", '{"a": 1}', "list of strings"),
        ("fallwatch.input", '{"frames": 8}', "bad fallwatch.input"),
        ("fallwatch.input", '{"frames":8,"height":64,"width":64,"color":"ir"}', "color"),
        ("fallwatch.seed", "__import__('os')", "not a number"),
    ],
)
def test_malformed_values_raise_metadata_error(key: str, value: str, match: str) -> None:
    model = edge_model()
    for p in model.metadata_props:
        if p.key == key:
            p.value = value
    with pytest.raises(ModelMetadataError, match=match):
        read_metadata(model)


def test_edge_without_input_spec_and_switcher_without_features_are_rejected() -> None:
    model = edge_model()
    stamp_metadata(model, ModelMeta(role="edge", name="e", version="1"))
    with pytest.raises(ModelMetadataError, match=r"lacks fallwatch\.input"):
        read_metadata(model)
    stamp_metadata(model, ModelMeta(role="switcher", name="s", version="1"))
    with pytest.raises(ModelMetadataError, match=r"lacks fallwatch\.features"):
        read_metadata(model)


def test_input_spec_json_round_trip_and_validation() -> None:
    spec = InputSpec(frames=16, height=112, width=112, color="rgb", fps=8.0, resample="nearest")
    assert InputSpec.from_json(spec.to_json()) == spec
    assert spec.channels == 3 and EDGE_SPEC.channels == 1
    with pytest.raises(ModelMetadataError, match="layout"):
        InputSpec.from_json(json.dumps({**json.loads(spec.to_json()), "layout": "NTHWC"}))
    with pytest.raises(ModelMetadataError, match="non-positive"):
        InputSpec.from_json(json.dumps({**json.loads(spec.to_json()), "frames": 0}))
    with pytest.raises(ModelMetadataError, match="resample"):
        InputSpec.from_json(json.dumps({**json.loads(spec.to_json()), "resample": "lanczos"}))


def test_extra_keys_must_carry_the_prefix() -> None:
    with pytest.raises(ModelMetadataError, match="prefix"):
        stamp_metadata(edge_model(), ModelMeta(role="edge", name="e", version="1",
                                               input=EDGE_SPEC, extra={"calibration": "{}"}))  # fmt: skip
