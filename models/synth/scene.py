"""Scene layout: pinhole camera, room, furniture boxes, lighting, all drawn from a preset.

Inputs: a random generator, a ``Preset``, the furniture an action needs (``Prop``) and the
floor path the person(s) will take. Outputs: a ``Scene`` (camera, room bounds, textured
boxes, wall openings, light) that ``background.render_background`` ray-casts once per clip.

Guarantees: the camera is inside the room and aimed at the person's activity area; extra
furniture never stands on the person's path; an occluder, when placed, stands between the
camera and the activity area. World axes: x, y on the floor, z up; metres.
Failure modes: none (layout falls back to fewer boxes when space is tight).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from models.synth.actions import Prop
from models.synth.presets import Preset, draw

__all__ = ["Box", "Camera", "Opening", "Scene", "build_scene", "furniture_boxes"]

FloatArray = NDArray[np.float64]
Colour = tuple[float, float, float]


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: position, orthonormal basis (right, down, forward), focal in pixels."""

    pos: FloatArray
    right: FloatArray
    down: FloatArray
    forward: FloatArray
    focal: float
    width: int
    height: int

    def to_camera(self, pts: FloatArray) -> FloatArray:
        """World points ``[..., 3]`` to camera coordinates (x right, y down, z depth)."""
        rel = pts - self.pos
        return np.stack([rel @ self.right, rel @ self.down, rel @ self.forward], axis=-1)

    def project(self, pts: FloatArray) -> FloatArray:
        """World points to ``[..., 3]`` = (u, v, depth) with u, v in pixels."""
        c = self.to_camera(pts)
        z = np.maximum(c[..., 2], 1e-3)
        u = self.width / 2 + self.focal * c[..., 0] / z
        v = self.height / 2 + self.focal * c[..., 1] / z
        return np.stack([u, v, c[..., 2]], axis=-1)


@dataclass(frozen=True)
class Box:
    """An oriented box (rotated about z) with a flat colour; ``kind`` names its texture."""

    centre: tuple[float, float, float]
    half: tuple[float, float, float]
    yaw: float
    colour: Colour
    kind: str = "plain"


@dataclass(frozen=True)
class Opening:
    """A door or window on a wall: wall index (0:x-lo 1:x-hi 2:y-lo 3:y-hi), span, colour."""

    wall: int
    a0: float
    a1: float
    z0: float
    z1: float
    colour: Colour


@dataclass
class Scene:
    camera: Camera
    room_lo: FloatArray
    room_hi: FloatArray
    wall_colour: Colour
    wall_texture: str
    floor_colour: Colour
    floor_texture: str
    texture_scale: float
    texture_angle: float
    boxes: list[Box] = field(default_factory=list)
    openings: list[Opening] = field(default_factory=list)
    light_dir: FloatArray = field(default_factory=lambda: np.array([0.3, 0.2, 0.93]))
    ambient: float = 0.55
    diffuse: float = 0.5
    tint: FloatArray = field(default_factory=lambda: np.ones(3))
    palette: str = "muted"


def _colour(rng: np.random.Generator, palette: str, light: bool) -> Colour:
    if palette == "vivid":
        c = rng.uniform(0.15, 0.95, 3)
    elif palette == "pastel":
        c = 0.6 + 0.4 * rng.uniform(0, 1, 3)
    else:
        base = rng.uniform(0.55, 0.9) if light else rng.uniform(0.2, 0.6)
        c = base * (1 + rng.normal(0, 0.06, 3)) * np.array([1.0, 0.97, 0.9])
    c = np.clip(c, 0.02, 1.0)
    return (float(c[0]), float(c[1]), float(c[2]))


def _look_at(
    pos: FloatArray, target: FloatArray, roll: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    fwd = target - pos
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, np.array([0.0, 0.0, 1.0]))
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    c, s = math.cos(roll), math.sin(roll)
    return c * right + s * down, -s * right + c * down, fwd


