"""One synthetic clip: an action performed by a random person in a random room.

Inputs: a seed, a preset (``train``, ``heldout``, ``demo`` or a ``*.json`` preset file,
``models.synth.presets``), optionally an action name, frame size, frame rate and duration.
Outputs: ``render_clip`` gives RGB uint8 frames ``[T, H, W, 3]`` and a ``ClipMeta`` (label,
action, fall descent times, seed, preset name, the codec quality to encode with);
``simulate_clip`` gives the 3D motion alone (for tests and analysis); ``clip_posture`` gives
the main person's true posture per frame (``POSTURE_NAMES``), ground truth for diagnostics
such as the posture ceiling in docs/MODEL_EXPERIMENTS.md (no model is trained on it).

Guarantees: everything is drawn from one ``numpy.random.Generator`` seeded with the seed
and the preset name, in a fixed order, so the same arguments give byte-identical frames
(and the same seed under two presets gives unrelated clips); fall clips have their whole
descent inside the clip (for clips of 6 s or more; the default draws 6-8 s). Failure modes:
``KeyError`` for an unknown preset or action; ``ValueError`` for a negative seed or a
non-positive size, rate or duration; ``PresetError`` (a ``ValueError``) for a bad preset file.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from models.synth.actions import Plan, choose_action, plan_action
from models.synth.background import Background, render_background
from models.synth.motion import STANDING
from models.synth.presets import Preset, draw, get_preset
from models.synth.render import draw_person, draw_shadow, finish_frame, make_camera_fx
from models.synth.scene import Scene, build_scene
from models.synth.skeleton import Figure, forward_kinematics, joint_index, random_figure
from models.synth.timeline import Timeline

__all__ = [
    "POSTURE_NAMES",
    "Actor",
    "ClipMeta",
    "ClipMotion",
    "ClipTruth",
    "Walker",
    "clip_posture",
    "draw_exposure",
    "open_joints",
    "posture",
    "preset_entropy",
    "render_clip",
    "render_people",
    "simulate_clip",
]

FloatArray = NDArray[np.float64]
F32 = NDArray[np.float32]
_PELVIS = joint_index("pelvis")
_NECK = joint_index("neck")
_HEAD_TOP = joint_index("head_top")
_HEAD = joint_index("head")
# Per frame: head-top height above the floor over the person's standing height (about 1
# standing, 0.5-0.7 sitting or bending, under 0.3 lying), and how upright the trunk is
# (cosine of the pelvis-to-neck line's angle to vertical: 1 upright, 0 horizontal).
POSTURE_NAMES = ("head_height", "trunk_upright")


@dataclass(frozen=True)
class ClipMeta:
    """Ground truth and provenance of one clip. Fall times are seconds from clip start."""

    label: str
    action: str
    fall_start_s: float | None
    fall_end_s: float | None
    seed: int
    preset: str
    duration_s: float
    fps: float
    crf: int


@dataclass
class ClipTruth:
    """Per-frame truth about the main person, filled by ``render_clip(truth=...)``.

    ``masks``: ``[T, H, W]`` bool, pixels where the person is visible (occluders and the
    other person cut it); ``head_uv``: ``[T, 2]`` float32 image position (x, y in pixels)
    of the head centre, visible or not, possibly outside the frame; ``joints_uv`` the same
    for every joint.
    """

    masks: NDArray[np.bool_]
    head_uv: F32
    joints_uv: F32  # [T, J, 2]: every joint's image position (``skeleton.JOINTS`` order)

    @classmethod
    def empty(cls) -> ClipTruth:
        return cls(np.zeros((0, 0, 0), dtype=bool), np.zeros((0, 2), dtype=np.float32),
                   np.zeros((0, 0, 2), dtype=np.float32))  # fmt: skip


@dataclass(frozen=True)
class Walker:
    """A person drawn only while ``visible`` (a passer-by), with joints per frame."""

    fig: Figure
    joints: FloatArray
    visible: NDArray[np.bool_]
    timeline: Timeline


@dataclass(frozen=True)
class Actor:
    """A person to render: joints ``[T, J, 3]`` at each frame time and, for motion blur,
    at shutter opening (``joints_open``, ``None`` = sharp)."""

    fig: Figure
    joints: FloatArray
    visible: NDArray[np.bool_]
    joints_open: FloatArray | None = None


@dataclass(frozen=True)
class ClipMotion:
    """The 3D content of a clip before rendering."""

    plan: Plan
    fig: Figure
    times: FloatArray
    joints: FloatArray  # [T, J, 3]
    duration_s: float
    others: tuple[Walker, ...]


def preset_entropy(seed: int, preset: str) -> list[int]:
    """Generator seed material: the clip seed mixed with the preset's name.

    Mixing in the preset means the same seed under ``train`` and ``heldout`` gives
    unrelated motion too (not the same person doing the same thing in another room).
    A preset file mixes in the ``name`` inside it, not its path.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return [int(seed), zlib.crc32(get_preset(preset).name.encode("utf-8"))]


