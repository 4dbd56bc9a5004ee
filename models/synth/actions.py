"""Action library: one short clip's motion plan per action name, with realistic timing.

Inputs: an action name (or none: drawn with ``ACTION_WEIGHTS``), a random generator, the
person's ``Figure`` and the clip duration. Outputs: a ``Plan``: the pose ``Timeline``, the
clip label, the fall's descent ``(onset_s, impact_s)`` for falls, and the furniture the
action needs (chair, sofa, bed) placed where the motion uses it.

Guarantees: falls start between 1.5 s and ``duration - descent - 1.8`` s, so the whole
descent and some lying still are inside the clip; falls end horizontal on the floor;
about 45 % of drawn actions are falls; hard negatives (hard sit, fast lie-down on a bed,
floor exercise, kneel) and hard positives (slow slump from a chair) are included on
purpose. Failure modes: ``KeyError`` for an unknown action name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from models.synth import motion
from models.synth.motion import HALF_PI, SEATED, STANDING, heading
from models.synth.skeleton import Figure
from models.synth.timeline import Timeline

__all__ = [
    "ACTIONS",
    "ACTION_WEIGHTS",
    "FALL_ACTIONS",
    "Plan",
    "Prop",
    "choose_action",
    "plan_action",
]


@dataclass(frozen=True)
class Prop:
    """Furniture an action uses: ``kind`` in chair|sofa|bed, centre, facing yaw, seat height."""

    kind: str
    x: float
    y: float
    yaw: float
    seat_h: float


@dataclass
class Plan:
    """The motion of one clip and its ground truth."""

    action: str
    timeline: Timeline
    fall: tuple[float, float] | None
    props: list[Prop] = field(default_factory=list)

    @property
    def label(self) -> str:
        return "fall" if self.fall is not None else "no_fall"


def _start(pose: dict[str, float], x: float, y: float, yaw: float) -> Timeline:
    return Timeline(start={**pose, "x": x, "y": y, "yaw": yaw})


def _walk_in(tl: Timeline, fig: Figure, rng: np.random.Generator, arrive: float) -> None:
    """Walk from off-centre to the current position, arriving at time ``arrive``."""
    speed = rng.uniform(0.7, 1.3)
    dist = min(2.2, speed * max(arrive - 0.5, 0.3))
    ang = rng.uniform(0, 2 * math.pi)
    tx, ty = tl.value("x"), tl.value("y")
    sx, sy = tx - math.cos(ang) * dist, ty - math.sin(ang) * dist
    for name, val in (("x", sx), ("y", sy), ("yaw", ang)):
        tl.keys[name][0] = (0.0, val, "linear")
    walk_time = dist / speed
    tl.hold(max(0.0, arrive - walk_time - 0.4))
    motion.walk_to(tl, fig, rng, tx, ty, speed)


def _fill(tl: Timeline, rng: np.random.Generator, duration: float, amp: float = 1.0) -> None:
    tl.idle(rng, 0.0, duration + 1.0, amp=amp * rng.uniform(0.4, 1.0))
    tl.t = max(tl.t, duration)


def _onset(rng: np.random.Generator, duration: float, descent: float) -> float:
    return float(rng.uniform(1.5, max(1.6, duration - descent - 1.8)))


def _make_fall(kind: str) -> Callable[[np.random.Generator, Figure, float], Plan]:
    def plan(rng: np.random.Generator, fig: Figure, duration: float) -> Plan:
        descent = float(rng.uniform(0.6, 1.2) if kind != "collapse" else rng.uniform(0.7, 1.2))
        onset = _onset(rng, duration, descent)
        tl = _start(
            STANDING, rng.normal(0, 0.3), rng.normal(0, 0.3), rng.uniform(-math.pi, math.pi)
        )
        if rng.uniform() < 0.55:
            _walk_in(tl, fig, rng, onset)
            tl.move(max(0.0, onset - tl.t), "linear")
        else:
            tl.idle(rng, 0.0, onset, amp=rng.uniform(0.5, 1.2))
            tl.hold(onset)
        if rng.uniform() < 0.3:  # a stagger just before losing balance
            tl.t = onset - 0.3
            tl.move(0.3, "smooth", trunk_flex=0.15, knee_l=0.2, sha_l=0.4, sha_r=0.4)
        truth = motion.fall(tl, fig, rng, kind, descent)
        motion.lie_still(tl, rng, max(0.5, duration - tl.t + 0.5))
        return Plan(f"fall_{kind}", tl, truth)

    return plan


def _chair_at(rng: np.random.Generator, tl: Timeline, kind: str, back: float) -> Prop:
    fx, fy = heading(tl.value("yaw"))
    seat_h = rng.uniform(0.42, 0.5) if kind == "chair" else rng.uniform(0.38, 0.45)
    return Prop(kind, tl.value("x") - fx * (back - 0.12), tl.value("y") - fy * (back - 0.12),
                tl.value("yaw"), seat_h)  # fmt: skip


def _seated_start(rng: np.random.Generator, kind: str) -> tuple[Timeline, Prop]:
    yaw = rng.uniform(-math.pi, math.pi)
    seat_h = rng.uniform(0.42, 0.5) if kind == "chair" else rng.uniform(0.38, 0.45)
    tl = _start({**SEATED, "seat_h": seat_h}, rng.normal(0, 0.3), rng.normal(0, 0.3), yaw)
    fx, fy = heading(yaw)
    prop = Prop(kind, tl.value("x") + fx * 0.12, tl.value("y") + fy * 0.12, yaw, seat_h)
    return tl, prop


def _plan_slump(rng: np.random.Generator, fig: Figure, duration: float) -> Plan:
    descent = float(rng.uniform(1.0, 1.8))
    onset = _onset(rng, duration, descent)
    tl, prop = _seated_start(rng, str(rng.choice(["chair", "sofa"])))
    tl.idle(rng, 0.0, onset, amp=rng.uniform(0.3, 0.8))
    tl.hold(onset)
    truth = motion.slump(tl, fig, rng, descent)
    motion.lie_still(tl, rng, max(0.5, duration - tl.t + 0.5))
    return Plan("slump_from_chair", tl, truth, [prop])


def _plan_walk(rng: np.random.Generator, fig: Figure, duration: float) -> Plan:
    tl = _start(STANDING, rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5), rng.uniform(-3, 3))
    while tl.t < duration:
        ang = rng.uniform(0, 2 * math.pi)
        r = rng.uniform(0.0, 1.8)
        motion.walk_to(tl, fig, rng, r * math.cos(ang), r * math.sin(ang), rng.uniform(0.6, 1.5))
        tl.hold(rng.uniform(0.0, 1.2))
    _fill(tl, rng, duration)
    return Plan("walk", tl, None)


def _plan_stand_still(rng: np.random.Generator, fig: Figure, duration: float) -> Plan:
    tl = _start(STANDING, rng.normal(0, 0.5), rng.normal(0, 0.5), rng.uniform(-3, 3))
    while tl.t < duration:
        tl.hold(rng.uniform(0.5, 2.0))
        choice = rng.uniform()
        if choice < 0.3:  # gesture / phone / wave
            arm = "l" if rng.uniform() < 0.5 else "r"
            gesture = {f"sh_{arm}": rng.uniform(0.6, 2.6), f"el_{arm}": rng.uniform(0.3, 2.0)}
            tl.move_to(rng.uniform(0.4, 0.8), gesture)
            tl.hold(rng.uniform(0.5, 1.5))
            tl.move_to(rng.uniform(0.4, 0.8), {f"sh_{arm}": 0.05, f"el_{arm}": 0.2})
        elif choice < 0.55:
            motion.turn_to(tl, tl.value("yaw") + rng.uniform(-2.5, 2.5), rng)
    _fill(tl, rng, duration, amp=1.3)
    return Plan("stand_still", tl, None)


def _make_sit(hard: bool) -> Callable[[np.random.Generator, Figure, float], Plan]:
    def plan(rng: np.random.Generator, fig: Figure, duration: float) -> Plan:
        kind = str(rng.choice(["chair", "sofa"]))
        dur = float(rng.uniform(0.4, 0.7) if hard else rng.uniform(1.0, 1.8))
        t_sit = float(rng.uniform(1.5, max(1.6, duration - dur - 1.5)))
        tl = _start(STANDING, rng.normal(0, 0.3), rng.normal(0, 0.3), rng.uniform(-3, 3))
        back = rng.uniform(0.2, 0.3)
        prop = _chair_at(rng, tl, kind, back)
        if rng.uniform() < 0.6:
            # Walk in facing away from the seat, i.e. arrive and turn around.
            yaw = tl.value("yaw")
            _walk_in(tl, fig, rng, t_sit - 0.6)
            motion.turn_to(tl, yaw, rng)
        tl.idle(rng, 0.0, duration + 1, amp=rng.uniform(0.3, 0.9))
        tl.t = max(tl.t, t_sit)
        motion.sit_down(tl, rng, dur, prop.seat_h, back)
        tl.t = max(tl.t, duration)
        return Plan("sit_down_hard" if hard else "sit_down", tl, None, [prop])

    return plan


def _plan_stand_up(rng: np.random.Generator, fig: Figure, duration: float) -> Plan:
    tl, prop = _seated_start(rng, str(rng.choice(["chair", "sofa"])))
    tl.idle(rng, 0.0, duration + 1, amp=rng.uniform(0.3, 0.9))
    tl.hold(rng.uniform(1.0, max(1.1, duration - 4.0)))
    motion.stand_up(tl, rng, rng.uniform(0.9, 1.6), forward=0.25)
    if rng.uniform() < 0.6:
        fx, fy = heading(tl.value("yaw"))
        d = rng.uniform(1.0, 2.0)
        motion.walk_to(
            tl, fig, rng, tl.value("x") + fx * d, tl.value("y") + fy * d, rng.uniform(0.6, 1.1)
        )
    tl.t = max(tl.t, duration)
    return Plan("stand_up", tl, None, [prop])


def _lie_down_floor(tl: Timeline, rng: np.random.Generator, dur: float) -> None:
    """Get down to the floor deliberately: squat, sit, lie back (``dur`` ~ 2.5-5 s)."""
    tl.move(dur * 0.35, "smooth", knee_l=2.1, knee_r=2.1, hip_l=1.9, hip_r=1.9, trunk_flex=0.5,
            sh_l=0.6, sh_r=0.6)  # fmt: skip
    tl.move(0.0, "linear", seat_h=0.0)
    tl.move(dur * 0.3, "smooth", seat_w=1.0, knee_l=0.4, knee_r=0.9, hip_l=1.4, hip_r=1.5,
            trunk_flex=0.1, sh_l=-0.3, sh_r=-0.3)  # fmt: skip
    tl.move(dur * 0.35, "smooth", seat_w=0.0, pitch=-HALF_PI, hip_l=0.1, hip_r=0.5, knee_l=0.1,
            knee_r=0.9, trunk_flex=0.0, sh_l=0.1, sh_r=0.1)  # fmt: skip


def _plan_lie_down_floor(rng: np.random.Generator, fig: Figure, duration: float) -> Plan:
    dur = float(rng.uniform(2.5, 4.5))
    tl = _start(STANDING, rng.normal(0, 0.3), rng.normal(0, 0.3), rng.uniform(-3, 3))
    tl.idle(rng, 0.0, duration + 1, amp=rng.uniform(0.3, 0.8))
    tl.hold(rng.uniform(0.8, max(0.9, duration - dur - 1.0)))
    _lie_down_floor(tl, rng, dur)
    tl.t = max(tl.t, duration)
    return Plan("lie_down_floor", tl, None)


def _plan_lie_down_bed(rng: np.random.Generator, fig: Figure, duration: float) -> Plan:
    fast = rng.uniform() < 0.4
    tl = _start(STANDING, rng.normal(0, 0.3), rng.normal(0, 0.3), rng.uniform(-3, 3))
    yaw = tl.value("yaw")
    bed_h = float(rng.uniform(0.45, 0.6))
    fx, fy = heading(yaw)
    lx, ly = -fy, fx
    side = float(rng.choice([-1.0, 1.0]))
    # Bed long axis along the person's left/right; they sit on its edge, then lie back along
    # it with the head towards -side (where the headboard is, the bed's local +x end).
    bx = tl.value("x") - fx * 0.55 + lx * 0.07 * side
    by = tl.value("y") - fy * 0.55 + ly * 0.07 * side
    bed = Prop("bed", bx, by, yaw - HALF_PI * side, bed_h)
    tl.idle(rng, 0.0, duration + 1, amp=rng.uniform(0.3, 0.8))
    tl.hold(rng.uniform(0.8, 2.0))
    motion.sit_down(tl, rng, rng.uniform(0.6, 1.0) if fast else rng.uniform(1.0, 1.6), bed_h, 0.2)
    tl.hold(rng.uniform(0.2, 0.6) if fast else rng.uniform(0.5, 1.5))
    dur = float(rng.uniform(0.9, 1.3) if fast else rng.uniform(1.6, 3.0))
    tl.move(0.0, "linear", floor_h=bed_h)
    tl.move(dur * 0.7, "smooth", advance=False, seat_w=0.0)
    tl.move(dur, "smooth", pitch=-HALF_PI, yaw=yaw + HALF_PI * side * 0.9, hip_l=0.2, hip_r=0.3,
            knee_l=0.3, knee_r=0.2, trunk_flex=0.0, x=tl.value("x") - fx * 0.35,
            y=tl.value("y") - fy * 0.35, sh_l=rng.uniform(0.0, 0.3), sh_r=rng.uniform(0.0, 2.9),
            el_l=0.2, el_r=rng.uniform(0.1, 1.5))  # fmt: skip
    tl.t = max(tl.t, duration)
    return Plan("lie_down_bed_fast" if fast else "lie_down_bed", tl, None, [bed])


def _plan_bend(rng: np.random.Generator, fig: Figure, duration: float) -> Plan:
    tl = _start(STANDING, rng.normal(0, 0.3), rng.normal(0, 0.3), rng.uniform(-3, 3))
    tl.idle(rng, 0.0, duration + 1, amp=rng.uniform(0.3, 0.9))
    if rng.uniform() < 0.5:
        _walk_in(tl, fig, rng, rng.uniform(1.5, 3.0))
    while tl.t < duration - 2.5:
        tl.hold(rng.uniform(0.3, 1.2))
        down = rng.uniform(0.7, 1.4)
        knees = rng.uniform(0.1, 0.6)
        tl.move(down, "smooth", trunk_flex=rng.uniform(1.1, 1.5), knee_l=knees, knee_r=knees,
                hip_l=knees * 0.6, hip_r=knees * 0.6, sh_r=rng.uniform(1.0, 1.5), el_r=0.1,
                head_flex=0.3)  # fmt: skip
        tl.hold(rng.uniform(0.3, 1.0))
        tl.move(down * rng.uniform(0.9, 1.3), "smooth", trunk_flex=0.0, knee_l=0.03, knee_r=0.03,
                hip_l=0.0, hip_r=0.0, sh_r=0.05, el_r=0.2, head_flex=0.0)  # fmt: skip
    tl.t = max(tl.t, duration)
    return Plan("bend_pick_up", tl, None)


def _make_low_pose(name: str) -> Callable[[np.random.Generator, Figure, float], Plan]:
    def plan(rng: np.random.Generator, fig: Figure, duration: float) -> Plan:
        tl = _start(STANDING, rng.normal(0, 0.3), rng.normal(0, 0.3), rng.uniform(-3, 3))
        tl.idle(rng, 0.0, duration + 1, amp=rng.uniform(0.3, 0.9))
        if rng.uniform() < 0.4:
            _walk_in(tl, fig, rng, rng.uniform(1.5, 2.5))
        tl.hold(rng.uniform(0.5, 1.5))
        down = rng.uniform(0.8, 1.6)
        if name == "squat":
            low = {"knee_l": 2.2, "knee_r": 2.2, "hip_l": 2.0, "hip_r": 2.0,
                   "trunk_flex": rng.uniform(0.2, 0.6), "sh_l": 1.0, "sh_r": 1.0}  # fmt: skip
        elif rng.uniform() < 0.5:  # kneel on one knee
            low = {"knee_l": 1.65, "hip_l": 0.05, "knee_r": 1.5, "hip_r": 1.45,
                   "trunk_flex": rng.uniform(0.0, 0.5), "sh_l": 0.6, "el_l": 0.8}  # fmt: skip
        else:  # both knees
            low = {"knee_l": 1.75, "knee_r": 1.75, "hip_l": rng.uniform(0.0, 1.2),
                   "trunk_flex": rng.uniform(0.0, 0.6), "sh_l": 0.8, "sh_r": 0.8}  # fmt: skip
            low["hip_r"] = low["hip_l"]
        tl.move_to(down, low)
        tl.hold(rng.uniform(1.0, max(1.1, duration - tl.t - down - 0.5)))
        if tl.t < duration - 1.0:
            tl.move_to(down, {k: STANDING[k] for k in low})
        tl.t = max(tl.t, duration)
        return Plan(name, tl, None)

    return plan


def _plan_stumble(rng: np.random.Generator, fig: Figure, duration: float) -> Plan:
    tl = _start(STANDING, rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0), rng.uniform(-3, 3))
    tl.idle(rng, 0.0, duration + 1, amp=rng.uniform(0.3, 0.8))
    t_trip = float(rng.uniform(1.5, max(1.6, duration - 2.5)))
    _walk_in(tl, fig, rng, t_trip)
    fx, fy = heading(tl.value("yaw"))
    tl.move(0.25, "in2", pitch=rng.uniform(0.2, 0.45), sha_l=0.9, sha_r=0.9, sh_l=0.7, sh_r=0.7,
            hip_r=0.6, knee_r=0.4)  # fmt: skip
    tl.move(rng.uniform(0.5, 0.9), "smooth", pitch=0.0, sha_l=0.05, sha_r=0.05, sh_l=0.05,
            sh_r=0.05, hip_r=0.0, knee_r=0.03, x=tl.value("x") + fx * 0.5,
            y=tl.value("y") + fy * 0.5)  # fmt: skip
    tl.hold(rng.uniform(0.3, 1.0))
    if tl.t < duration - 1.0:
        motion.walk_to(tl, fig, rng, tl.value("x") + fx * 1.2, tl.value("y") + fy * 1.2, 0.8)
    tl.t = max(tl.t, duration)
    return Plan("stumble_recover", tl, None)


def _plan_jump(rng: np.random.Generator, fig: Figure, duration: float) -> Plan:
    tl = _start(STANDING, rng.normal(0, 0.3), rng.normal(0, 0.3), rng.uniform(-3, 3))
    tl.idle(rng, 0.0, duration + 1, amp=rng.uniform(0.3, 0.8))
    tl.hold(rng.uniform(1.0, 2.0))
    while tl.t < duration - 2.0:
        tl.move(0.35, "smooth", knee_l=0.9, knee_r=0.9, hip_l=0.7, hip_r=0.7, trunk_flex=0.4,
                sh_l=-0.5, sh_r=-0.5)  # fmt: skip
        air = rng.uniform(0.35, 0.5)
        h = 9.81 * air**2 / 8
        tl.move(air / 2, "out2", lift=h, knee_l=0.1, knee_r=0.1, hip_l=0.05, hip_r=0.05,
                trunk_flex=0.0, sh_l=rng.uniform(1.5, 2.8), sh_r=rng.uniform(1.5, 2.8))  # fmt: skip
        tl.move(air / 2, "in2", lift=0.0)
        tl.move(0.3, "out2", knee_l=0.6, knee_r=0.6, hip_l=0.4, hip_r=0.4, sh_l=0.3, sh_r=0.3)
        legs_arms = ("knee_l", "knee_r", "hip_l", "hip_r", "sh_l", "sh_r")
        tl.move_to(0.5, {k: STANDING[k] for k in legs_arms})
        tl.hold(rng.uniform(0.3, 1.5))
    tl.t = max(tl.t, duration)
    return Plan("jump", tl, None)


def _plan_exercise(rng: np.random.Generator, fig: Figure, duration: float) -> Plan:
    tl = _start(STANDING, rng.normal(0, 0.3), rng.normal(0, 0.3), rng.uniform(-3, 3))
    tl.idle(rng, 0.0, duration + 1, amp=0.3)
    kind = str(rng.choice(["situps", "pushups", "leg_raises"]))
    on_floor_start = rng.uniform() < 0.5
    if kind == "pushups":
        plank = {"pitch": 1.3, "sh_l": 1.45, "sh_r": 1.45, "el_l": 0.0, "el_r": 0.0,
                 "knee_l": 0.0, "knee_r": 0.0}  # fmt: skip
        if on_floor_start:
            tl = _start({**STANDING, **plank}, tl.value("x"), tl.value("y"), tl.value("yaw"))
        else:
            tl.hold(rng.uniform(0.8, 1.5))
            tl.move(rng.uniform(1.0, 1.5), "smooth", knee_l=1.8, knee_r=1.8, hip_l=1.0, hip_r=1.0,
                    trunk_flex=0.5, sh_l=1.0, sh_r=1.0)  # fmt: skip
            tl.move_to(
                rng.uniform(1.0, 1.5), {"hip_l": 0.0, "hip_r": 0.0, "trunk_flex": 0.0, **plank}
            )
        period = rng.uniform(1.2, 2.2)
        while tl.t < duration:
            tl.move(period / 2, "smooth", pitch=1.5, el_l=1.3, el_r=1.3, sh_l=0.5, sh_r=0.5)
            tl.move(period / 2, "smooth", pitch=1.3, el_l=0.0, el_r=0.0, sh_l=1.45, sh_r=1.45)
    else:
        supine = {"pitch": -HALF_PI, "hip_l": 0.8, "hip_r": 0.8, "knee_l": 1.6, "knee_r": 1.6,
                  "sh_l": 2.5, "sh_r": 2.5, "el_l": 2.0, "el_r": 2.0}  # fmt: skip
        if kind == "leg_raises":
            supine.update(hip_l=0.0, hip_r=0.0, knee_l=0.05, knee_r=0.05, sh_l=0.0, sh_r=0.0)
        if on_floor_start:
            tl = _start({**STANDING, **supine}, tl.value("x"), tl.value("y"), tl.value("yaw"))
        else:
            tl.hold(rng.uniform(0.5, 1.0))
            _lie_down_floor(tl, rng, rng.uniform(2.2, 3.2))
            tl.move_to(0.6, supine)
        period = rng.uniform(1.5, 2.5)
        while tl.t < duration:
            if kind == "situps":
                tl.move(period / 2, "smooth", pitch=-0.45, hip_l=1.9, hip_r=1.9)
                tl.move(period / 2, "smooth", pitch=-HALF_PI, hip_l=0.8, hip_r=0.8)
            else:
                tl.move(period / 2, "smooth", hip_l=1.4, hip_r=1.4)
                tl.move(period / 2, "smooth", hip_l=0.0, hip_r=0.0)
    tl.idle(rng, 0.0, duration + 1, amp=0.2)
    tl.t = max(tl.t, duration)
    return Plan("exercise_floor", tl, None)


ACTIONS: dict[str, Callable[[np.random.Generator, Figure, float], Plan]] = {
    "fall_forward": _make_fall("forward"),
    "fall_backward": _make_fall("backward"),
    "fall_sideways": _make_fall("sideways"),
    "fall_collapse": _make_fall("collapse"),
    "slump_from_chair": _plan_slump,
    "walk": _plan_walk,
    "stand_still": _plan_stand_still,
    "sit_down": _make_sit(hard=False),
    "sit_down_hard": _make_sit(hard=True),
    "stand_up": _plan_stand_up,
    "lie_down_floor": _plan_lie_down_floor,
    "lie_down_bed": _plan_lie_down_bed,
    "bend_pick_up": _plan_bend,
    "squat": _make_low_pose("squat"),
    "kneel": _make_low_pose("kneel"),
    "stumble_recover": _plan_stumble,
    "jump": _plan_jump,
    "exercise_floor": _plan_exercise,
}
FALL_ACTIONS = (
    "fall_forward",
    "fall_backward",
    "fall_sideways",
    "fall_collapse",
    "slump_from_chair",
)

ACTION_WEIGHTS: dict[str, float] = {
    "fall_forward": 0.10, "fall_backward": 0.10, "fall_sideways": 0.09, "fall_collapse": 0.09,
    "slump_from_chair": 0.07,
    "walk": 0.06, "stand_still": 0.05, "sit_down": 0.06, "sit_down_hard": 0.04, "stand_up": 0.05,
    "lie_down_floor": 0.04, "lie_down_bed": 0.05, "bend_pick_up": 0.05, "squat": 0.04,
    "kneel": 0.04, "stumble_recover": 0.04, "jump": 0.03, "exercise_floor": 0.04,
}  # fmt: skip


def choose_action(rng: np.random.Generator) -> str:
    """Draw an action name with ``ACTION_WEIGHTS`` (45 % falls)."""
    names = list(ACTION_WEIGHTS)
    w = np.array([ACTION_WEIGHTS[n] for n in names])
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def plan_action(action: str, rng: np.random.Generator, fig: Figure, duration: float) -> Plan:
    """The motion plan of ``action`` for a clip of ``duration`` seconds."""
    return ACTIONS[action](rng, fig, duration)
