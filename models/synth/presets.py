"""Domain-randomization presets: the ranges every random scene property is drawn from.

Inputs: a preset name, ``train``, ``heldout`` or ``demo``, or the path of a JSON preset file
(``*.json``) that starts from one of them and changes some ranges, so an ML engineer can render
training clips for their own camera mounts, lenses and rooms (``load_preset_file``; the format
is in ``docs/PRESET_FILES.md``). Outputs: a frozen ``Preset``.

Guarantees: ``heldout`` differs from ``train`` in camera height, focal length (field of
view), subject scale, palettes, wall and floor textures, noise, blur, motion blur
(shutter time), codec quality and
how often the camera is in grey night mode, so a model evaluated on held-out clips faces a
real shift; some held-out ranges lie wholly outside the train ranges, others overlap.
Failure modes: ``KeyError`` naming the known presets for an unknown name; ``PresetError``
(a ``ValueError``) naming the file and the field for a preset file that cannot be used.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FLOOR_TEXTURES",
    "PALETTES",
    "PRESETS",
    "WALL_TEXTURES",
    "Preset",
    "PresetError",
    "draw",
    "get_preset",
    "load_preset_file",
    "preset_arg",
    "preset_json",
]

# The names the renderer knows (models.synth.skeleton, .scene and .background); a preset file
# may only pick from these, since the renderer treats an unknown name as its default look.
PALETTES = ("muted", "vivid", "pastel")
WALL_TEXTURES = ("plain", "stripes", "noise", "panels", "brick", "checker", "gradient")
FLOOR_TEXTURES = ("wood", "tiles", "big_tiles", "carpet", "concrete")

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
    # A look far from both training and held-out, for checking that a model generalises
    # (issue 18): ceiling-corner cameras that see people small, dark rooms filmed in IR
    # night mode (every clip grey, heavy sensor noise, strong compression). Render it at
    # another size and frame rate too (`fallwatch synth --size 320x240 --fps 12`).
    "far_night": Preset(
        name="far_night",
        cam_height=((2.7, 3.3),),
        hfov_deg=((85.0, 110.0),),
        subject_frac=((0.16, 0.3),),
        cam_roll_deg=4.0,
        aim_jitter_deg=6.0,
        palettes=PALETTES,
        wall_textures=WALL_TEXTURES,
        floor_textures=FLOOR_TEXTURES,
        noise_sigma=((0.04, 0.08),),
        blur_prob=0.4,
        grey_prob=1.0,
        crf=((32.0, 40.0),),
        light_gain=((0.35, 0.6),),
        light_step_prob=0.2,
        tint_strength=0.0,
        occluder_prob=0.3,
        second_person_prob=0.3,
        extra_furniture=(2, 5),
        exposure_prob=0.8,
        max_exposure_s=0.12,
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


class PresetError(ValueError):
    """A preset file that cannot be used: unreadable, not JSON, an unknown field, or a value
    outside what the renderer can draw. The message names the file and the field."""


def get_preset(name: str) -> Preset:
    """The built-in preset called ``name``, or the preset in the JSON file ``name`` (a path
    ending in ``.json``); ``KeyError`` listing the valid names otherwise."""
    if name in PRESETS:
        return PRESETS[name]
    if name.endswith(".json"):
        return load_preset_file(name)
    raise KeyError(f"unknown preset {name!r}; known: {sorted(PRESETS)} or a *.json preset file")


def preset_arg(value: str) -> str:
    """argparse ``type`` for a preset option: a built-in name or a usable ``*.json`` preset
    file, checked when the arguments are parsed (exit 2 with the reason), not mid-render."""
    try:
        get_preset(value)
    except KeyError as exc:
        raise argparse.ArgumentTypeError(str(exc.args[0])) from None
    except PresetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def preset_json(preset: Preset) -> dict[str, Any]:
    """``preset`` as the JSON object a preset file holds (every field, intervals as lists)."""
    out: dict[str, Any] = json.loads(json.dumps(asdict(preset)))  # tuples -> lists
    return out


# Bounds per field: (low, high) for every number in it. Ranges are lists of [lo, hi].
_RANGE_BOUNDS: dict[str, tuple[float, float]] = {
    "cam_height": (0.3, 10.0),  # metres above the floor; the room is made taller to fit
    "hfov_deg": (10.0, 150.0),
    "subject_frac": (0.05, 1.5),
    "noise_sigma": (0.0, 0.5),
    "crf": (0.0, 51.0),  # H.264's quantiser scale
    "light_gain": (0.05, 4.0),
}
_PROBS = ("blur_prob", "grey_prob", "light_step_prob", "occluder_prob", "second_person_prob",
          "exposure_prob")  # fmt: skip
_NONNEG = {"cam_roll_deg": 45.0, "aim_jitter_deg": 45.0, "tint_strength": 1.0,
           "max_exposure_s": 1.0}  # fmt: skip
_NAMES = {"palettes": PALETTES, "wall_textures": WALL_TEXTURES, "floor_textures": FLOOR_TEXTURES}


def load_preset_file(path: str | Path) -> Preset:
    """The preset a JSON file describes: ``{"name": ..., "base": "train", <field>: <value>,
    ...}``. Fields not given keep the base preset's values (``base`` defaults to ``train``);
    ranges are lists of ``[lo, hi]`` intervals, drawn in proportion to their lengths.

    ``name`` is required, must not be a built-in preset's name, and is mixed into every clip's
    seed (``models.synth.clip.preset_entropy``), so the same file renders the same clips from
    any path. Raises ``PresetError`` for anything the renderer could not draw from."""
    where = str(path)
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PresetError(f"preset file {where}: cannot read it ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PresetError(f"preset file {where}: not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise PresetError(f"preset file {where}: must hold a JSON object, got {type(raw).__name__}")
    raw = dict(raw)
    name, base = raw.pop("name", None), raw.pop("base", "train")
    if not isinstance(name, str) or not name.strip():
        raise PresetError(f"preset file {where}: 'name' must be a non-empty string")
    if name in PRESETS:
        raise PresetError(f"preset file {where}: 'name' {name!r} is a built-in preset's; "
                          "pick another so its clips are not mistaken for the built-in's")  # fmt: skip
    if base not in PRESETS:
        raise PresetError(f"preset file {where}: 'base' must be one of {sorted(PRESETS)}, "
                          f"got {base!r}")  # fmt: skip
    known = {f.name for f in fields(Preset)} - {"name"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise PresetError(f"preset file {where}: unknown field(s) {unknown}; "
                          f"known: {sorted(known | {'base'})}")  # fmt: skip
    changes = {k: _field(where, k, v) for k, v in raw.items()}
    return replace(PRESETS[base], name=name, **changes)


def _field(where: str, key: str, value: Any) -> Any:
    """One preset-file field, checked and converted to the ``Preset``'s type."""

    def bad(why: str) -> PresetError:
        return PresetError(f"preset file {where}: {key!r} {why}, got {value!r}")

    def number(x: Any, lo: float, hi: float) -> float:
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            raise bad("must hold finite numbers")
        if not lo <= x <= hi:
            raise bad(f"must lie within [{lo:g}, {hi:g}]")
        return float(x)

    if key in _RANGE_BOUNDS:
        lo, hi = _RANGE_BOUNDS[key]
        if not isinstance(value, list) or not value:
            raise bad("must be a non-empty list of [lo, hi] intervals")
        out = []
        for pair in value:
            if not isinstance(pair, list) or len(pair) != 2:
                raise bad("must be a list of [lo, hi] intervals")
            a, b = number(pair[0], lo, hi), number(pair[1], lo, hi)
            if a > b or (len(value) > 1 and a == b):
                raise bad("needs lo < hi in each interval (lo == hi only for a single fixed value)")
            out.append((a, b))
        return tuple(out)
    if key in _PROBS:
        return number(value, 0.0, 1.0)
    if key in _NONNEG:
        return number(value, 0.0, _NONNEG[key])
    if key in _NAMES:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise bad("must be a non-empty list of names")
        unknown = sorted(set(value) - set(_NAMES[key]))
        if unknown:
            raise bad(f"names {unknown} the renderer does not know (known: {list(_NAMES[key])})")
        return tuple(value)
    # extra_furniture: [min, max] pieces besides the main one
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            or not 0 <= value[0] <= value[1] <= 8):  # fmt: skip
        raise bad("must be [min, max] whole numbers with 0 <= min <= max <= 8")
    return (int(value[0]), int(value[1]))


def draw(rng: np.random.Generator, rng_range: Range) -> float:
    """A uniform draw from a union of intervals (each picked in proportion to its length)."""
    lengths = np.array([hi - lo for lo, hi in rng_range])
    i = int(rng.choice(len(rng_range), p=lengths / lengths.sum())) if len(rng_range) > 1 else 0
    lo, hi = rng_range[i]
    return float(rng.uniform(lo, hi))
