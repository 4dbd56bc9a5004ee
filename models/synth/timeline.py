"""Keyframed pose timelines: how actions describe motion over time.

Inputs: a starting pose (values for ``skeleton.PARAMS``) and a sequence of moves
("over dt seconds, ease these parameters to these values"), gait segments (walking) and
idle-noise segments. Outputs: a pose track ``[T, N_PARAMS]`` sampled at given times,
ready for ``skeleton.forward_kinematics``.

Guarantees: deterministic (noise is drawn from the caller's generator when the segment is
added, not at evaluation); values hold after their last key; easing functions map
[0, 1] to [0, 1] monotonically. Failure modes: ``KeyError`` on an unknown parameter name,
``ValueError`` on a negative duration.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from models.synth.skeleton import N_PARAMS, PARAMS, param_index

__all__ = ["EASES", "Timeline"]

FloatArray = NDArray[np.float64]


def _smooth(u: FloatArray) -> FloatArray:
    return u * u * (3.0 - 2.0 * u)


EASES: dict[str, Callable[[FloatArray], FloatArray]] = {
    "linear": lambda u: u,
    "smooth": _smooth,
    # Free fall / toppling: starts slow, accelerates (gravity), hits at full speed.
    "gravity": lambda u: u**2.2,
    "in2": lambda u: u * u,
    "out2": lambda u: 1.0 - (1.0 - u) ** 2,
    "out3": lambda u: 1.0 - (1.0 - u) ** 3,
}


@dataclass
class _Gait:
    t0: float
    t1: float
    freq: float
    amp: float
    phase0: float


@dataclass
class _Idle:
    t0: float
    t1: float
    amp: float
    freqs: FloatArray
    phases: FloatArray
    weights: FloatArray  # [N_PARAMS, k]


@dataclass
class Timeline:
    """Per-parameter keyframes plus gait and idle overlays, advanced by actions."""

    start: dict[str, float]
    t: float = 0.0
    keys: dict[str, list[tuple[float, float, str]]] = field(default_factory=dict)
    gaits: list[_Gait] = field(default_factory=list)
    idles: list[_Idle] = field(default_factory=list)
    breath_amp: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in PARAMS:
            self.keys[name] = [(0.0, float(self.start.get(name, 0.0)), "linear")]

    def value(self, name: str) -> float:
        """The parameter's last keyed value (where it rests once all moves finish)."""
        return self.keys[name][-1][1]

    def move(
        self,
        dt: float,
        ease: str = "smooth",
        *,
        delay: float = 0.0,
        advance: bool = True,
        **targets: float,
    ) -> None:
        """Ease ``targets`` from their current values over ``[t + delay, t + delay + dt]``."""
        self.move_to(dt, targets, ease, delay=delay, advance=advance)

    def move_to(
        self,
        dt: float,
        targets: Mapping[str, float],
        ease: str = "smooth",
        *,
        delay: float = 0.0,
        advance: bool = True,
    ) -> None:
        """``move`` with the targets as a mapping (for computed parameter names)."""
        if dt < 0 or delay < 0:
            raise ValueError("durations must be non-negative")
        t0 = self.t + delay
        t1 = t0 + max(dt, 1e-3)
        for name, target in targets.items():
            keys = self.keys[name]
            last_t, last_v, _ = keys[-1]
            if last_t < t0:
                keys.append((t0, last_v, "linear"))
            elif last_t > t0:
                # Overlapping move on the same parameter: start from where it will be.
                keys.append((max(t1, last_t + 1e-3), float(target), ease))
                continue
            keys.append((t1, float(target), ease))
        if advance:
            self.t = t1

    def hold(self, dt: float) -> None:
        """Let time pass with every parameter at rest (overlays still apply)."""
        if dt < 0:
            raise ValueError("durations must be non-negative")
        self.t += dt

    def gait(self, t0: float, t1: float, freq: float, amp: float, phase0: float = 0.0) -> None:
        """Walking limb swing between t0 and t1 (ramps in and out over ~0.35 s)."""
        self.gaits.append(_Gait(t0, t1, freq, amp, phase0))

    def idle(self, rng: np.random.Generator, t0: float, t1: float, amp: float) -> None:
        """Small random low-frequency motion of trunk, head and arms (alive, not frozen)."""
        k = 3
        weights = np.zeros((N_PARAMS, k))
        for name, scale in (
            ("trunk_flex", 0.05), ("trunk_lat", 0.04), ("trunk_twist", 0.08),
            ("head_flex", 0.15), ("head_turn", 0.35), ("sh_l", 0.2), ("sh_r", 0.2),
            ("el_l", 0.3), ("el_r", 0.3), ("sha_l", 0.08), ("sha_r", 0.08),
            ("yaw", 0.06),
        ):  # fmt: skip
            weights[param_index(name)] = rng.normal(0, scale, k)
        self.idles.append(
            _Idle(t0, t1, amp, rng.uniform(0.1, 0.7, k), rng.uniform(0, 2 * math.pi, k), weights)
        )

    def evaluate(self, times: FloatArray) -> FloatArray:
        """Pose track ``[len(times), N_PARAMS]``."""
        out = np.zeros((times.shape[0], N_PARAMS))
        for name in PARAMS:
            out[:, param_index(name)] = _eval_keys(self.keys[name], times)
        for g in self.gaits:
            _add_gait(out, times, g)
        for idle in self.idles:
            env = _envelope(times, idle.t0, idle.t1, 0.5) * idle.amp
            waves = np.sin(
                times[:, None] * 2 * math.pi * idle.freqs[None, :] + idle.phases[None, :]
            )
            out += env[:, None] * (waves @ idle.weights.T)
        return out