def _check(width: int, height: int, fps: float, duration_s: float | None) -> None:
    if width <= 0 or height <= 0 or not fps > 0 or (duration_s is not None and not duration_s > 0):
        raise ValueError(f"bad clip geometry: {width}x{height} @ {fps} fps, {duration_s} s")


def _passer_by(rng: np.random.Generator, focus: FloatArray, times: FloatArray) -> Walker:
    fig = random_figure(rng, palette=str(rng.choice(["muted", "vivid"])))
    ang = rng.uniform(-math.pi, math.pi)
    lateral = rng.uniform(0.9, 2.2) * float(rng.choice([-1.0, 1.0]))
    nx, ny = -math.sin(ang), math.cos(ang)
    cx, cy = focus[0] + nx * lateral, focus[1] + ny * lateral
    half = rng.uniform(1.8, 2.6)
    speed = rng.uniform(0.8, 1.4)
    walk_t = 2 * half / speed
    t0 = rng.uniform(-walk_t * 0.5, max(0.0, times[-1] - walk_t * 0.5))
    tl = Timeline(start={**STANDING, "x": cx - math.cos(ang) * half, "y": cy - math.sin(ang) * half,
                         "yaw": ang})  # fmt: skip
    tl.hold(max(0.0, t0))
    tl.gait(t0 - 0.5, t0 + walk_t + 0.5, freq=speed / (1.45 * (fig.thigh + fig.shin)), amp=1.0)
    tl.move(walk_t, "linear", x=cx + math.cos(ang) * half, y=cy + math.sin(ang) * half)
    tl.idle(rng, t0, t0 + walk_t, amp=0.5)
    joints = forward_kinematics(fig, tl.evaluate(times))
    return Walker(fig, joints, (times >= t0) & (times <= t0 + walk_t), tl)


def simulate_clip(
    seed: int,
    *,
    preset: str = "train",
    action: str | None = None,
    fps: float = 8.0,
    duration_s: float | None = None,
) -> tuple[ClipMotion, np.random.Generator]:
    """The clip's motion (and the generator, positioned to draw the scene next)."""
    p = get_preset(preset)
    rng = np.random.default_rng(preset_entropy(seed, preset))
    duration = float(duration_s) if duration_s is not None else float(rng.uniform(6.0, 8.0))
    name = action if action is not None else choose_action(rng)
    fig = random_figure(rng, palette=str(rng.choice(p.palettes)))
    plan = plan_action(name, rng, fig, duration)
    n = max(1, round(duration * fps))
    times = np.arange(n, dtype=np.float64) / fps
    joints = forward_kinematics(fig, plan.timeline.evaluate(times))
    others: tuple[Walker, ...] = ()
    if rng.uniform() < p.second_person_prob:
        others = (_passer_by(rng, joints[:, _PELVIS, :2].mean(axis=0), times),)
    return ClipMotion(plan, fig, times, joints, duration, others), rng


