"""BlazePose full under onnxruntime: anchors, rotated regions, loading checks, and a
rendered standing person found on the renderer's true joints."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from models.runtime.errors import ModelLoadError
from models.runtime.pose import zoo_pose_path
from models.runtime.pose.blazepose import BLAZE_TO_COCO, BlazePoseModel, Region, ssd_anchors

DETECTOR = zoo_pose_path("blazepose_detector")
LANDMARKS = zoo_pose_path("blazepose_landmark_full")


@pytest.fixture(scope="module")
def model() -> BlazePoseModel:
    return BlazePoseModel.load(DETECTOR, LANDMARKS, threads=1)


def test_anchors_match_the_detector_output() -> None:
    a = ssd_anchors()
    assert a.shape == (2254, 2)
    assert (a > 0).all() and (a < 1).all()
    np.testing.assert_allclose(a[0], [0.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(a[-1], [6.5 / 7, 6.5 / 7])


def test_region_geometry() -> None:
    # Scale point straight above the hip centre: upright, no rotation.
    r = Region.from_points(np.array([100.0, 120.0]), np.array([100.0, 80.0]))
    assert r.rotation == pytest.approx(0.0, abs=1e-9) and r.size == pytest.approx(100.0)
    x, y = r.to_source(np.array([0.5, 0.0]), np.array([0.5, 0.0]))
    np.testing.assert_allclose([x[0], y[0], x[1], y[1]], [100, 120, 50, 70])
    # Scale point to the right: the person lies along x, the region turns by 90 degrees.
    lying = Region.from_points(np.array([100.0, 120.0]), np.array([140.0, 120.0]))
    assert lying.rotation == pytest.approx(math.pi / 2)
    x, y = lying.to_source(np.array([0.5]), np.array([0.0]))  # the crop's top = the head
    np.testing.assert_allclose([x[0], y[0]], [150, 120], atol=1e-9)
    # The crop puts the region's centre at the crop's centre.
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[115:126, 95:106] = 255
    crop = lying.crop(frame, size=64)
    assert crop.shape == (1, 64, 64, 3) and crop.dtype == np.float32
    assert crop[0, 32, 32, 0] > 0.9 and crop[0, 2, 2, 0] == 0.0


def test_loading_checks_kind_and_files(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="blazepose_detector"):
        BlazePoseModel.load(LANDMARKS, LANDMARKS)
    with pytest.raises(ModelLoadError, match="cannot read"):
        BlazePoseModel.load(tmp_path / "none.onnx", LANDMARKS)
    assert len(BLAZE_TO_COCO) == 17 and BLAZE_TO_COCO.max() < 33


def test_nobody_in_an_empty_room(model: BlazePoseModel) -> None:
    poses = model.detect(np.full((3, 120, 160, 3), 90, np.uint8))
    assert [len(p) for p in poses] == [0, 0, 0]


def test_a_rendered_standing_person_is_found_on_the_true_joints(model: BlazePoseModel) -> None:
    from models.evaluation.pose_measure import body_size, on_body, truth_keypoints
    from models.synth import render_clip
    from models.synth.clip import ClipTruth

    truth = ClipTruth.empty()
    frames, _ = render_clip(3, preset="train", action="stand_still", width=320, height=240,
                            fps=4.0, duration_s=1.0, truth=truth)  # fmt: skip
    poses, timings = model.detect_timed(frames)
    assert timings.frames == 4
    tk, size = truth_keypoints(truth.joints_uv), body_size(truth.joints_uv)
    for t, p in enumerate(poses):
        assert len(p) == 1 and 0.1 <= p.scores[0] <= 1.0
        assert p.keypoints.shape == (1, 17, 3)
        assert on_body(p.keypoints[0], tk[t], float(size[t])).sum() >= 10
