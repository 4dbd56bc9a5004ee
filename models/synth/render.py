"""Rasteriser: draw people into a background with a z-buffer, then the camera's flaws.

Inputs: a ``Background`` (colour, depth), the ``Camera``, each person's ``Figure`` and
joints for one frame, the light; a ``CameraFx`` describing exposure drift, tint,
vignetting, sensor noise, blur and grey (night) mode. Outputs: one RGB uint8 frame
``[H, W, 3]``.

How: every body volume is a capsule between two joints; it is drawn only over the
bounding box of its projection, with per-pixel depth (a rounded surface), soft
(anti-aliased) edges and Lambert shading from the scene light; pixels lose to anything
nearer in the z-buffer (furniture, the other person, the person's own nearer limbs).
A soft contact shadow darkens the floor under the body.

Guarantees: deterministic given the generator passed to ``finish_frame``; pure numpy.
Failure modes: none; volumes behind the camera are skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from models.synth.background import Background
from models.synth.presets import Preset, draw
from models.synth.scene import Camera
from models.synth.skeleton import CAPSULES, Figure, joint_index

__all__ = ["CameraFx", "draw_person", "draw_shadow", "finish_frame", "make_camera_fx"]

F32 = NDArray[np.float32]
FloatArray = NDArray[np.float64]

_CAPS = [(joint_index(a), joint_index(b), r, c) for a, b, r, c in CAPSULES]
_SHADOW_JOINTS = [joint_index(n) for n in ("pelvis", "chest", "head", "knee_l", "knee_r",
                                            "ankle_l", "ankle_r", "hand_l", "hand_r")]  # fmt: skip
_HEAD, _TOP, _NOSE, _NECK = (joint_index(n) for n in ("head", "head_top", "nose", "neck"))


def _capsule(
    img: F32, zbuf: F32, focal: float, pa: list[float], pb: list[float], radius: float,
    colour: F32, light_cam: list[float], ambient: float, diffuse: float,
    stripes: float = 0.0, stripe_amp: float = 0.0,
) -> None:  # fmt: skip
    """Draw one capsule given its endpoints' (u, v, depth) as Python floats.

    Python floats keep every array float32 (numpy treats them as weak scalars); the
    arithmetic is written for few temporaries because per-call overhead dominates.
    """
    ua, va, za = pa
    ub, vb, zb = pb
    if za < 0.15 or zb < 0.15:
        return
    ra, rb = radius * focal / za, radius * focal / zb
    h, w = zbuf.shape
    u0 = max(0, int(min(ua - ra, ub - rb)))
    u1 = min(w, int(max(ua + ra, ub + rb)) + 2)
    v0 = max(0, int(min(va - ra, vb - rb)))
    v1 = min(h, int(max(va + ra, vb + rb)) + 2)
    if u0 >= u1 or v0 >= v1:
        return
    ax = np.arange(u0, u1, dtype=np.float32) + (0.5 - ua)
    ay = (np.arange(v0, v1, dtype=np.float32) + (0.5 - va))[:, None]
    dx, dy = ub - ua, vb - va
    inv_l2 = 1.0 / max(dx * dx + dy * dy, 1e-6)
    t = ax * (dx * inv_l2) + ay * (dy * inv_l2)
    np.clip(t, 0.0, 1.0, out=t)
    ex = ax - t * dx
    ey = ay - t * dy
    dist = np.sqrt(ex * ex + ey * ey)
    rad = t * (rb - ra) + ra
    cover = rad - dist + 0.5
    inside = cover > 0.0
    if not inside.any():
        return
    np.minimum(cover, 1.0, out=cover)
    inv = 1.0 / np.maximum(rad, 1e-3)
    q = np.minimum(dist * inv, 1.0)
    nz = np.sqrt(1.0 - q * q)
    depth = t * (zb - za) + za - radius * nz
    lam = (ex * light_cam[0] + ey * light_cam[1]) * inv - nz * light_cam[2]
    shade = (np.maximum(lam, 0.0) * diffuse + ambient) * (nz * 0.28 + 0.72)
    if stripes > 0.0:  # fabric pattern: bands across the limb / torso
        shade *= 1.0 - stripe_amp * (np.sin(t * (2.0 * math.pi * stripes)) > 0.0)
    zsub = zbuf[v0:v1, u0:u1]
    vis = inside & (depth < zsub)
    a = (cover * vis)[..., None]
    sub = img[v0:v1, u0:u1]
    sub += a * (shade[..., None] * colour - sub)
    zsub[vis & (cover > 0.5)] = depth[vis & (cover > 0.5)]


def draw_person(
    img: F32, zbuf: F32, cam: Camera, fig: Figure, joints: FloatArray,
    light_dir: FloatArray, ambient: float, diffuse: float,
) -> None:  # fmt: skip
    """Draw one person (joints ``[J, 3]`` world) into ``img``/``zbuf`` in place."""
    proj = cam.project(joints)
    pl = proj.tolist()
    light_cam = [
        float(light_dir @ cam.right),
        float(light_dir @ cam.down),
        float(light_dir @ cam.forward),
    ]
    # Far volumes first so soft edges blend over the right colour.
    order = sorted(range(len(_CAPS)), key=lambda k: -(pl[_CAPS[k][0]][2] + pl[_CAPS[k][1]][2]))
    for k in order:
        a, b, rkey, ckey = _CAPS[k]
        colour = np.asarray(fig.colours[ckey], dtype=np.float32)
        stripes = 0.0
        if fig.stripe_period > 0.0 and (
            ckey == "shirt" or (ckey == "sleeve" and fig.colours[ckey] == fig.colours["shirt"])
        ):
            stripes = float(np.linalg.norm(joints[b] - joints[a])) / fig.stripe_period
        _capsule(img, zbuf, cam.focal, pl[a], pl[b], fig.radii[rkey], colour, light_cam, ambient,
                 diffuse, stripes, fig.stripe_amp)  # fmt: skip
    # Hair: a slightly larger cap set back from the face.
    back = joints[_HEAD] - joints[_NOSE]
    back /= max(float(np.linalg.norm(back)), 1e-6)
    up = joints[_TOP] - joints[_HEAD]
    r_head = fig.radii["head"]
    top = joints[_TOP] + back * 0.35 * r_head - up * 0.15
    low = joints[_HEAD] + back * 0.45 * r_head - up * (0.2 + 0.8 * fig.hair_len)
    hp = cam.project(np.stack([top, low])).tolist()
    _capsule(
        img,
        zbuf,
        cam.focal,
        hp[0],
        hp[1],
        r_head * 1.02,
        np.asarray(fig.hair, dtype=np.float32),
        light_cam,
        ambient,
        diffuse,
    )


def draw_shadow(img: F32, bg: Background, cam: Camera, joints: FloatArray, strength: float) -> None:
    """Darken the floor under the body: soft blobs below the main joints, fainter when high."""
    pts = joints[_SHADOW_JOINTS]
    ground = pts.copy()
    ground[:, 2] = 0.0
    proj = cam.project(np.vstack([ground, pts]))
    h, w = img.shape[:2]
    pad = 12
    u0, u1 = int(max(0, proj[:, 0].min() - pad)), int(min(w, proj[:, 0].max() + pad))
    v0, v1 = int(max(0, proj[:, 1].min() - pad)), int(min(h, proj[:, 1].max() + pad))
    if u0 >= u1 or v0 >= v1 or proj[:, 2].min() < 0.2:
        return
    fx = bg.floor_xy[v0:v1, u0:u1, 0]
    fy = bg.floor_xy[v0:v1, u0:u1, 1]
    dark = np.zeros(fx.shape, dtype=np.float32)
    for x, y, z in pts.tolist():
        z = max(z, 0.0)
        if z > 1.4:
            continue
        sigma = 0.1 + 0.12 * z
        wgt = 0.3 * math.exp(-z / 0.9)
        g = 1.0 / (2 * sigma * sigma)
        dx2 = (fx - x) ** 2
        dark += wgt * np.exp(-(dx2 + (fy - y) ** 2) * g)
    keep = 1.0 - np.minimum(dark, 0.55) * strength * bg.floor_mask[v0:v1, u0:u1]
    img[v0:v1, u0:u1] *= keep[..., None]


@dataclass(frozen=True)
class CameraFx:
    """Per-clip camera imperfections; ``gain`` has one value per frame.

    ``static`` folds vignette and tint into one multiplier; ``noise`` is a bank of
    sensor-noise fields larger than the frame, cropped at a random offset each frame
    (drawing fresh Gaussian noise per frame costs more than rendering the person).
    """

    gain: F32
    static: F32
    noise: F32
    blur: bool
    grey: bool
    saturation: float
    lut: NDArray[np.uint8]


_NOISE_PAD = 24


def make_camera_fx(
    rng: np.random.Generator, preset: Preset, n_frames: int, fps: float, width: int, height: int
) -> CameraFx:
    """Draw exposure drift (and maybe a light switched on/off), tint, vignette, noise, blur."""
    t = np.arange(n_frames) / fps
    base = draw(rng, preset.light_gain)
    drift = 1.0 + 0.06 * np.sin(2 * math.pi * t / rng.uniform(4.0, 15.0) + rng.uniform(0, 6.3))
    gain = base * drift * (1.0 + rng.normal(0, 0.008, n_frames))
    if rng.uniform() < preset.light_step_prob and n_frames > 2:
        at = rng.uniform(0, t[-1])
        gain = gain * (1.0 + rng.uniform(-0.3, 0.3) * np.clip((t - at) / 0.3, 0.0, 1.0))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xx - width / 2) / (width / 2)) ** 2 + ((yy - height / 2) / (height / 2)) ** 2
    vignette = (1.0 - rng.uniform(0.05, 0.3) * r2 / 2)[..., None]
    tint = 1.0 + rng.normal(0, preset.tint_strength, 3)
    sigma = draw(rng, preset.noise_sigma)
    shape = (2, height + _NOISE_PAD, width + _NOISE_PAD)
    luma = rng.standard_normal((*shape, 1), dtype=np.float32) * (0.8 * sigma)
    chroma = rng.standard_normal((*shape, 3), dtype=np.float32) * (0.4 * sigma)
    gamma = float(rng.uniform(0.85, 1.15))
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
    return CameraFx(
        gain=gain.astype(np.float32),
        static=(vignette * tint).astype(np.float32),
        noise=(luma + chroma).astype(np.float32),
        blur=bool(rng.uniform() < preset.blur_prob),
        grey=bool(rng.uniform() < preset.grey_prob),
        saturation=float(rng.uniform(0.7, 1.2)),
        lut=lut,
    )


def finish_frame(img: F32, fx: CameraFx, k: int, rng: np.random.Generator) -> NDArray[np.uint8]:
    """Apply exposure, tint, vignette, saturation, blur, noise, gamma; quantise to uint8."""
    h, w = img.shape[:2]
    out = img * (fx.static * float(fx.gain[k] * 255.0))
    sat = 0.0 if fx.grey else fx.saturation
    if sat != 1.0:
        lum = (out[..., 0:1] + out[..., 1:2] + out[..., 2:3]) * ((1.0 - sat) / 3.0)
        out *= sat
        out += lum
    if fx.blur:
        out[1:-1] = 0.25 * out[:-2] + 0.5 * out[1:-1] + 0.25 * out[2:]
        out[:, 1:-1] = 0.25 * out[:, :-2] + 0.5 * out[:, 1:-1] + 0.25 * out[:, 2:]
    bank, oy, ox = (int(v) for v in rng.integers(0, (2, _NOISE_PAD, _NOISE_PAD)))
    out += fx.noise[bank, oy : oy + h, ox : ox + w] * 255.0
    np.clip(out, 0.0, 255.0, out=out)
    return fx.lut[out.astype(np.uint8)]
