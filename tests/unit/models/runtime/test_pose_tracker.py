"""Pose tracker on synthetic detections: identities through a crossing, a fading lying
person kept to the window's end, people walking out, empty frames, low-score people."""

from __future__ import annotations

import numpy as np
import pytest

from models.runtime.pose.results import FramePoses
from models.runtime.pose.tracker import TrackerConfig, box_iou, keypoint_similarity, track_window

W, H = 320, 240
# A standing person's 17 keypoints as (x, y) fractions of their box (COCO order).
_TEMPLATE = np.array(
    [[0.5, 0.08], [0.45, 0.06], [0.55, 0.06], [0.4, 0.08], [0.6, 0.08],
     [0.3, 0.22], [0.7, 0.22], [0.25, 0.4], [0.75, 0.4], [0.22, 0.55], [0.78, 0.55],
     [0.38, 0.55], [0.62, 0.55], [0.38, 0.77], [0.62, 0.77], [0.38, 0.97], [0.62, 0.97]],
    dtype=np.float32,
)  # fmt: skip


def person(
    box: tuple[float, float, float, float], score: float, kp_score: float = 0.5
) -> tuple[np.ndarray, np.ndarray, float]:
    x0, y0, x1, y1 = box
    kp = np.zeros((17, 3), np.float32)
    kp[:, 0] = x0 + _TEMPLATE[:, 0] * (x1 - x0)
    kp[:, 1] = y0 + _TEMPLATE[:, 1] * (y1 - y0)
    kp[:, 2] = kp_score
    return kp, np.array(box, np.float32), score


def frame(*people: tuple[np.ndarray, np.ndarray, float]) -> FramePoses:
    if not people:
        return FramePoses.empty(W, H)
    return FramePoses(
        np.stack([p[0] for p in people]), np.stack([p[1] for p in people]),
        np.array([p[2] for p in people], np.float32), W, H,
    )  # fmt: skip


def test_box_iou_and_keypoint_similarity() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 1 / 3, 0.0]], atol=1e-6)
    kp, _, _ = person((0, 0, 40, 100), 0.5)
    assert keypoint_similarity(kp, kp, 60.0, 0.2) == pytest.approx(1.0)
    far = kp.copy()
    far[:, 0] += 100
    assert keypoint_similarity(kp, far, 60.0, 0.2) < 0.01
    faint = kp.copy()
    faint[:, 2] = 0.1
    assert keypoint_similarity(kp, faint, 60.0, 0.2) == -1.0  # nothing confident in both


def test_two_people_crossing_keep_their_identities() -> None:
    poses = []
    for t in range(16):
        a = person((20 + 16 * t, 60, 60 + 16 * t, 200), 0.5 + 0.01 * (t % 3))
        b = person((260 - 16 * t, 64, 300 - 16 * t, 204), 0.52 - 0.01 * (t % 2))
        # Detections come best score first, so the order swaps between frames.
        poses.append(frame(*sorted([a, b], key=lambda p: -p[2])))
    tracks = track_window(poses)
    assert len(tracks) == 2
    directions = []
    for tr in tracks.tracks:
        assert tr.seen.all() and not tr.held.any()
        centre_x = 0.5 * (tr.boxes[:, 0] + tr.boxes[:, 2])
        steps = np.diff(centre_x)
        assert (steps > 0).all() or (steps < 0).all(), centre_x  # never jumps to the other
        directions.append(np.sign(steps[0]))
    assert sorted(directions) == [-1.0, 1.0]