def posture(motion: ClipMotion) -> F32:
    """The main person's posture per frame, ``[T, len(POSTURE_NAMES)]`` float32."""
    j = motion.joints
    head = j[:, _HEAD_TOP, 2] / motion.fig.height
    trunk = j[:, _NECK] - j[:, _PELVIS]
    upright = trunk[:, 2] / np.maximum(np.linalg.norm(trunk, axis=1), 1e-6)
    out: F32 = np.stack([head, upright], axis=1).astype(np.float32)
    return out


def clip_posture(
    seed: int, *, preset: str = "train", fps: float = 8.0, duration_s: float | None = None
) -> F32:
    """``posture`` of the clip ``render_clip`` draws with the same arguments, one row per frame.

    Re-simulates the motion only (no rendering): the motion is drawn first from the clip's
    generator, so it is the same motion whatever is rendered afterwards.
    """
    motion, _ = simulate_clip(seed, preset=preset, fps=fps, duration_s=duration_s)
    return posture(motion)


def _compose(
    scene: Scene, bg: Background, people: list[Actor], k: int, shadow: float, *, open_: bool,
    mask_out: NDArray[np.bool_] | None = None,
) -> F32:  # fmt: skip
    """One frame of the scene; with ``mask_out``, also where ``people[0]`` is visible.

    The mask is read off the z-buffer (pixels the first person won and nobody nearer
    took back), so it costs two buffer copies and no random draw.
    """
    img = bg.colour.copy()
    zbuf = bg.depth.copy()
    cam = scene.camera
    poses = [(i, a.fig, a.joints_open if open_ and a.joints_open is not None else a.joints)
             for i, a in enumerate(people) if a.visible[k]]  # fmt: skip
    for _, _, joints in poses:
        draw_shadow(img, bg, cam, joints[k], shadow)
    owner = np.full(zbuf.shape, -1, dtype=np.int8) if mask_out is not None else None
    for i, fig, joints in poses:
        before = zbuf.copy() if owner is not None else None
        draw_person(img, zbuf, cam, fig, joints[k], scene.light_dir, scene.ambient, scene.diffuse)
        if owner is not None and before is not None:
            owner[zbuf < before] = i
    if mask_out is not None and owner is not None:
        mask_out[:] = owner == 0
    return img


def _moves(scene: Scene, people: list[Actor], k: int) -> bool:
    """Whether a visible person moves over 2 px during the exposure of frame ``k``.

    Smaller smears are invisible after the codec; skipping them halves the cost of blur.
    """
    for a in people:
        if a.joints_open is not None and a.visible[k]:
            shift = (
                scene.camera.project(a.joints[k])[:, :2]
                - scene.camera.project(a.joints_open[k])[:, :2]
            )
            if float(np.abs(shift).max()) > 2.0:
                return True
    return False


def render_people(
    scene: Scene,
    rng: np.random.Generator,
    preset: Preset,
    people: list[Actor],
    n_frames: int,
    fps: float,
    masks_out: NDArray[np.bool_] | None = None,
) -> NDArray[np.uint8]:
    """Render ``n_frames`` frames of ``people`` into the scene, camera effects included.

    Motion blur: when a person has ``joints_open`` and moves, the frame is the mean of the
    scene at shutter opening and at the frame time (two samples of the exposure).
    ``masks_out`` (``[T, H, W]`` bool), when given, receives where ``people[0]`` is
    visible at each frame time; the frames are the same with or without it.
    """
    cam = scene.camera
    bg = render_background(scene, rng)
    fx = make_camera_fx(rng, preset, n_frames, fps, cam.width, cam.height)
    shadow = float(rng.uniform(0.5, 1.0))
    frames = np.empty((n_frames, cam.height, cam.width, 3), dtype=np.uint8)
    for k in range(n_frames):
        mask = masks_out[k] if masks_out is not None else None
        img = _compose(scene, bg, people, k, shadow, open_=False, mask_out=mask)
        if _moves(scene, people, k):
            img += _compose(scene, bg, people, k, shadow, open_=True)
            img *= 0.5
        frames[k] = finish_frame(img, fx, k, rng)
    return frames


