"""Synthetic motion ground truth, checked on the 3D skeleton (not pixels)."""

from __future__ import annotations

import numpy as np
import pytest

from models.synth.actions import ACTION_WEIGHTS, ACTIONS, FALL_ACTIONS, choose_action
from models.synth.clip import POSTURE_NAMES, clip_posture, posture, render_clip, simulate_clip
from models.synth.presets import PRESETS
from models.synth.skeleton import CAPSULES, joint_index

HEAD = joint_index("head")
PELVIS = joint_index("pelvis")
FPS = 25.0  # finer than 8 fps so the descent is sampled densely


def _z_at(times: np.ndarray, series: np.ndarray, t: float) -> float:
    return float(np.interp(t, times, series))


@pytest.mark.parametrize("action", FALL_ACTIONS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fall_timing_and_head_trajectory(action: str, seed: int) -> None:
    motion, _ = simulate_clip(seed, action=action, fps=FPS)
    assert motion.plan.label == "fall"
    assert motion.plan.fall is not None
    onset, impact = motion.plan.fall
    assert onset >= 1.5
    assert impact <= motion.duration_s - 1.0, "descent and some lying must be inside the clip"
    assert 0.4 <= impact - onset <= 2.0
    t, head = motion.times, motion.joints[:, HEAD, 2]
    head_before = _z_at(t, head, onset - 0.05)
    head_impact = _z_at(t, head, impact + 0.1)
    assert head_before > 0.9, "upright (or seated) before the fall"
    assert head_impact < 0.6, "on the floor at impact"
    # Gravity: the head drops more in the second half of the descent than in the first.
    mid = (onset + impact) / 2
    assert head_before - _z_at(t, head, mid) < _z_at(t, head, mid) - head_impact
    after = t >= impact + 0.6
    assert head[after].max() < 0.6, "stays low after the fall"
    pelvis_xy = motion.joints[after][:, PELVIS, :2]
    assert np.ptp(pelvis_xy, axis=0).max() < 0.3, "lies mostly still"


@pytest.mark.parametrize(
    "action", ["walk", "stand_still", "sit_down", "bend_pick_up", "squat", "jump"]
)
def test_daily_activities_are_not_falls_and_stay_up(action: str) -> None:
    motion, _ = simulate_clip(11, action=action, fps=8.0)
    assert motion.plan.label == "no_fall"
    assert motion.plan.fall is None
    assert motion.joints[:, HEAD, 2].min() > 0.7


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_bodies_never_sink_into_the_floor(action: str) -> None:
    motion, _ = simulate_clip(5, action=action, fps=8.0)
    radius = np.zeros(motion.joints.shape[1])
    for a, b, rkey, _ in CAPSULES:
        r = motion.fig.radii[rkey]
        radius[joint_index(a)] = max(radius[joint_index(a)], r)
        radius[joint_index(b)] = max(radius[joint_index(b)], r)
    lowest = (motion.joints[:, :, 2] - radius).min()
    assert lowest > -0.02


def test_action_mix_is_roughly_half_falls() -> None:
    rng = np.random.default_rng(0)
    draws = [choose_action(rng) for _ in range(3000)]
    falls = sum(d in FALL_ACTIONS for d in draws) / len(draws)
    assert 0.40 <= falls <= 0.50
    assert set(draws) == set(ACTION_WEIGHTS)


def test_heldout_ranges_reach_outside_train() -> None:
    train, held = PRESETS["train"], PRESETS["heldout"]
    lo_t = min(lo for lo, _ in train.cam_height)
    hi_t = max(hi for _, hi in train.cam_height)
    assert any(lo < lo_t or hi > hi_t for lo, hi in held.cam_height)
    fov_t = (min(lo for lo, _ in train.hfov_deg), max(hi for _, hi in train.hfov_deg))
    assert any(lo < fov_t[0] or hi > fov_t[1] for lo, hi in held.hfov_deg)
    assert set(held.wall_textures) - set(train.wall_textures)
    assert set(held.palettes) != set(train.palettes)


def test_same_seed_under_two_presets_gives_unrelated_motion() -> None:
    train, _ = simulate_clip(3, preset="train", action="walk", fps=8.0, duration_s=3.0)
    held, _ = simulate_clip(3, preset="heldout", action="walk", fps=8.0, duration_s=3.0)
    again, _ = simulate_clip(3, preset="train", action="walk", fps=8.0, duration_s=3.0)
    assert np.array_equal(train.joints, again.joints)
    assert not np.allclose(train.joints, held.joints)


def test_motion_blur_samples_the_pose_earlier_in_the_exposure() -> None:
    from models.synth.clip import draw_exposure, open_joints

    motion, _ = simulate_clip(4, action="fall_forward", fps=8.0)
    assert open_joints(motion.fig, motion.plan.timeline, motion.times, 0.0) is None
    opened = open_joints(motion.fig, motion.plan.timeline, motion.times, 0.08)
    assert opened is not None
    onset, impact = motion.plan.fall or (0.0, 0.0)
    falling = (motion.times > onset + 0.3) & (motion.times < impact)
    assert falling.any()
    # Earlier in a fall the head is higher.
    assert (opened[falling, HEAD, 2] > motion.joints[falling, HEAD, 2]).all()
    preset = PRESETS["train"]
    shutters = [draw_exposure(np.random.default_rng(i), preset) for i in range(200)]
    assert all(s == 0.0 or 0.01 <= s <= preset.max_exposure_s for s in shutters)
    assert 0 < sum(s > 0 for s in shutters) < 200


@pytest.mark.parametrize("action", FALL_ACTIONS)
def test_posture_track_goes_from_upright_to_lying_in_a_fall(action: str) -> None:
    motion, _ = simulate_clip(7, action=action, fps=8.0)
    assert motion.plan.fall is not None
    onset, impact = motion.plan.fall
    track = posture(motion)
    assert track.shape == (len(motion.times), len(POSTURE_NAMES))
    head, upright = track[:, 0], track[:, 1]
    before, after = motion.times < onset - 0.1, motion.times > impact + 0.5
    # A slump starts seated (head about 0.7 of standing height), the others standing.
    assert head[before].min() > (0.55 if action == "slump_from_chair" else 0.85)
    assert head[after].max() < 0.4, "the head ends near the floor"
    assert upright[after].max() < 0.6, "the trunk ends closer to horizontal than upright"


def test_posture_of_a_person_standing_still_stays_upright() -> None:
    track = posture(simulate_clip(3, action="stand_still", fps=8.0)[0])
    assert track[:, 0].min() > 0.85
    assert track[:, 1].min() > 0.9


def test_clip_posture_has_one_row_per_rendered_frame_and_is_deterministic() -> None:
    frames, meta = render_clip(21, width=32, height=24)
    track = clip_posture(21, fps=meta.fps)
    assert track.shape == (frames.shape[0], 2) and track.dtype == np.float32
    assert np.array_equal(track, clip_posture(21, fps=meta.fps))
    assert not np.array_equal(track, clip_posture(21, preset="heldout", fps=meta.fps))
