"""Articulated 3D figure: proportions, pose parameters and forward kinematics.

Inputs: a ``Figure`` (body proportions and colours, drawn from a random generator) and a
pose track ``[T, N_PARAMS]`` of angles (radians) and positions (metres) named by
``PARAMS``. Outputs: joint positions ``[T, N_JOINTS, 3]`` in world coordinates (x, y on
the floor, z up), grounded so the body rests on the floor, a seat or a bed, and the list
of body volumes (capsules between joints) the renderer draws.

Guarantees: pure numpy, deterministic, vectorised over time; no part of a grounded body
goes below its support height. Failure modes: none beyond numpy's on malformed arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CAPSULES",
    "JOINTS",
    "N_PARAMS",
    "PARAMS",
    "Figure",
    "forward_kinematics",
    "joint_index",
    "param_index",
    "random_figure",
]

FloatArray = NDArray[np.float64]

# Pose parameters. Angles in radians; x, y, lift, floor_h, seat_h in metres.
# pitch > 0 tips the whole body forward (face down), roll > 0 tips it onto its left side.
# trunk_flex bends the upper body forward at the hips; hip_* > 0 swings the thigh forward;
# knee_* > 0 folds the shin backward; sh_* > 0 raises the arm forward; sha_* raises it
# sideways; el_* folds the forearm forward. seat_w blends floor grounding (0) with
# sitting on a seat of height seat_h (1). lift raises the body (jumps).
PARAMS: tuple[str, ...] = (
    "x", "y", "yaw", "pitch", "roll",
    "trunk_flex", "trunk_lat", "trunk_twist", "head_flex", "head_turn",
    "hip_l", "hip_r", "knee_l", "knee_r", "abd_l", "abd_r",
    "sh_l", "sh_r", "sha_l", "sha_r", "el_l", "el_r",
    "floor_h", "seat_h", "seat_w", "lift",
)  # fmt: skip
N_PARAMS = len(PARAMS)
_P = {name: i for i, name in enumerate(PARAMS)}

JOINTS: tuple[str, ...] = (
    "pelvis", "chest", "neck", "head", "head_top",
    "hip_l", "hip_r", "knee_l", "knee_r", "ankle_l", "ankle_r", "toe_l", "toe_r",
    "shoulder_l", "shoulder_r", "elbow_l", "elbow_r", "wrist_l", "wrist_r",
    "belly", "chest_l", "chest_r", "nose", "hand_l", "hand_r",
)  # fmt: skip
N_JOINTS = len(JOINTS)
_J = {name: i for i, name in enumerate(JOINTS)}

# (joint a, joint b, radius key, colour key). Radii are fractions of body height.
CAPSULES: tuple[tuple[str, str, str, str], ...] = (
    ("hip_l", "knee_l", "thigh", "pants"),
    ("hip_r", "knee_r", "thigh", "pants"),
    ("knee_l", "ankle_l", "shin", "pants"),
    ("knee_r", "ankle_r", "shin", "pants"),
    ("ankle_l", "toe_l", "foot", "shoes"),
    ("ankle_r", "toe_r", "foot", "shoes"),
    ("pelvis", "belly", "hips", "pants"),
    ("belly", "chest", "waist", "shirt"),
    ("chest_l", "hip_l", "flank", "shirt"),
    ("chest_r", "hip_r", "flank", "shirt"),
    ("shoulder_l", "shoulder_r", "shoulders", "shirt"),
    ("shoulder_l", "elbow_l", "upper_arm", "shirt"),
    ("shoulder_r", "elbow_r", "upper_arm", "shirt"),
    ("elbow_l", "wrist_l", "forearm", "sleeve"),
    ("elbow_r", "wrist_r", "forearm", "sleeve"),
    ("wrist_l", "hand_l", "hand", "skin"),
    ("wrist_r", "hand_r", "hand", "skin"),
    ("neck", "head", "neck", "skin"),
    ("head", "head_top", "head", "skin"),
)


def param_index(name: str) -> int:
    """Column of a pose parameter in a pose track."""
    return _P[name]


def joint_index(name: str) -> int:
    """Row of a joint in a joints array."""
    return _J[name]


@dataclass(frozen=True)
class Figure:
    """One person's body: segment lengths and radii in metres, colours as RGB in [0, 1]."""

    height: float
    pelvis_h: float
    thigh: float
    shin: float
    foot: float
    ankle_h: float
    spine: float
    neck: float
    head: float
    hip_w: float
    shoulder_w: float
    upper_arm: float
    forearm: float
    radii: dict[str, float]
    colours: dict[str, tuple[float, float, float]]
    hair: tuple[float, float, float]
    hair_len: float
    stripe_period: float = 0.0  # shirt stripes, metres per cycle (0: plain)
    stripe_amp: float = 0.0


