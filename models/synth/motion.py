"""Motion primitives shared by the action library: poses, walking, turning, falling.

Inputs: a ``Timeline`` positioned at the current time, the person's ``Figure`` and a random
generator. Outputs: keyframes appended to the timeline; fall primitives return the
descent's ``(onset_s, impact_s)``.

Guarantees: every primitive starts from the timeline's current values (so primitives chain
into continuous motion) and advances ``tl.t`` to its end; fall descents use an
accelerating (gravity) ease and end with the body horizontal on the floor. Failure modes:
none (pure arithmetic).
"""

from __future__ import annotations

import math

import numpy as np

from models.synth.skeleton import Figure
from models.synth.timeline import Timeline

__all__ = [
    "FALL_KINDS",
    "SEATED",
    "STANDING",
    "fall",
    "get_up",
    "heading",
    "lie_still",
    "sit_down",
    "stand_up",
    "turn_to",
    "walk_to",
]

HALF_PI = math.pi / 2

STANDING: dict[str, float] = {
    "hip_l": 0.0, "hip_r": 0.0, "knee_l": 0.03, "knee_r": 0.03, "abd_l": 0.04, "abd_r": 0.04,
    "sh_l": 0.05, "sh_r": 0.05, "sha_l": 0.05, "sha_r": 0.05, "el_l": 0.2, "el_r": 0.2,
    "pitch": 0.0, "roll": 0.0, "trunk_flex": 0.0, "trunk_lat": 0.0, "trunk_twist": 0.0,
    "head_flex": 0.0, "head_turn": 0.0, "seat_w": 0.0, "floor_h": 0.0, "lift": 0.0,
}  # fmt: skip

SEATED: dict[str, float] = {
    **STANDING,
    "hip_l": 1.45, "hip_r": 1.45, "knee_l": 1.45, "knee_r": 1.5, "abd_l": 0.1, "abd_r": 0.1,
    "sh_l": 0.45, "sh_r": 0.45, "el_l": 0.9, "el_r": 0.9, "trunk_flex": -0.08, "seat_w": 1.0,
}  # fmt: skip

FALL_KINDS = ("forward", "backward", "sideways", "collapse")


def heading(yaw: float) -> tuple[float, float]:
    """Unit vector on the floor the person faces."""
    return math.cos(yaw), math.sin(yaw)


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def turn_to(tl: Timeline, yaw: float, rng: np.random.Generator) -> None:
    """Turn on the spot (with small shuffling steps) to face ``yaw``."""
    diff = _wrap(yaw - tl.value("yaw"))
    dt = 0.25 + abs(diff) * rng.uniform(0.25, 0.4)
    if abs(diff) > 0.5:
        tl.gait(tl.t, tl.t + dt, freq=1.6, amp=0.3)
    tl.move(dt, "smooth", yaw=tl.value("yaw") + diff)


def walk_to(
    tl: Timeline, fig: Figure, rng: np.random.Generator, x: float, y: float, speed: float
) -> None:
    """Turn toward (x, y) and walk there with a gait matched to the speed."""
    dx, dy = x - tl.value("x"), y - tl.value("y")
    dist = math.hypot(dx, dy)
    if dist < 0.05:
        return
    turn_to(tl, math.atan2(dy, dx), rng)
    leg = fig.thigh + fig.shin
    stride = 1.45 * leg * rng.uniform(0.9, 1.1)  # two steps
    dt = dist / speed
    tl.gait(tl.t - 0.1, tl.t + dt + 0.15, freq=speed / stride, amp=rng.uniform(0.8, 1.1),
            phase0=rng.uniform(0, 2 * math.pi))  # fmt: skip
    tl.move(dt, "linear", x=x, y=y)


