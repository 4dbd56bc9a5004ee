"""Long continuous scenes for the demo camera: daily life with a few falls.

Inputs: a seed, the duration in seconds, the number of falls, a preset (``demo`` by
default), frame size and rate. Outputs: RGB uint8 frames ``[T, H, W, 3]`` and the falls'
ground truth as ``FallTruth(start_s, end_s)`` (descent onset to impact), in time order.

Guarantees: one person in one room (with a chair) walks, stands, sits, bends and
squats; fall k is planned near ``duration_s * (k + 1) / (n_falls + 1)`` (jittered) and
starts at the end of the activity under way then; the person then lies still 4-8 s and
gets up (3-5 s), so falls closer than ~10 s apart are postponed. Falls that would not
finish before the end are dropped, so fewer than ``n_falls`` are returned when the scene
is too short (e.g. under ~15 s). Deterministic by seed and preset.
Failure modes: ``ValueError`` for a non-positive duration or negative ``n_falls``;
``KeyError`` for an unknown preset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from models.synth import motion
from models.synth.actions import Prop
from models.synth.clip import Actor, draw_exposure, open_joints, preset_entropy, render_people
from models.synth.motion import STANDING
from models.synth.presets import get_preset
from models.synth.scene import build_scene
from models.synth.skeleton import Figure, forward_kinematics, joint_index, random_figure
from models.synth.timeline import Timeline

__all__ = ["FallTruth", "render_sequence"]


@dataclass(frozen=True)
class FallTruth:
    """One fall in a sequence: descent from ``start_s`` (onset) to ``end_s`` (impact)."""

    start_s: float
    end_s: float


def _adl(tl: Timeline, rng: np.random.Generator, fig: Figure, chair: Prop) -> None:
    """One everyday activity from standing, ending standing."""
    choice = rng.uniform()
    if choice < 0.4:
        ang, r = rng.uniform(0, 2 * math.pi), rng.uniform(0.0, 1.6)
        motion.walk_to(tl, fig, rng, r * math.cos(ang), r * math.sin(ang), rng.uniform(0.6, 1.3))
    elif choice < 0.55:
        fx, fy = math.cos(chair.yaw), math.sin(chair.yaw)
        # Stand 0.25 m in front of the seat; sitting ends with the pelvis 0.12 m behind its centre.
        motion.walk_to(
            tl, fig, rng, chair.x + fx * 0.25, chair.y + fy * 0.25, rng.uniform(0.6, 1.1)
        )
        motion.turn_to(tl, chair.yaw, rng)
        motion.sit_down(tl, rng, rng.uniform(0.9, 1.6), chair.seat_h, 0.37)
        tl.hold(rng.uniform(2.0, 6.0))
        motion.stand_up(tl, rng, rng.uniform(1.0, 1.6), forward=0.25)
    elif choice < 0.7:
        down = rng.uniform(0.8, 1.3)
        tl.move(down, "smooth", trunk_flex=rng.uniform(1.1, 1.45), knee_l=0.3, knee_r=0.3,
                hip_l=0.2, hip_r=0.2, sh_r=1.2)  # fmt: skip
        tl.hold(rng.uniform(0.4, 1.0))
        bent = ("trunk_flex", "knee_l", "knee_r", "hip_l", "hip_r", "sh_r")
        tl.move_to(down, {k: STANDING[k] for k in bent})
    elif choice < 0.8:
        down = rng.uniform(0.9, 1.5)
        low = {"knee_l": 2.2, "knee_r": 2.2, "hip_l": 2.0, "hip_r": 2.0, "trunk_flex": 0.4}
        tl.move_to(down, low)
        tl.hold(rng.uniform(1.0, 3.0))
        tl.move_to(down, {k: STANDING[k] for k in low})
    else:
        tl.hold(rng.uniform(1.5, 5.0))


def render_sequence(
    seed: int,
    *,
    duration_s: float,
    n_falls: int,
    preset: str = "demo",
    width: int = 160,
    height: int = 120,
    fps: float = 8.0,
) -> tuple[NDArray[np.uint8], list[FallTruth]]:
    """Render a long scene; returns frames and the falls that happened in it."""
    if not duration_s > 0 or n_falls < 0:
        raise ValueError(f"need duration_s > 0 and n_falls >= 0, got {duration_s}, {n_falls}")
    p = get_preset(preset)
    rng = np.random.default_rng(preset_entropy(seed, preset))
    fig = random_figure(rng, palette=str(rng.choice(p.palettes)))
    chair_yaw = rng.uniform(-math.pi, math.pi)
    chair = Prop("chair", 1.2 * math.cos(chair_yaw + 1.0), 1.2 * math.sin(chair_yaw + 1.0),
                 chair_yaw, float(rng.uniform(0.42, 0.5)))  # fmt: skip
    gap = duration_s / (n_falls + 1) if n_falls else duration_s
    # Fall k happens around gap * (k + 1); short scenes clamp to >= 3 s (falls that cannot
    # finish are dropped below).
    planned = sorted(
        float(rng.uniform(lo, max(lo, gap * (k + 1.4))))
        for k, lo in ((k, max(3.0, gap * (k + 0.6))) for k in range(n_falls))
    )
    tl = Timeline(start={**STANDING, "x": 0.0, "y": 0.0, "yaw": rng.uniform(-3, 3)})
    tl.idle(rng, 0.0, duration_s + 2.0, amp=0.8)
    truths: list[FallTruth] = []
    while tl.t < duration_s:
        if planned and tl.t >= planned[0]:
            planned.pop(0)
            descent = float(rng.uniform(0.6, 1.2))
            if tl.t + descent + 1.0 > duration_s:
                break
            kind = str(rng.choice(motion.FALL_KINDS))
            onset, impact = motion.fall(tl, fig, rng, kind, descent)
            truths.append(FallTruth(round(onset, 4), round(impact, 4)))
            motion.lie_still(tl, rng, float(rng.uniform(4.0, 8.0)))
            motion.get_up(tl, rng)
            tl.move(0.0, "linear", yaw=tl.value("yaw"))
        else:
            _adl(tl, rng, fig, chair)
    n = max(1, round(duration_s * fps))
    times = np.arange(n, dtype=np.float64) / fps
    joints = forward_kinematics(fig, tl.evaluate(times))
    path = joints[:, joint_index("pelvis"), :2]
    scene = build_scene(rng, p, [chair], np.vstack([path, [[chair.x, chair.y]]]), width, height)
    exposure = draw_exposure(np.random.default_rng([*preset_entropy(seed, preset), 1]), p)
    actor = Actor(fig, joints, np.ones(n, dtype=bool), open_joints(fig, tl, times, exposure))
    frames = render_people(scene, rng, p, [actor], n, fps)
    return frames, truths