_SKIN_TONES = np.array(
    [[0.96, 0.80, 0.69], [0.89, 0.68, 0.55], [0.78, 0.57, 0.44], [0.62, 0.43, 0.31],
     [0.47, 0.32, 0.22], [0.33, 0.22, 0.15], [0.90, 0.74, 0.62]]
)  # fmt: skip


def _clothing_colour(rng: np.random.Generator, palette: str) -> tuple[float, float, float]:
    """A garment colour. 'muted' palettes are greys/blues/browns; 'vivid' allows anything."""
    if palette == "vivid":
        h = rng.uniform(0, 1)
        s = rng.uniform(0.35, 0.95)
        v = rng.uniform(0.25, 0.95)
    else:
        h = rng.choice([0.58, 0.62, 0.08, 0.1, 0.0, 0.33, 0.95]) + rng.normal(0, 0.03)
        s = rng.uniform(0.0, 0.45)
        v = rng.uniform(0.12, 0.85)
    rgb = _hsv_to_rgb(h % 1.0, s, v)
    return (float(rgb[0]), float(rgb[1]), float(rgb[2]))


def _hsv_to_rgb(h: float, s: float, v: float) -> FloatArray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    return np.array(table[i])


def random_figure(rng: np.random.Generator, *, palette: str = "muted") -> Figure:
    """Draw a person: height 1.45-1.98 m, build, skin tone, clothing and hair colours."""
    height = float(rng.uniform(1.45, 1.98))
    build = float(rng.uniform(0.8, 1.35))  # girth multiplier
    leg = float(rng.uniform(0.95, 1.05))
    r = {
        "thigh": 0.052 * build,
        "shin": 0.036 * build,
        "foot": 0.026,
        "hips": 0.075 * build,
        "waist": 0.07 * build,
        "flank": 0.055 * build,
        "shoulders": 0.045 * build,
        "upper_arm": 0.030 * build,
        "forearm": 0.024 * build,
        "neck": 0.030,
        "head": 0.060,
        "hand": 0.024,
    }
    radii = {k: v * height for k, v in r.items()}
    skin_base = _SKIN_TONES[rng.integers(len(_SKIN_TONES))]
    skin = np.clip(skin_base + rng.normal(0, 0.03, 3), 0, 1)
    skin_t = (float(skin[0]), float(skin[1]), float(skin[2]))
    shirt = _clothing_colour(rng, palette)
    pants = _clothing_colour(rng, palette)
    long_sleeves = rng.uniform() < 0.6
    shoes_v = float(rng.uniform(0.05, 0.5))
    hair_v = float(rng.choice([0.08, 0.15, 0.3, 0.55, 0.75]))
    hair = (hair_v, hair_v * rng.uniform(0.7, 0.95), hair_v * rng.uniform(0.5, 0.85))
    colours = {
        "skin": skin_t,
        "shirt": shirt,
        "sleeve": shirt if long_sleeves else skin_t,
        "pants": pants,
        "shoes": (shoes_v, shoes_v * 0.95, shoes_v * 0.9),
    }
    return Figure(
        height=height,
        pelvis_h=0.53 * height * leg,
        thigh=0.245 * height * leg,
        shin=0.245 * height * leg,
        foot=0.13 * height,
        ankle_h=0.04 * height,
        spine=0.30 * height,
        neck=0.045 * height,
        head=0.075 * height,
        hip_w=0.11 * height * build**0.5,
        shoulder_w=0.21 * height * build**0.3,
        upper_arm=0.175 * height,
        forearm=0.16 * height,
        radii=radii,
        colours=colours,
        hair=(float(hair[0]), float(hair[1]), float(hair[2])),
        hair_len=float(rng.uniform(0.0, 1.0)),
        stripe_period=float(rng.uniform(0.04, 0.14)) if rng.uniform() < 0.3 else 0.0,
        stripe_amp=float(rng.uniform(0.15, 0.45)),
    )