def sit_down(
    tl: Timeline, rng: np.random.Generator, dur: float, seat_h: float, back: float
) -> None:
    """Lower onto a seat behind the person (``back`` metres back), taking ``dur`` seconds.

    Short durations (< 0.8 s) give a hard, dropping sit (hard negative for falls).
    """
    fx, fy = heading(tl.value("yaw"))
    tl.move(0.0, "linear", seat_h=seat_h)
    ease = "in2" if dur < 0.8 else "smooth"
    tl.move(dur * 0.5, "smooth", advance=False, trunk_flex=rng.uniform(0.35, 0.6))
    tl.move(dur * 0.5, "smooth", delay=dur * 0.5, advance=False, trunk_flex=SEATED["trunk_flex"])
    tl.move(dur * 0.6, "in2", delay=dur * 0.4, advance=False, seat_w=1.0)
    seated = {k: v for k, v in SEATED.items() if k not in ("trunk_flex", "seat_w")}
    seated.update(x=tl.value("x") - fx * back, y=tl.value("y") - fy * back)
    tl.move_to(dur, seated, ease)


def stand_up(tl: Timeline, rng: np.random.Generator, dur: float, forward: float) -> None:
    """Rise from a seat: lean forward, push up, straighten (``dur`` seconds)."""
    fx, fy = heading(tl.value("yaw"))
    tl.move(dur * 0.35, "smooth", trunk_flex=rng.uniform(0.45, 0.7), sh_l=0.4, sh_r=0.4)
    tl.move(dur * 0.5, "in2", advance=False, seat_w=0.0)
    standing = {k: v for k, v in STANDING.items() if k not in ("seat_w", "floor_h")}
    standing.update(x=tl.value("x") + fx * forward, y=tl.value("y") + fy * forward)
    tl.move_to(dur * 0.65, standing)