def furniture_boxes(prop: Prop, rng: np.random.Generator, palette: str) -> list[Box]:
    """The boxes making up one piece of furniture (seat, back, legs, mattress, ...)."""
    cy, sy = math.cos(prop.yaw), math.sin(prop.yaw)

    def at(fwd: float, left: float, z: float) -> tuple[float, float, float]:
        return (prop.x + cy * fwd - sy * left, prop.y + sy * fwd + cy * left, z)

    body = _colour(rng, palette, light=False)
    out: list[Box] = []
    h = prop.seat_h
    if prop.kind == "chair":
        w = rng.uniform(0.2, 0.25)
        out.append(Box(at(0.0, 0.0, h - 0.03), (w, w, 0.03), prop.yaw, body, "wood"))
        out.append(Box(at(-w + 0.02, 0.0, h + 0.25), (0.02, w, 0.25), prop.yaw, body, "wood"))
        for f, side in (
            (w - 0.03, w - 0.03),
            (w - 0.03, 0.03 - w),
            (0.03 - w, w - 0.03),
            (0.03 - w, 0.03 - w),
        ):
            out.append(
                Box(at(f, side, (h - 0.06) / 2), (0.02, 0.02, (h - 0.06) / 2), prop.yaw, body)
            )
    elif prop.kind == "sofa":
        width = rng.uniform(0.8, 1.1)
        out.append(Box(at(0.0, 0.0, h / 2), (0.35, width, h / 2), prop.yaw, body, "fabric"))
        out.append(
            Box(at(-0.42, 0.0, h + 0.15), (0.1, width, h / 2 + 0.15), prop.yaw, body, "fabric")
        )
        for side in (-1, 1):
            out.append(Box(at(-0.05, side * (width + 0.1), h / 2 + 0.1), (0.42, 0.1, h / 2 + 0.1),
                           prop.yaw, body, "fabric"))  # fmt: skip
    elif prop.kind == "bed":
        length, width = rng.uniform(0.95, 1.05), rng.uniform(0.45, 0.8)
        sheet = _colour(rng, palette, light=True)
        out.append(
            Box(
                at(0.0, 0.0, (h - 0.15) / 2),
                (length, width, (h - 0.15) / 2),
                prop.yaw,
                body,
                "wood",
            )
        )
        out.append(
            Box(
                at(0.0, 0.0, h - 0.075),
                (length - 0.02, width - 0.02, 0.075),
                prop.yaw,
                sheet,
                "fabric",
            )
        )
        out.append(
            Box(at(length + 0.03, 0.0, h + 0.2), (0.03, width, h / 2 + 0.2), prop.yaw, body, "wood")
        )
    elif prop.kind == "table":
        lx, ly = rng.uniform(0.35, 0.8), rng.uniform(0.3, 0.5)
        out.append(Box(at(0.0, 0.0, h - 0.02), (lx, ly, 0.02), prop.yaw, body, "wood"))
        for f, side in (
            (lx - 0.04, ly - 0.04),
            (lx - 0.04, 0.04 - ly),
            (0.04 - lx, ly - 0.04),
            (0.04 - lx, 0.04 - ly),
        ):
            out.append(
                Box(at(f, side, (h - 0.04) / 2), (0.025, 0.025, (h - 0.04) / 2), prop.yaw, body)
            )
    else:  # cabinet / wardrobe / low counter
        out.append(Box(at(0.0, 0.0, h / 2), (rng.uniform(0.2, 0.35), rng.uniform(0.3, 0.7), h / 2),
                       prop.yaw, body, "panel"))  # fmt: skip
    return out


def _near_sight_line(x: float, y: float, cam: FloatArray, path: FloatArray) -> bool:
    """Whether (x, y) is within 1.2 m (furniture half-size plus margin) of a sight line
    from the camera to the path."""
    step = max(1, len(path) // 8)
    targets = np.vstack([path[::step], path[-1:]])
    seg = targets - cam  # [K, 2]
    rel = np.array([x, y]) - cam
    t = np.clip((seg @ rel) / np.maximum(np.sum(seg * seg, axis=1), 1e-9), 0.0, 1.0)
    closest = cam + t[:, None] * seg
    return bool(np.min(np.hypot(closest[:, 0] - x, closest[:, 1] - y)) < 1.2)


def _too_close(x: float, y: float, path: FloatArray, clearance: float) -> bool:
    return bool(np.min(np.hypot(path[:, 0] - x, path[:, 1] - y)) < clearance)


def build_scene(
    rng: np.random.Generator,
    preset: Preset,
    props: list[Prop],
    path: FloatArray,
    width: int,
    height: int,
    *,
    fall_xy: tuple[float, float] | None = None,
) -> Scene:
    """Lay out camera, room and furniture around ``path`` (``[N, 2]`` floor positions)."""
    focus = path.mean(axis=0) if fall_xy is None else 0.5 * (path.mean(axis=0) + np.array(fall_xy))
    hfov = math.radians(draw(rng, preset.hfov_deg))
    focal = (width / 2) / math.tan(hfov / 2)
    frac = draw(rng, preset.subject_frac)
    dist = max(1.6, focal * 1.72 / (frac * height))
    cam_h = draw(rng, preset.cam_height)
    ang = rng.uniform(-math.pi, math.pi)
    pos = np.array([focus[0] - dist * math.cos(ang), focus[1] - dist * math.sin(ang), cam_h])
    jit = math.radians(preset.aim_jitter_deg)
    target = np.array([focus[0], focus[1], rng.uniform(0.35, 0.85)])
    target[:2] += rng.normal(0, jit * dist, 2)
    right, down, fwd = _look_at(pos, target, math.radians(rng.normal(0, preset.cam_roll_deg)))
    camera = Camera(pos, right, down, fwd, focal, width, height)

    # Walls: some way beyond the path, and close behind the camera (cameras hang on walls)
    # without ever cutting through the path.
    lo = np.minimum(path.min(axis=0) - rng.uniform(0.8, 3.0, 2), pos[:2] - rng.uniform(0.1, 0.5, 2))
    hi = np.maximum(path.max(axis=0) + rng.uniform(0.8, 3.0, 2), pos[:2] + rng.uniform(0.1, 0.5, 2))
    room_h = max(cam_h + 0.15, rng.uniform(2.4, 3.2))
    palette = str(rng.choice(preset.palettes))
    scene = Scene(
        camera=camera,
        room_lo=np.array([lo[0], lo[1], 0.0]),
        room_hi=np.array([hi[0], hi[1], room_h]),
        wall_colour=_colour(rng, palette, light=True),
        wall_texture=str(rng.choice(preset.wall_textures)),
        floor_colour=_colour(rng, palette, light=rng.uniform() < 0.4),
        floor_texture=str(rng.choice(preset.floor_textures)),
        texture_scale=float(rng.uniform(0.7, 1.5)),
        texture_angle=float(rng.choice([0.0, math.pi / 2])),
        palette=palette,
    )
    az, el = rng.uniform(-math.pi, math.pi), rng.uniform(0.6, 1.4)
    scene.light_dir = np.array(
        [math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el)]
    )
    scene.ambient = float(rng.uniform(0.45, 0.7))
    scene.diffuse = float(rng.uniform(0.3, 0.6))
    scene.tint = 1.0 + rng.normal(0, preset.tint_strength, 3)

    for prop in props:
        scene.boxes.extend(furniture_boxes(prop, rng, palette))
    _add_openings(scene, rng)
    _add_extra_furniture(scene, rng, preset, path, palette)
    if rng.uniform() < preset.occluder_prob:
        _add_occluder(scene, rng, path, focus, palette)
    return scene