def draw_exposure(rng: np.random.Generator, preset: Preset) -> float:
    """Shutter time in seconds for motion blur; 0.0 for a sharp clip."""
    if rng.uniform() >= preset.exposure_prob:
        return 0.0
    return float(rng.uniform(0.01, preset.max_exposure_s))


def open_joints(
    fig: Figure, timeline: Timeline, times: FloatArray, exposure_s: float
) -> FloatArray | None:
    """Joints at shutter opening (``exposure_s`` before each frame time), ``None`` if sharp."""
    if exposure_s <= 0.0:
        return None
    return forward_kinematics(fig, timeline.evaluate(times - exposure_s))


def render_clip(
    seed: int,
    *,
    preset: str = "train",
    action: str | None = None,
    width: int = 160,
    height: int = 120,
    fps: float = 8.0,
    duration_s: float | None = None,
    truth: ClipTruth | None = None,
) -> tuple[NDArray[np.uint8], ClipMeta]:
    """Render one clip: frames ``[T, H, W, 3]`` uint8 and its ``ClipMeta``.

    ``truth``, when given (``ClipTruth.empty()``), is filled with the main person's
    per-frame silhouette and head position: training-only supervision (no runtime
    model reads it); the frames are byte-identical with or without it.
    """
    _check(width, height, fps, duration_s)
    motion, rng = simulate_clip(seed, preset=preset, action=action, fps=fps, duration_s=duration_s)
    p = get_preset(preset)
    path = motion.joints[:, _PELVIS, :2]
    # The last row keeps where the clip ends (e.g. the fallen person) in every sight-line test.
    all_paths = np.vstack(
        [path] + [w.joints[w.visible, _PELVIS, :2] for w in motion.others] + [path[-1:]]
    )
    fall = motion.plan.fall
    fall_xy = (float(path[-1, 0]), float(path[-1, 1])) if fall is not None else None
    scene = build_scene(rng, p, motion.plan.props, all_paths, width, height, fall_xy=fall_xy)
    crf = round(draw(rng, p.crf))
    n = motion.times.shape[0]
    # A separate stream, so the shutter does not shift any other random draw of the clip.
    exposure = draw_exposure(np.random.default_rng([*preset_entropy(seed, preset), 1]), p)
    people = [
        Actor(motion.fig, motion.joints, np.ones(n, dtype=bool),
              open_joints(motion.fig, motion.plan.timeline, motion.times, exposure))
    ]  # fmt: skip
    people += [
        Actor(w.fig, w.joints, w.visible, open_joints(w.fig, w.timeline, motion.times, exposure))
        for w in motion.others
    ]
    masks = np.zeros((n, height, width), dtype=bool) if truth is not None else None
    frames = render_people(scene, rng, p, people, n, fps, masks_out=masks)
    if truth is not None and masks is not None:
        truth.masks = masks
        uvz = scene.camera.project(motion.joints.reshape(-1, 3)).reshape(*motion.joints.shape)
        truth.joints_uv = uvz[..., :2].astype(np.float32)
        truth.head_uv = truth.joints_uv[:, _HEAD]
    meta = ClipMeta(
        label=motion.plan.label,
        action=motion.plan.action,
        fall_start_s=None if fall is None else round(fall[0], 4),
        fall_end_s=None if fall is None else round(fall[1], 4),
        seed=int(seed),
        preset=p.name,
        duration_s=n / fps,
        fps=fps,
        crf=crf,
    )
    return frames, meta