def _eval_keys(keys: list[tuple[float, float, str]], times: FloatArray) -> FloatArray:
    kt = np.array([k[0] for k in keys])
    kv = np.array([k[1] for k in keys])
    out = np.full(times.shape, kv[-1])
    seg = np.searchsorted(kt, times, side="right")  # index of the next key
    for i in range(1, len(keys)):
        mask = seg == i
        if not np.any(mask):
            continue
        span = max(kt[i] - kt[i - 1], 1e-9)
        u = np.clip((times[mask] - kt[i - 1]) / span, 0.0, 1.0)
        out[mask] = kv[i - 1] + (kv[i] - kv[i - 1]) * EASES[keys[i][2]](u)
    out[seg == 0] = kv[0]
    return out


def _envelope(times: FloatArray, t0: float, t1: float, ramp: float) -> FloatArray:
    up = np.clip((times - t0) / ramp, 0.0, 1.0)
    down = np.clip((t1 - times) / ramp, 0.0, 1.0)
    return _smooth(np.minimum(up, down))


def _add_gait(out: FloatArray, times: FloatArray, g: _Gait) -> None:
    env = _envelope(times, g.t0, g.t1, 0.35) * g.amp
    phi = 2 * math.pi * g.freq * (times - g.t0) + g.phase0
    s = np.sin(phi)

    def add(name: str, vals: FloatArray) -> None:
        out[:, param_index(name)] += vals

    add("hip_l", 0.42 * env * s)
    add("hip_r", -0.42 * env * s)
    add("knee_l", env * (0.1 + 0.75 * np.maximum(0.0, np.cos(phi + 0.4)) ** 2))
    add("knee_r", env * (0.1 + 0.75 * np.maximum(0.0, np.cos(phi + 0.4 + math.pi)) ** 2))
    add("sh_l", -0.35 * env * s)
    add("sh_r", 0.35 * env * s)
    add("el_l", env * (0.25 - 0.15 * s))
    add("el_r", env * (0.25 + 0.15 * s))
    add("trunk_twist", 0.08 * env * s)
    add("trunk_lat", 0.03 * env * np.sin(phi + 0.5))
    add("trunk_flex", 0.05 * env)