def fall(
    tl: Timeline, fig: Figure, rng: np.random.Generator, kind: str, descent: float
) -> tuple[float, float]:
    """Lose balance now and fall to the floor; returns ``(onset_s, impact_s)``.

    The descent accelerates (gravity ease) from upright to horizontal in ``descent``
    seconds; the body's pelvis travels in the fall direction as it pivots about the feet.
    After impact the limbs settle for ~0.4 s.
    """
    onset = tl.t
    yaw = tl.value("yaw")
    fx, fy = heading(yaw)
    lx, ly = -fy, fx  # the person's left
    leg = fig.thigh + fig.shin
    x0, y0 = tl.value("x"), tl.value("y")
    arm = rng.uniform(1.2, 2.6)
    # Arms reach out early in the descent and give way before impact, ending flat on the
    # floor (a limb pointing into the floor would prop the body up).
    reach, give = descent * 0.55, descent * 0.4
    if kind == "forward":
        d = leg * rng.uniform(0.7, 0.95)
        tl.move(reach, "out2", advance=False, sh_l=arm, sh_r=arm + rng.normal(0, 0.3),
                el_l=0.3, el_r=0.3, head_flex=-0.4)  # fmt: skip
        tl.move(give, "smooth", delay=descent - give, advance=False,
                sh_l=float(rng.choice([0.1, 2.9])), sh_r=float(rng.choice([0.1, 2.9])),
                sha_l=rng.uniform(0.1, 1.3), sha_r=rng.uniform(0.1, 1.3),
                el_l=rng.uniform(0.0, 0.15), el_r=rng.uniform(0.0, 0.15))  # fmt: skip
        tl.move(descent * 0.5, "smooth", advance=False, knee_l=rng.uniform(0.3, 0.9),
                knee_r=rng.uniform(0.2, 0.8), hip_l=0.35, hip_r=0.25, trunk_flex=0.3)  # fmt: skip
        tl.move(give, "smooth", delay=descent - give, advance=False, hip_l=0.0,
                hip_r=rng.uniform(0.0, 0.12), trunk_flex=0.05)  # fmt: skip
        tl.move(descent, "gravity", pitch=HALF_PI + rng.uniform(-0.05, 0.05),
                x=x0 + fx * d, y=y0 + fy * d, seat_w=0.0)  # fmt: skip
        side = float(rng.choice([-1.0, 1.0]))
        tl.move(0.45, "smooth", head_turn=1.2 * side, head_flex=0.0, knee_l=rng.uniform(0.0, 0.8),
                knee_r=0.1, trunk_flex=0.0)  # fmt: skip
    elif kind == "backward":
        d = leg * rng.uniform(0.45, 0.7)
        tl.move(descent * 0.45, "smooth", advance=False, knee_l=rng.uniform(0.6, 1.2),
                knee_r=rng.uniform(0.6, 1.2), hip_l=0.8, hip_r=0.7, trunk_flex=0.35)  # fmt: skip
        tl.move(descent * 0.55, "smooth", delay=descent * 0.45, advance=False,
                knee_l=0.35, knee_r=0.5, hip_l=0.35, hip_r=0.3, trunk_flex=0.05)  # fmt: skip
        tl.move(descent * 0.7, "out2", advance=False, sha_l=rng.uniform(0.8, 1.5),
                sha_r=rng.uniform(0.8, 1.5), sh_l=0.6, sh_r=0.6, head_flex=0.5)  # fmt: skip
        tl.move(descent, "gravity", pitch=-HALF_PI + rng.uniform(-0.05, 0.05),
                x=x0 - fx * d, y=y0 - fy * d, seat_w=0.0)  # fmt: skip
        knee = rng.uniform(0.0, 1.2)
        tl.move(0.5, "smooth", knee_l=knee, knee_r=0.15, hip_l=0.55 * knee, hip_r=0.05,
                head_flex=0.0, sha_l=rng.uniform(0.2, 1.2), sh_l=0.0, sh_r=0.0)  # fmt: skip
    elif kind == "sideways":
        side = float(rng.choice([-1.0, 1.0]))
        d = leg * rng.uniform(0.6, 0.85) * side
        arm_side = "sha_l" if side > 0 else "sha_r"
        tl.move(descent * 0.5, "smooth", advance=False, knee_l=rng.uniform(0.2, 0.7),
                knee_r=rng.uniform(0.2, 0.7), trunk_lat=-0.25 * side)  # fmt: skip
        tl.move_to(reach, {arm_side: rng.uniform(1.0, 1.8)}, "out2", advance=False)
        tl.move_to(give, {arm_side: float(rng.choice([0.1, 2.9])), "trunk_lat": 0.0},
                   delay=descent - give, advance=False)  # fmt: skip
        tl.move(descent, "gravity", roll=HALF_PI * side + rng.uniform(-0.05, 0.05),
                x=x0 + lx * d, y=y0 + ly * d, seat_w=0.0)  # fmt: skip
        tl.move(0.45, "smooth", knee_l=rng.uniform(0.2, 1.0), knee_r=rng.uniform(0.2, 1.0),
                hip_l=rng.uniform(0.1, 0.8), hip_r=rng.uniform(0.1, 0.8), trunk_lat=0.0,
                head_flex=0.2)  # fmt: skip
    else:  # collapse: legs give way first, then the body topples
        p1 = descent * rng.uniform(0.35, 0.5)
        tl.move(p1, "gravity", knee_l=rng.uniform(1.4, 1.9), knee_r=rng.uniform(1.4, 1.9),
                hip_l=rng.uniform(0.2, 0.7), hip_r=rng.uniform(0.2, 0.7),
                trunk_flex=rng.uniform(0.2, 0.6), head_flex=0.5, sh_l=0.1, sh_r=0.1,
                seat_w=0.0)  # fmt: skip
        if rng.uniform() < 0.5:
            side = float(rng.choice([-1.0, 1.0]))
            d = leg * 0.45 * side
            lower_arm = "sha_l" if side > 0 else "sha_r"  # rolling by +roll lands on the left
            tl.move_to(descent - p1, {lower_arm: float(rng.choice([0.1, 2.9]))}, advance=False)
            tl.move(descent - p1, "gravity", roll=HALF_PI * side, x=x0 + lx * d, y=y0 + ly * d)
            tl.move(
                0.5,
                "smooth",
                knee_l=rng.uniform(0.3, 1.2),
                knee_r=rng.uniform(0.3, 1.2),
                hip_l=rng.uniform(0.1, 0.6),
                hip_r=rng.uniform(0.1, 0.6),
                head_flex=0.0,
            )
        else:
            d = leg * 0.5
            tl.move(descent - p1, "gravity", pitch=HALF_PI, x=x0 + fx * d, y=y0 + fy * d,
                    trunk_flex=0.1, sh_l=0.1, sh_r=0.1, sha_l=rng.uniform(0.1, 1.0),
                    sha_r=rng.uniform(0.1, 1.0), hip_l=0.05, hip_r=0.1)  # fmt: skip
            tl.move(0.5, "smooth", knee_l=rng.uniform(0.3, 1.2), knee_r=rng.uniform(0.3, 1.2),
                    head_flex=0.0, head_turn=rng.uniform(-1.2, 1.2))  # fmt: skip
    return onset, onset + descent


