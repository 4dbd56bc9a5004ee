"""Static background: ray-cast the room and its furniture once per clip.

Inputs: a ``Scene`` and a random generator (for texture noise). Outputs: a
``Background`` with colour ``[H, W, 3]`` float32 in [0, 1] (lit, textured, with contact
shadows under furniture), depth ``[H, W]`` float32 (camera z, metres; the z-buffer people
are drawn against), and where the floor is visible with its world x, y (for people's
shadows).

Guarantees: exact per-pixel ray/box intersection, so furniture correctly occludes people
standing behind it; deterministic for a given scene and generator state.
Failure modes: none (every ray leaves the closed room box).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from models.synth.scene import Scene

__all__ = ["Background", "render_background"]

F32 = NDArray[np.float32]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Background:
    colour: F32
    depth: F32
    floor_mask: NDArray[np.bool_]
    floor_xy: F32


def _hash(a: FloatArray) -> FloatArray:
    """Cheap deterministic pseudo-random value in [0, 1) per integer cell."""
    return np.modf(np.abs(np.sin(a * 12.9898 + 78.233) * 43758.5453))[0]


def _noise_tex(rng: np.random.Generator, u: FloatArray, v: FloatArray, cell: float) -> FloatArray:
    """Smooth value noise sampled at world coords (bilinear over a random 64x64 grid)."""
    grid = rng.uniform(-1.0, 1.0, (64, 64))
    x, y = u / cell, v / cell
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    i0, j0 = x0.astype(np.int64) % 64, y0.astype(np.int64) % 64
    i1, j1 = (i0 + 1) % 64, (j0 + 1) % 64
    top = grid[i0, j0] * (1 - fx) + grid[i1, j0] * fx
    bot = grid[i0, j1] * (1 - fx) + grid[i1, j1] * fx
    out: FloatArray = top * (1 - fy) + bot * fy
    return out


def _floor_texture(
    scene: Scene, rng: np.random.Generator, x: FloatArray, y: FloatArray
) -> FloatArray:
    c, s = math.cos(scene.texture_angle), math.sin(scene.texture_angle)
    u, v = (c * x + s * y) / scene.texture_scale, (-s * x + c * y) / scene.texture_scale
    kind = scene.floor_texture
    if kind == "wood":
        plank = np.floor(v / 0.14)
        stagger = np.floor((u + _hash(plank) * 3.0) / 1.2)
        shade = 0.82 + 0.3 * _hash(plank * 7.0 + stagger)
        grain = 0.05 * np.sin(u * 25.0 + 6.0 * _hash(plank) + 3.0 * np.sin(v * 40.0))
        seam = (np.abs(v / 0.14 - np.round(v / 0.14)) < 0.06) * -0.25
        return shade + grain + seam
    if kind in ("tiles", "big_tiles"):
        size = 0.4 if kind == "tiles" else 0.8
        if kind == "big_tiles":
            u, v = (u + v) / math.sqrt(2), (u - v) / math.sqrt(2)
        fu, fv = u / size - np.floor(u / size), v / size - np.floor(v / size)
        grout = (np.minimum(np.minimum(fu, 1 - fu), np.minimum(fv, 1 - fv)) < 0.03) * -0.3
        checker = ((np.floor(u / size) + np.floor(v / size)) % 2) * 0.08
        return 0.95 + checker + grout + 0.04 * _noise_tex(rng, u, v, 0.3)
    if kind == "carpet":
        return 0.95 + 0.06 * _noise_tex(rng, u, v, 0.05) + 0.05 * _noise_tex(rng, u, v, 0.6)
    # concrete
    return 0.9 + 0.1 * _noise_tex(rng, u, v, 0.8) + 0.05 * _noise_tex(rng, u, v, 0.07)


def _wall_texture(
    scene: Scene, rng: np.random.Generator, a: FloatArray, z: FloatArray
) -> FloatArray:
    kind = scene.wall_texture
    k = scene.texture_scale
    if kind == "stripes":
        return np.where(np.sin(a / (0.05 * k) * math.pi) > 0.0, 1.02, 0.93)
    if kind == "noise":
        return 0.95 + 0.06 * _noise_tex(rng, a, z, 0.3)
    if kind == "panels":
        lower = z < 0.9
        return np.where(lower, 0.8 + 0.06 * (np.abs(np.sin(a / (0.12 * k) * math.pi)) > 0.1), 1.0)
    if kind == "brick":
        row = np.floor(z / 0.075)
        off = (row % 2) * 0.1
        fu = (a + off) / 0.2 - np.floor((a + off) / 0.2)
        fz = z / 0.075 - row
        mortar = (np.minimum(fu, 1 - fu) < 0.05) | (np.minimum(fz, 1 - fz) < 0.08)
        return np.where(mortar, 1.25, 0.85 + 0.2 * _hash(row * 31.0 + np.floor((a + off) / 0.2)))
    if kind == "checker":
        return 0.88 + 0.14 * ((np.floor(a / (0.25 * k)) + np.floor(z / (0.25 * k))) % 2)
    # gradient
    return 0.75 + 0.35 * (z / 3.0) + 0.03 * _noise_tex(rng, a, z, 0.5)


def render_background(scene: Scene, rng: np.random.Generator) -> Background:
    """Ray-cast the room once: colour, depth, floor mask and floor coordinates."""
    cam = scene.camera
    w, h = cam.width, cam.height
    jj, ii = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    a = (jj - w / 2) / cam.focal
    b = (ii - h / 2) / cam.focal
    dirs = cam.forward[None, None, :] + a[..., None] * cam.right + b[..., None] * cam.down
    dirs = np.where(np.abs(dirs) < 1e-9, 1e-9, dirs)
    org = cam.pos

    # Room shell: the camera is inside, so the exit face is the hit.
    t_hi = (scene.room_hi - org) / dirs
    t_lo = (scene.room_lo - org) / dirs
    t_axis = np.where(dirs > 0, t_hi, t_lo)
    axis = np.argmin(t_axis, axis=-1)
    t = np.take_along_axis(t_axis, axis[..., None], -1)[..., 0]
    face = axis * 2 + np.take_along_axis(dirs > 0, axis[..., None], -1)[..., 0]
    normal = np.zeros_like(dirs)
    np.put_along_axis(normal, axis[..., None], np.where(
        np.take_along_axis(dirs, axis[..., None], -1) > 0, -1.0, 1.0), -1)  # fmt: skip
    albedo = np.zeros_like(dirs)
    hit_box = np.full(t.shape, -1)

    for k, box in enumerate(scene.boxes):
        cy, sy = math.cos(box.yaw), math.sin(box.yaw)
        rel = org - np.array(box.centre)
        o_loc = np.array([cy * rel[0] + sy * rel[1], -sy * rel[0] + cy * rel[1], rel[2]])
        d_loc = np.stack(
            [
                cy * dirs[..., 0] + sy * dirs[..., 1],
                -sy * dirs[..., 0] + cy * dirs[..., 1],
                dirs[..., 2],
            ],
            -1,
        )
        d_loc = np.where(np.abs(d_loc) < 1e-9, 1e-9, d_loc)
        half = np.array(box.half)
        t1, t2 = (-half - o_loc) / d_loc, (half - o_loc) / d_loc
        tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
        enter_axis = np.argmax(tmin, axis=-1)
        t_enter = np.take_along_axis(tmin, enter_axis[..., None], -1)[..., 0]
        t_exit = np.min(tmax, axis=-1)
        hit = (t_enter < t_exit) & (t_enter > 0.05) & (t_enter < t)
        if not np.any(hit):
            continue
        t = np.where(hit, t_enter, t)
        sign = -np.sign(np.take_along_axis(d_loc, enter_axis[..., None], -1)[..., 0])
        n_loc = np.zeros_like(dirs)
        np.put_along_axis(n_loc, enter_axis[..., None], sign[..., None], -1)
        n_world = np.stack(
            [
                cy * n_loc[..., 0] - sy * n_loc[..., 1],
                sy * n_loc[..., 0] + cy * n_loc[..., 1],
                n_loc[..., 2],
            ],
            -1,
        )
        normal = np.where(hit[..., None], n_world, normal)
        hit_box = np.where(hit, k, hit_box)

    pts = org + dirs * t[..., None]
    x, y, z = pts[..., 0], pts[..., 1], pts[..., 2]
    floor = (face == 4) & (hit_box < 0)
    walls = (face < 4) & (hit_box < 0)
    ceiling = (face == 5) & (hit_box < 0)

    wall_rgb = np.array(scene.wall_colour)
    wall_a = np.where(face < 2, y, x)
    wall_tex = _wall_texture(scene, rng, wall_a, z)
    skirting = z < 0.09
    albedo = np.where(walls[..., None], wall_rgb * wall_tex[..., None], albedo)
    albedo = np.where((walls & skirting)[..., None], np.array([0.9, 0.9, 0.88]) * 0.9, albedo)
    for op in scene.openings:
        on = (
            walls
            & (face == op.wall)
            & (wall_a > op.a0)
            & (wall_a < op.a1)
            & (z > op.z0)
            & (z < op.z1)
        )
        albedo = np.where(on[..., None], np.array(op.colour), albedo)
    floor_tex = _floor_texture(scene, rng, x, y)
    albedo = np.where(floor[..., None], np.array(scene.floor_colour) * floor_tex[..., None], albedo)
    albedo = np.where(ceiling[..., None], np.array([0.92, 0.92, 0.9]), albedo)
    for k, box in enumerate(scene.boxes):
        on = hit_box == k
        if np.any(on):
            tex = 1.0 + 0.04 * np.sin((x + y) * 60.0) if box.kind == "wood" else np.ones_like(x)
            albedo = np.where(on[..., None], np.array(box.colour) * tex[..., None], albedo)

    light = scene.ambient + scene.diffuse * np.clip(normal @ scene.light_dir, 0.0, 1.0)
    # Ambient occlusion: corners and the floor under / next to furniture are darker.
    dist_wall = np.minimum.reduce([x - scene.room_lo[0], scene.room_hi[0] - x,
                                   y - scene.room_lo[1], scene.room_hi[1] - y])  # fmt: skip
    ao = 1.0 - 0.25 * np.exp(-np.maximum(dist_wall, 0.0) / 0.25) * (floor | (walls & (z < 0.5)))
    ao = ao - 0.2 * np.exp(-np.maximum(z, 0) / 0.3) * walls
    for box in scene.boxes:
        if box.centre[2] - box.half[2] > 0.2 and box.half[2] > 0.05:
            continue  # table tops and seats: legs carry the contact shadow
        cy, sy = math.cos(box.yaw), math.sin(box.yaw)
        rx, ry = x - box.centre[0], y - box.centre[1]
        lx = np.abs(cy * rx + sy * ry) - box.half[0]
        ly = np.abs(-sy * rx + cy * ry) - box.half[1]
        d = np.hypot(np.maximum(lx, 0), np.maximum(ly, 0))
        ao = ao - 0.35 * np.exp(-d / 0.12) * floor
    colour = albedo * (light * np.clip(ao, 0.3, 1.0))[..., None]
    floor_xy = np.stack([x, y], -1).astype(np.float32)
    return Background(colour.astype(np.float32), t.astype(np.float32), floor, floor_xy)