def _add_openings(scene: Scene, rng: np.random.Generator) -> None:
    for _ in range(int(rng.integers(0, 3))):
        wall = int(rng.integers(4))
        axis = 1 if wall < 2 else 0
        lo, hi = scene.room_lo[axis], scene.room_hi[axis]
        if hi - lo < 1.6:
            continue
        is_door = rng.uniform() < 0.5
        w = 0.9 if is_door else rng.uniform(0.8, 1.6)
        a0 = rng.uniform(lo + 0.2, hi - w - 0.2)
        z0, z1 = (0.0, 2.05) if is_door else (rng.uniform(0.8, 1.0), rng.uniform(1.8, 2.2))
        colour = _colour(rng, scene.palette, light=False) if is_door else (0.95, 0.97, 1.0)
        scene.openings.append(Opening(wall, a0, a0 + w, z0, z1, colour))


def _add_extra_furniture(
    scene: Scene, rng: np.random.Generator, preset: Preset, path: FloatArray, palette: str
) -> None:
    n = int(rng.integers(preset.extra_furniture[0], preset.extra_furniture[1] + 1))
    for _ in range(n):
        kind = str(rng.choice(["table", "cabinet", "sofa", "bed", "chair"]))
        seat_h = {"table": rng.uniform(0.7, 0.78), "cabinet": rng.uniform(0.8, 2.0),
                  "sofa": 0.42, "bed": 0.5, "chair": 0.46}[kind]  # fmt: skip
        for _try in range(6):
            # Against a wall (most furniture is) or free-standing.
            x = rng.uniform(scene.room_lo[0] + 0.5, scene.room_hi[0] - 0.5)
            y = rng.uniform(scene.room_lo[1] + 0.5, scene.room_hi[1] - 0.5)
            if _too_close(x, y, path, 1.3) or _too_close(x, y, scene.camera.pos[None, :2], 1.0):
                continue
            if kind in ("sofa", "bed", "cabinet") and _near_sight_line(
                x, y, scene.camera.pos[:2], path
            ):
                continue  # solid furniture must not hide the person completely
            yaw = float(rng.choice([0.0, math.pi / 2, math.pi, -math.pi / 2])) + rng.normal(0, 0.05)
            scene.boxes.extend(furniture_boxes(Prop(kind, x, y, yaw, seat_h), rng, palette))
            break


def _add_occluder(
    scene: Scene, rng: np.random.Generator, path: FloatArray, focus: FloatArray, palette: str
) -> None:
    cam = scene.camera.pos[:2]
    for _try in range(5):
        f = rng.uniform(0.35, 0.7)
        x, y = cam + f * (focus - cam)
        if _too_close(float(x), float(y), path, 0.75):
            continue
        yaw = math.atan2(focus[1] - cam[1], focus[0] - cam[0])
        kind = str(rng.choice(["table", "sofa", "cabinet"]))
        # Low enough that the sight line to a body lying on the floor (top ~0.25 m) passes
        # over it: the person is partly hidden, never wholly.
        cam_h = float(scene.camera.pos[2])
        top = cam_h + f * (0.25 - cam_h)
        if top < 0.35:
            return
        h = rng.uniform(0.35, min(top, 1.0))
        if kind == "sofa":
            h = min(h, (top - 0.3) / 1.5)  # its back rises to 1.5 * seat + 0.3 m
            if h < 0.3:
                continue
        scene.boxes.extend(furniture_boxes(Prop(kind, float(x), float(y), yaw, h), rng, palette))
        return
