"""Procedural fall-video generator: articulated people, rooms, cameras, codecs.

Public API (see each module's docstring for guarantees):
- ``render_clip(seed, *, preset, action, width, height, fps, duration_s)`` -> frames, ``ClipMeta``
- ``render_sequence(seed, *, duration_s, n_falls, preset="demo")`` -> frames, ``[FallTruth]``
- ``write_dataset(out, n, seed, preset, workers)`` -> clip folder (``clips/*.mp4`` + labels.csv)
- ``iter_clip_windows`` / ``render_windows`` -> canonical windows in memory
- ``PRESETS`` (``train``, ``heldout``, ``demo``), ``ACTIONS``, ``FALL_ACTIONS``

Importing this package does no work and starts no processes.
"""

from models.synth.actions import ACTION_WEIGHTS, ACTIONS, FALL_ACTIONS
from models.synth.clip import ClipMeta, render_clip, simulate_clip
from models.synth.codec import SynthCodecError, codec_round_trip, encode_mp4
from models.synth.dataset import (
    WindowSet,
    clip_seed,
    iter_clip_windows,
    render_windows,
    write_dataset,
)
from models.synth.presets import PRESETS
from models.synth.sequence import FallTruth, render_sequence

__all__ = [
    "ACTIONS",
    "ACTION_WEIGHTS",
    "FALL_ACTIONS",
    "PRESETS",
    "ClipMeta",
    "FallTruth",
    "SynthCodecError",
    "WindowSet",
    "clip_seed",
    "codec_round_trip",
    "encode_mp4",
    "iter_clip_windows",
    "render_clip",
    "render_sequence",
    "render_windows",
    "simulate_clip",
    "write_dataset",
]