def _rot_x(a: FloatArray) -> FloatArray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack(
        [np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2
    )


def _rot_y(a: FloatArray) -> FloatArray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack(
        [np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2
    )


def _rot_z(a: FloatArray) -> FloatArray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack(
        [np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2
    )


def _apply(rot: FloatArray, vec: FloatArray) -> FloatArray:
    """Rotate per-frame vectors: rot [T,3,3], vec [T,3] -> [T,3]."""
    out: FloatArray = np.einsum("tij,tj->ti", rot, vec)
    return out


def _sagittal(angle: FloatArray, length: float) -> FloatArray:
    """A downward-hanging segment swung forward by ``angle``: (sin a, 0, -cos a) * length."""
    return np.stack([np.sin(angle), np.zeros_like(angle), -np.cos(angle)], -1) * length


def _limb_dirs(
    flex: FloatArray, bend: FloatArray, abd: FloatArray, upper: float, lower: float, side: float
) -> tuple[FloatArray, FloatArray]:
    """Upper and lower segment vectors of a limb in its parent frame.

    ``flex`` swings the limb forward, ``bend`` folds the lower segment (positive = forward
    for arms, and callers pass ``-knee`` for legs), ``abd`` lifts it sideways away from the
    body midline (``side`` = +1 for left, -1 for right).
    """
    up = _sagittal(flex, upper)
    lo = _sagittal(flex + bend, lower)
    rot = _rot_x(abd * side)
    return _apply(rot, up), _apply(rot, lo)


def forward_kinematics(fig: Figure, pose: FloatArray) -> FloatArray:
    """Joint positions ``[T, N_JOINTS, 3]`` for a pose track ``[T, N_PARAMS]``.

    The body is built around the pelvis, rotated by yaw/pitch/roll, then moved vertically so
    it rests on its support: with ``seat_w = 0`` its lowest volume touches ``floor_h``; with
    ``seat_w = 1`` the pelvis sits on a seat of height ``seat_h``; ``lift`` is added on top.
    """
    p = {name: pose[:, i] for name, i in _P.items()}
    n = pose.shape[0]
    zeros = np.zeros(n)
    body = _rot_z(p["yaw"]) @ _rot_y(p["pitch"]) @ _rot_x(-p["roll"])
    trunk = body @ _rot_y(p["trunk_flex"]) @ _rot_x(-p["trunk_lat"]) @ _rot_z(p["trunk_twist"])
    head_rot = trunk @ _rot_z(p["head_turn"]) @ _rot_y(p["head_flex"])

    local: dict[str, FloatArray] = {}
    origin = np.zeros((n, 3))
    local["pelvis"] = origin
    chest = _apply(trunk, np.tile([0.0, 0.0, fig.spine], (n, 1)))
    local["chest"] = chest
    local["belly"] = _apply(trunk, np.tile([0.02 * fig.height, 0.0, 0.45 * fig.spine], (n, 1)))
    neck = chest + _apply(head_rot, np.tile([0.0, 0.0, fig.neck], (n, 1)))
    local["neck"] = neck
    local["head"] = neck + _apply(
        head_rot, np.tile([0.01 * fig.height, 0.0, 0.45 * fig.head], (n, 1))
    )
    local["nose"] = neck + _apply(
        head_rot, np.tile([0.06 * fig.height, 0.0, 0.45 * fig.head], (n, 1))
    )
    local["head_top"] = neck + _apply(head_rot, np.tile([0.0, 0.0, 1.05 * fig.head], (n, 1)))

    for side, sgn in (("l", 1.0), ("r", -1.0)):
        hip = _apply(body, np.tile([0.0, sgn * fig.hip_w / 2, -0.02 * fig.height], (n, 1)))
        thigh_v, shin_v = _limb_dirs(
            p[f"hip_{side}"], -p[f"knee_{side}"], p[f"abd_{side}"], fig.thigh, fig.shin, sgn
        )
        knee = hip + _apply(body, thigh_v)
        ankle = knee + _apply(body, shin_v)
        # Lying face down, the foot points along the shin instead of into the floor.
        plantar = 1.3 * np.clip(np.cos(p["roll"]) * np.sin(p["pitch"]), 0.0, 1.0)
        foot_angle = p[f"hip_{side}"] - p[f"knee_{side}"] - plantar
        foot_v = np.stack([np.cos(foot_angle), zeros, np.sin(foot_angle)], -1) * fig.foot
        local[f"hip_{side}"] = hip
        local[f"knee_{side}"] = knee
        local[f"ankle_{side}"] = ankle
        local[f"toe_{side}"] = ankle + _apply(body, foot_v)

        shoulder = chest + _apply(
            trunk, np.tile([0.0, sgn * fig.shoulder_w / 2, -0.03 * fig.height], (n, 1))
        )
        local[f"chest_{side}"] = chest + _apply(
            trunk, np.tile([0.0, sgn * fig.shoulder_w * 0.3, -0.1 * fig.spine], (n, 1))
        )
        upper_v, fore_v = _limb_dirs(
            p[f"sh_{side}"],
            p[f"el_{side}"],
            p[f"sha_{side}"] + 0.08,
            fig.upper_arm,
            fig.forearm,
            sgn,
        )
        elbow = shoulder + _apply(trunk, upper_v)
        local[f"shoulder_{side}"] = shoulder
        local[f"elbow_{side}"] = elbow
        local[f"wrist_{side}"] = elbow + _apply(trunk, fore_v)
        local[f"hand_{side}"] = elbow + _apply(trunk, fore_v * 1.4)

    joints = np.stack([local[name] for name in JOINTS], axis=1)
    joints[:, :, 0] += p["x"][:, None]
    joints[:, :, 1] += p["y"][:, None]

    # Grounding: lowest body volume on the floor (or bed) vs. pelvis on a seat.
    radius = _joint_radii(fig)
    lowest = np.min(joints[:, :, 2] - radius[None, :], axis=1)
    z_floor = p["floor_h"] - lowest
    z_seat = p["seat_h"] + fig.radii["hips"] - joints[:, _J["pelvis"], 2]
    w = np.clip(p["seat_w"], 0.0, 1.0)
    # Never below the floor itself (a long-legged person on a low seat hovers slightly).
    shift = np.maximum((1.0 - w) * z_floor + w * z_seat, -lowest)
    joints[:, :, 2] += (shift + p["lift"])[:, None]
    return joints


def _joint_radii(fig: Figure) -> FloatArray:
    """Radius of the thickest body volume ending at each joint (for floor contact)."""
    out = np.zeros(N_JOINTS)
    for a, b, rkey, _ in CAPSULES:
        rad = fig.radii[rkey]
        out[_J[a]] = max(out[_J[a]], rad)
        out[_J[b]] = max(out[_J[b]], rad)
    return out
