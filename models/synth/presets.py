"""Domain-randomization presets: the ranges every random scene property is drawn from.

Inputs: a preset name, ``train``, ``heldout`` or ``demo``. Outputs: a frozen ``Preset``.

Guarantees: ``heldout`` differs from ``train`` in camera height, focal length (field of
view), subject scale, palettes, wall and floor textures, noise, blur, motion blur
(shutter time), codec quality and
how often the camera is in grey night mode, so a model evaluated on held-out clips faces a
real shift; some held-out ranges lie wholly outside the train ranges, others overlap.
Failure modes: ``KeyError`` naming the known presets for an unknown name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PRESETS", "Preset", "draw", "get_preset"]

Range = tuple[tuple[float, float], ...]  # union of intervals, drawn proportionally to length


@dataclass(frozen=True)
class Preset:
    """Ranges for one domain. Angles in degrees, lengths in metres."""

    name: str
    cam_height: Range
    hfov_deg: Range
    subject_frac: Range  # standing person's height as a fraction of the image height
    cam_roll_deg: float
    aim_jitter_deg: float
    palettes: tuple[str, ...]
    wall_textures: tuple[str, ...]
    floor_textures: tuple[str, ...]
    noise_sigma: Range
    blur_prob: float
    grey_prob: float
    crf: Range
    light_gain: Range
    light_step_prob: float
    tint_strength: float
    occluder_prob: float
    second_person_prob: float
    extra_furniture: tuple[int, int]
    exposure_prob: float  # share of clips whose shutter smears fast motion
    max_exposure_s: float


PRESETS: dict[str, Preset] = {
    "train": Preset(
        name="train",
        cam_height=((1.5, 2.6),),
        hfov_deg=((55.0, 80.0),),
        subject_frac=((0.32, 0.7),),
        cam_roll_deg=2.0,
        aim_jitter_deg=4.0,
        palettes=("muted", "vivid"),
        wall_textures=("plain", "stripes", "noise", "panels"),
        floor_textures=("wood", "tiles", "carpet"),
        noise_sigma=((0.004, 0.03),),
        blur_prob=0.3,
        grey_prob=0.1,
        crf=((23.0, 35.0),),
        light_gain=((0.75, 1.2),),
        light_step_prob=0.15,
        tint_strength=0.08,
        occluder_prob=0.2,
        second_person_prob=0.2,
        extra_furniture=(1, 4),
        exposure_prob=0.6,
        max_exposure_s=0.06,
    ),
    "heldout": Preset(
        name="heldout",
        cam_height=((1.05, 1.5), (2.6, 3.1)),
        hfov_deg=((42.0, 55.0), (80.0, 95.0)),
        subject_frac=((0.25, 0.34), (0.6, 0.85)),
        cam_roll_deg=6.0,
        aim_jitter_deg=8.0,
        palettes=("vivid", "pastel"),
        wall_textures=("brick", "checker", "gradient", "stripes"),
        floor_textures=("concrete", "big_tiles", "wood"),
        noise_sigma=((0.02, 0.05),),
        blur_prob=0.5,
        grey_prob=0.35,
        crf=((30.0, 41.0),),
        light_gain=((0.5, 0.8), (1.1, 1.35)),
        light_step_prob=0.3,
        tint_strength=0.16,
        occluder_prob=0.3,
        second_person_prob=0.3,
        extra_furniture=(2, 5),
        exposure_prob=0.7,
        max_exposure_s=0.1,
    ),
    "demo": Preset(
        name="demo",
        cam_height=((2.0, 2.5),),
        hfov_deg=((60.0, 70.0),),
        subject_frac=((0.4, 0.5),),
        cam_roll_deg=1.0,
        aim_jitter_deg=2.0,
        palettes=("muted", "vivid"),
        wall_textures=("plain", "stripes", "panels"),
        floor_textures=("wood", "tiles", "carpet"),
        noise_sigma=((0.005, 0.015),),
        blur_prob=0.0,
        grey_prob=0.0,
        crf=((23.0, 28.0),),
        light_gain=((0.9, 1.1),),
        light_step_prob=0.0,
        tint_strength=0.05,
        occluder_prob=0.0,
        second_person_prob=0.0,
        extra_furniture=(2, 3),
        exposure_prob=0.5,
        max_exposure_s=0.03,
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ``KeyError`` listing the valid names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known: {sorted(PRESETS)}") from None


def draw(rng: np.random.Generator, rng_range: Range) -> float:
    """A uniform draw from a union of intervals (each picked in proportion to its length)."""
    lengths = np.array([hi - lo for lo, hi in rng_range])
    i = int(rng.choice(len(rng_range), p=lengths / lengths.sum())) if len(rng_range) > 1 else 0
    lo, hi = rng_range[i]
    return float(rng.uniform(lo, hi))
