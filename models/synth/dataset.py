"""Synthetic datasets: clip folders on disk, or canonical windows streamed in memory.

Inputs: number of clips, a base seed, a preset (``train``, ``heldout``, ``demo``) and a
worker count. Clip ``i`` is rendered from ``clip_seed(seed, start_index + i)``.
Outputs:
- ``write_dataset``: ``out/clips/NNNNN.mp4`` (H.264, yuv420p, per-clip random CRF) and
  ``out/labels.csv`` with ``file,label,action,fall_start_s,fall_end_s`` (a clip folder
  ``models.runtime.clips.ClipFolder`` reads).
- ``iter_clip_windows``: per clip, in order, ``(ClipMeta, [(start_s, window, label)])``
  where windows are ``[16, H, W, 3]`` uint8 read-only views of the clip's frames; only a
  few clips are in flight at a time.
- ``render_windows``: everything stacked in a ``WindowSet`` (about 0.92 MB per 160x120
  window, ~6 windows per clip: keep ``n_clips`` modest or use the iterator).

Guarantees: the same arguments give the same clips, windows and labels whatever the
worker count; by default windows pass through the same H.264 encode/decode as the files
on disk, so training sees codec artefacts. Failure modes: ``ValueError`` for bad counts;
``SynthCodecError`` if encoding fails; ``OSError`` if ``out`` is not writable.
"""

from __future__ import annotations

import csv
import logging
import multiprocessing as mp
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from models.runtime.clips import read_clip
from models.runtime.windows import WINDOW_S, cut_windows, window_label
from models.synth.clip import ClipMeta, render_clip
from models.synth.codec import encode_mp4

__all__ = [
    "LABELS_COLUMNS",
    "WindowSet",
    "clip_seed",
    "iter_clip_windows",
    "render_windows",
    "write_dataset",
]

log = logging.getLogger(__name__)

LABELS_COLUMNS = ("file", "label", "action", "fall_start_s", "fall_end_s")
ClipWindows = list[tuple[float, NDArray[np.uint8], int]]
_T = TypeVar("_T")


def clip_seed(seed: int, index: int) -> int:
    """The render seed of clip ``index`` of a dataset with base ``seed`` (64-bit)."""
    words = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 32) | int(words[1])


@dataclass(frozen=True)
class _Job:
    seed: int
    preset: str
    width: int
    height: int
    fps: float
    codec: bool
    duration_s: float | None = None


def _render_encoded(job: _Job) -> tuple[ClipMeta, bytes]:
    frames, meta = render_clip(job.seed, preset=job.preset, width=job.width, height=job.height,
                               fps=job.fps, duration_s=job.duration_s)  # fmt: skip
    return meta, encode_mp4(frames, job.fps, meta.crf)


def _render_frames(job: _Job) -> tuple[ClipMeta, NDArray[np.uint8], float]:
    """Worker: one clip's frames (after the codec round trip when asked) and their rate."""
    frames, meta = render_clip(job.seed, preset=job.preset, width=job.width, height=job.height,
                               fps=job.fps, duration_s=job.duration_s)  # fmt: skip
    if job.codec:
        frames, fps = read_clip(encode_mp4(frames, job.fps, meta.crf))
        return meta, frames, fps
    return meta, frames, job.fps


def _cut(meta: ClipMeta, frames: NDArray[np.uint8], fps: float) -> ClipWindows:
    # Windows are cut in the consumer's process: each frame crosses the process boundary
    # once instead of twice (windows overlap by half).
    frames.setflags(write=False)
    out: ClipWindows = []
    for start_s, window in cut_windows(frames, fps):
        label = window_label(start_s, start_s + WINDOW_S, meta.fall_start_s, meta.fall_end_s)
        out.append((start_s, window, label))
    return out