def slump(
    tl: Timeline, fig: Figure, rng: np.random.Generator, descent: float
) -> tuple[float, float]:
    """Slide and topple out of a seat onto the floor (a slow, hard-to-see fall)."""
    onset = tl.t
    yaw = tl.value("yaw")
    fx, fy = heading(yaw)
    lx, ly = -fy, fx
    x0, y0 = tl.value("x"), tl.value("y")
    leg = fig.thigh + fig.shin
    tl.move(descent * 0.4, "smooth", advance=False, trunk_flex=rng.uniform(0.5, 0.9),
            head_flex=0.7, sh_l=0.0, sh_r=0.0, el_l=0.1, el_r=0.1)  # fmt: skip
    tl.move(descent * 0.8, "in2", delay=descent * 0.2, advance=False, seat_w=0.0,
            seat_h=0.0)  # fmt: skip
    if rng.uniform() < 0.5:
        side = float(rng.choice([-1.0, 1.0]))
        lower_arm = "sha_l" if side > 0 else "sha_r"
        tl.move_to(descent, {lower_arm: float(rng.choice([0.1, 2.9]))}, advance=False)
        tl.move(descent, "gravity", roll=HALF_PI * side,
                x=x0 + fx * leg * 0.3 + lx * 0.3 * side, y=y0 + fy * leg * 0.3 + ly * 0.3 * side,
                knee_l=rng.uniform(0.4, 1.2), knee_r=rng.uniform(0.4, 1.2),
                hip_l=rng.uniform(0.4, 1.1), hip_r=rng.uniform(0.4, 1.1))  # fmt: skip
    else:
        tl.move(descent, "gravity", pitch=HALF_PI, x=x0 + fx * leg * 0.6, y=y0 + fy * leg * 0.6,
                hip_l=0.3, hip_r=0.4, knee_l=0.6, knee_r=0.3, trunk_flex=0.1,
                sha_l=rng.uniform(0.1, 1.0), sha_r=rng.uniform(0.1, 1.0))  # fmt: skip
    tl.move(0.5, "smooth", head_flex=0.0, trunk_flex=0.0, head_turn=rng.uniform(-1.2, 1.2))
    return onset, onset + descent


def lie_still(tl: Timeline, rng: np.random.Generator, dur: float) -> None:
    """Lie on the floor, mostly still: faint idle motion and now and then a small move."""
    t_end = tl.t + dur
    tl.idle(rng, tl.t, t_end, amp=rng.uniform(0.05, 0.2))
    while tl.t < t_end - 1.0:
        tl.hold(rng.uniform(0.8, 2.5))
        if rng.uniform() < 0.3 and tl.t < t_end - 0.8:
            arm = str(rng.choice(["sh_l", "sh_r", "el_l", "el_r", "knee_l", "knee_r"]))
            tl.move_to(rng.uniform(0.5, 0.8), {arm: tl.value(arm) + rng.normal(0, 0.3)})
    tl.t = max(tl.t, t_end)


def get_up(tl: Timeline, rng: np.random.Generator) -> None:
    """From lying on the floor: to kneeling, then to standing (3-5 s)."""
    tl.move(rng.uniform(1.2, 2.0), "smooth", pitch=0.35, roll=0.0, knee_l=1.9, knee_r=1.9,
            hip_l=0.9, hip_r=0.9, trunk_flex=0.4, sh_l=0.8, sh_r=0.8, el_l=0.2, el_r=0.2,
            head_turn=0.0, head_flex=0.0, sha_l=0.1, sha_r=0.1)  # fmt: skip
    tl.move(rng.uniform(0.6, 1.0), "smooth", pitch=0.0, hip_l=0.1, hip_r=1.3, knee_r=1.4,
            knee_l=1.7, trunk_flex=0.1)  # fmt: skip
    standing = {k: v for k, v in STANDING.items() if k not in ("floor_h",)}
    tl.move_to(rng.uniform(1.0, 1.6), standing)