def test_fading_lying_person_is_held_to_the_window_end() -> None:
    poses = []
    for t in range(16):
        if t < 8:  # standing
            poses.append(frame(person((140, 40, 180, 200), 0.55)))
        elif t < 11:  # on the floor: wide box, fading score
            poses.append(frame(person((110, 170, 230, 205), 0.15, kp_score=0.15)))
        else:  # gone from the model
            poses.append(frame())
    tracks = track_window(poses)
    assert len(tracks) == 1
    tr = tracks.tracks[0]
    assert tr.seen[:11].all() and not tr.seen[11:].any()
    assert tr.held[11:].all() and tr.present.all()
    # Held rows carry the last seen pose, with scores zeroed.
    np.testing.assert_array_equal(tr.keypoints[15, :, :2], tr.keypoints[10, :, :2])
    assert (tr.keypoints[11:, :, 2] == 0).all() and (tr.person_scores[11:] == 0).all()
    np.testing.assert_array_equal(tr.boxes[15], tr.boxes[10])
    assert (tr.first, tr.last) == (0, 10)


def test_a_low_person_is_held_only_hold_frames() -> None:
    poses = [frame(person((110, 170, 230, 205), 0.3))] * 2 + [frame()] * 14
    tr = track_window(poses, TrackerConfig(hold_frames=3)).tracks[0]
    assert tr.held.tolist() == [False] * 2 + [True] * 3 + [False] * 11


def test_upright_person_who_vanishes_is_dropped_without_stale_rows() -> None:
    poses = [frame(person((140, 40, 180, 200), 0.5))] * 6 + [frame()] * 10
    tr = track_window(poses).tracks[0]
    assert tr.seen[:6].all() and not tr.seen[6:].any()
    assert not tr.held.any()  # not near the floor: no carried-forward pose


def test_person_leaving_at_the_border_is_not_held_even_if_small() -> None:
    poses = [frame(person((140, 40, 180, 200), 0.5))] * 4
    poses += [frame(person((0, 120, 30, 200), 0.4))] * 2 + [frame()] * 10  # half out, left edge
    tr = track_window(poses).tracks[0]
    assert not tr.held.any()


def test_frames_with_nobody() -> None:
    tracks = track_window([frame() for _ in range(16)])
    assert len(tracks) == 0 and tracks.frames == 16 and (tracks.width, tracks.height) == (W, H)
    assert len(track_window([])) == 0


def test_steady_low_score_person_is_reported_but_a_blip_is_not() -> None:
    lying = person((110, 170, 230, 205), 0.12)
    blip = person((10, 10, 30, 40), 0.12)
    poses = [frame(lying, blip) if t == 3 else frame(lying) for t in range(16)]
    tracks = track_window(poses)
    assert len(tracks) == 1 and tracks.tracks[0].seen.all()


def test_a_new_person_entering_gets_a_new_track() -> None:
    a = person((20, 60, 60, 200), 0.6)
    b = person((250, 60, 290, 200), 0.6)
    poses = [frame(a) for _ in range(8)] + [frame(a, b) for _ in range(8)]
    tracks = track_window(poses)
    assert len(tracks) == 2
    assert tracks.tracks[0].seen.all()  # most frames first
    assert tracks.tracks[1].seen.tolist() == [False] * 8 + [True] * 8
    assert tracks.tracks[0].track_id != tracks.tracks[1].track_id


def test_frames_of_different_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        track_window([FramePoses.empty(W, H), FramePoses.empty(W + 1, H)])


def test_a_person_lost_while_coming_down_is_held_even_with_an_upright_box() -> None:
    """MoveNet's box lags a collapse: the last box is still tall, but its top came down."""
    poses = [frame(person((140, 40 + 10 * t, 180, 200), 0.4)) for t in range(6)]
    poses += [frame()] * 10
    tr = track_window(poses).tracks[0]
    assert tr.seen[:6].all() and tr.held[6:].all()


def test_a_faded_person_at_the_border_is_held_unless_moving_out() -> None:
    still = [frame(person((270, 40, 319, 200), 0.15)) for _ in range(6)] + [frame()] * 10
    assert track_window(still).tracks[0].held[6:].all()  # stood at the edge and faded
    out = [frame(person((270 + 8 * t, 40, 319 + min(8 * t, 1), 200), 0.15)) for t in range(6)]
    tr = track_window(out + [frame()] * 10).tracks[0]
    assert not tr.held.any()  # walking out of view