def _map_ordered(fn: Callable[[_Job], _T], jobs: list[_Job], workers: int) -> Iterator[_T]:
    """Map in clip order; with workers > 1 a fork pool keeps at most a few clips in flight."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield fn(job)
        return
    ctx = mp.get_context("fork")
    with ctx.Pool(processes=workers) as pool:
        yield from pool.imap(fn, jobs, chunksize=1)


def _jobs(n: int, seed: int, preset: str, start_index: int, width: int, height: int,
          fps: float, codec: bool, duration_s: float | None) -> list[_Job]:  # fmt: skip
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [_Job(clip_seed(seed, start_index + i), preset, width, height, fps, codec, duration_s)
            for i in range(n)]  # fmt: skip


def write_dataset(
    out: str | Path,
    n: int,
    seed: int,
    preset: str = "train",
    workers: int = 1,
    *,
    start_index: int = 0,
    width: int = 160,
    height: int = 120,
    fps: float = 8.0,
    duration_s: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[ClipMeta]:
    """Write ``n`` clips and ``labels.csv`` under ``out``; returns the clips' metadata."""
    root = Path(out)
    (root / "clips").mkdir(parents=True, exist_ok=True)
    jobs = _jobs(n, seed, preset, start_index, width, height, fps, True, duration_s)
    metas: list[ClipMeta] = []
    rows: list[list[str]] = []
    for i, (meta, data) in enumerate(_map_ordered(_render_encoded, jobs, workers)):
        name = f"clips/{start_index + i:05d}.mp4"
        (root / name).write_bytes(data)
        metas.append(meta)
        rows.append([name, meta.label, meta.action,
                     "" if meta.fall_start_s is None else f"{meta.fall_start_s:.4f}",
                     "" if meta.fall_end_s is None else f"{meta.fall_end_s:.4f}"])  # fmt: skip
        if progress is not None:
            progress(i + 1, n)
    tmp = root / "labels.csv.tmp"
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(LABELS_COLUMNS)
        writer.writerows(rows)
    os.replace(tmp, root / "labels.csv")
    log.info("synth_dataset_written", extra={"out": str(root), "clips": n, "preset": preset})
    return metas


def iter_clip_windows(
    n_clips: int,
    seed: int,
    preset: str = "train",
    workers: int = 1,
    *,
    codec: bool = True,
    start_index: int = 0,
    width: int = 160,
    height: int = 120,
    duration_s: float | None = None,
) -> Iterator[tuple[ClipMeta, ClipWindows]]:
    """Stream ``(ClipMeta, [(start_s, window [16,H,W,3], window_label)])`` clip by clip."""
    jobs = _jobs(n_clips, seed, preset, start_index, width, height, 8.0, codec, duration_s)
    for meta, frames, fps in _map_ordered(_render_frames, jobs, workers):
        yield meta, _cut(meta, frames, fps)


@dataclass(frozen=True)
class WindowSet:
    """Windows of many clips. ``clip_index`` points into ``clip_labels`` and ``metas``."""

    windows: NDArray[np.uint8]  # [N, 16, H, W, 3]
    labels: NDArray[np.int64]  # [N] window labels (0/1)
    clip_index: NDArray[np.int64]  # [N]
    start_s: NDArray[np.float64]  # [N]
    clip_labels: NDArray[np.int64]  # [n_clips] 1 for fall clips
    metas: tuple[ClipMeta, ...]


def render_windows(
    n_clips: int,
    seed: int,
    preset: str = "train",
    workers: int = 1,
    *,
    codec: bool = True,
    start_index: int = 0,
    width: int = 160,
    height: int = 120,
    duration_s: float | None = None,
) -> WindowSet:
    """All windows of ``n_clips`` clips as arrays (no disk)."""
    wins: list[NDArray[np.uint8]] = []
    labels: list[int] = []
    clip_idx: list[int] = []
    starts: list[float] = []
    metas: list[ClipMeta] = []
    for i, (meta, items) in enumerate(iter_clip_windows(
            n_clips, seed, preset, workers, codec=codec, start_index=start_index,
            width=width, height=height, duration_s=duration_s)):  # fmt: skip
        metas.append(meta)
        for start_s, window, label in items:
            wins.append(window)
            labels.append(label)
            clip_idx.append(i)
            starts.append(start_s)
    windows = np.stack(wins) if wins else np.zeros((0, 16, height, width, 3), dtype=np.uint8)
    return WindowSet(
        windows=windows,
        labels=np.asarray(labels, dtype=np.int64),
        clip_index=np.asarray(clip_idx, dtype=np.int64),
        start_s=np.asarray(starts, dtype=np.float64),
        clip_labels=np.asarray([int(m.label == "fall") for m in metas], dtype=np.int64),
        metas=tuple(metas),
    )
