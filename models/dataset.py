"""Model-ready training/pool data from the synthetic generator or a clip folder.

Inputs: clip seeds + a preset (synthetic, `models.synth`) or a labeled clip
folder (`models.clips`), and the input specs of the models to feed.
Outputs:
- `synth_windowsets` / `folder_windowsets`: per role, a `train.WindowSet`-like
  bundle (uint8 `[N,C,T,H,W]` inputs at that model's spec, window labels from
  `models.windows.window_label`, clip ids, clip labels);
- `synth_pool_windows` / `folder_pool_windows`: UNLABELED canonical windows
  (uint8 `[16,H,W,3]`) for DMD — labels are dropped inside the generator, never
  returned.
Guarantees: clips are rendered in `workers` processes (spawn context, so it is
safe after torch was imported); the same seeds give the same arrays; synthetic
clips go through an in-memory H.264 round trip at the clip's own `crf`
(`models.synth.codec_round_trip`, as `write_dataset` stores them) so training sees codec artefacts like held-out
files; `keep_negative` subsamples no-fall windows per role (seeded) to bound
memory for large inputs; `static_augment` jitters a share of a role's windows
once at render time (seeded), for inputs too big to augment every step.
Failure modes: errors of the generator / PyAV propagate (`av.FFmpegError`,
`ValueError`); an empty result raises `TrainingError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.augment import camera_jitter, photometric_jitter
from models.errors import TrainingError
from models.metadata import InputSpec
from models.preprocess import to_model_uint8
from models.windows import WINDOW_S, cut_windows, window_label

__all__ = [
    "LabeledArrays",
    "clip_seeds",
    "folder_pool_windows",
    "folder_windowsets",
    "synth_pool_windows",
    "synth_windowsets",
]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")


@dataclass
class LabeledArrays:
    """Same fields as `models.train.WindowSet` (kept torch-free here)."""

    x: np.ndarray
    y: np.ndarray
    clip: np.ndarray
    clip_label: np.ndarray


def _windows_of(
    frames: np.ndarray, fps: float, fall_start: float | None, fall_end: float | None
) -> tuple[list[np.ndarray], list[int]]:
    wins, labels = [], []
    for start, win in cut_windows(frames, fps):
        wins.append(win)
        labels.append(window_label(start, start + WINDOW_S, fall_start, fall_end))
    return wins, labels


_Job = tuple[int, str, tuple[tuple[str, InputSpec, float, float], ...], bool]
_Result = tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]


def _render_labeled(job: _Job) -> _Result:
    """Worker: render one clip → per-role (inputs, labels) and the clip label."""
    from models.synth import codec_round_trip, render_clip

    seed, preset, roles, codec = job
    frames, meta = render_clip(seed, preset=preset)
    if codec:
        frames = codec_round_trip(frames, meta.fps, meta.crf)
    wins, labels = _windows_of(frames, meta.fps, meta.fall_start_s, meta.fall_end_s)
    y = np.array(labels, dtype=np.int64)
    rng = np.random.default_rng(seed + 17)
    xs: dict[str, np.ndarray] = {}
    ys: dict[str, np.ndarray] = {}
    for role, spec, keep_neg, aug_p in roles:
        keep = (y == 1) | (rng.random(len(y)) < keep_neg)
        idx = np.flatnonzero(keep)
        c, t, hh, ww = spec.channels, spec.frames, spec.height, spec.width
        x = np.empty((len(idx), c, t, hh, ww), dtype=np.uint8)
        for j, i in enumerate(idx):
            if rng.random() < aug_p:
                x[j] = photometric_jitter(to_model_uint8(camera_jitter(wins[i], rng), spec), rng)
            else:
                x[j] = to_model_uint8(wins[i], spec)
        xs[role], ys[role] = x, y[idx]
    return xs, ys, int(meta.label == "fall")


def _render_unlabeled(job: tuple[int, str, bool]) -> list[np.ndarray]:
    from models.synth import codec_round_trip, render_clip

    seed, preset, codec = job
    frames, meta = render_clip(seed, preset=preset)
    if codec:
        frames = codec_round_trip(frames, meta.fps, meta.crf)
    return [np.ascontiguousarray(w) for _, w in cut_windows(frames, meta.fps)]


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=max(1, workers), mp_context=get_context("spawn"))


def _assemble(
    results: Sequence[tuple[int, _Result]], roles: Sequence[str]
) -> dict[str, LabeledArrays]:
    out: dict[str, LabeledArrays] = {}
    for role in roles:
        xs = [r[0][role] for _, r in results]
        ys = [r[1][role] for _, r in results]
        clips = [
            np.full(len(y), cid, dtype=np.int64) for (cid, _), y in zip(results, ys, strict=True)
        ]
        cl = [np.full(len(y), r[2], dtype=np.int64) for (_, r), y in zip(results, ys, strict=True)]
        if not xs or sum(len(y) for y in ys) == 0:
            raise TrainingError(f"no windows rendered for {role}")
        out[role] = LabeledArrays(np.concatenate(xs), np.concatenate(ys), np.concatenate(clips),
                                  np.concatenate(cl))  # fmt: skip
    return out


def clip_seeds(base_seed: int, n_clips: int) -> list[int]:
    """Render seeds of clips 0..n-1 of a dataset, as `models.synth.write_dataset` derives them."""
    from models.synth import clip_seed

    return [clip_seed(base_seed, i) for i in range(n_clips)]


def synth_windowsets(
    seeds: Sequence[int],
    preset: str,
    specs: Mapping[str, InputSpec],
    *,
    workers: int = 2,
    codec: bool = True,
    keep_negative: Mapping[str, float] | None = None,
    static_augment: Mapping[str, float] | None = None,
    progress: bool = True,
) -> dict[str, LabeledArrays]:
    """Render clips `seeds` and return labeled model inputs per role.

    `static_augment[role]` is the share of that role's windows given a random
    camera + photometric jitter (`models.augment`) once, at render time.
    """
    keep = keep_negative or {}
    aug = static_augment or {}
    roles = tuple((r, s, float(keep.get(r, 1.0)), float(aug.get(r, 0.0))) for r, s in specs.items())
    jobs: list[_Job] = [(int(s), preset, roles, codec) for s in seeds]
    results: list[tuple[int, _Result]] = []
    with _pool(workers) as ex:
        it = ex.map(_render_labeled, jobs, chunksize=4)
        for cid, res in enumerate(tqdm(it, total=len(jobs), desc=f"render {preset}",
                                       unit="clip", disable=not progress)):  # fmt: skip
            results.append((cid, res))
    return _assemble(results, list(specs))


def synth_pool_windows(
    seeds: Sequence[int], preset: str, *, workers: int = 2, codec: bool = True,
    progress: bool = True,
) -> Iterator[np.ndarray]:  # fmt: skip
    """Unlabeled canonical windows of clips `seeds` (for DMD)."""
    jobs = [(int(s), preset, codec) for s in seeds]
    with _pool(workers) as ex:
        for wins in tqdm(ex.map(_render_unlabeled, jobs, chunksize=4), total=len(jobs),
                         desc=f"render pool {preset}", unit="clip", disable=not progress):  # fmt: skip
            yield from wins


def folder_windowsets(
    folder: Path, specs: Mapping[str, InputSpec], *, progress: bool = True
) -> dict[str, LabeledArrays]:
    """Labeled model inputs from a clip folder (`labels.csv`), via `clips.iter_windows`."""
    from models.clips import ClipFolder, iter_windows

    clip_labels = [int(rec.label == "fall") for rec in ClipFolder(folder)]
    xs: dict[str, list[np.ndarray]] = {r: [] for r in specs}
    y, clip = [], []
    for cid, _start, win, label in tqdm(iter_windows(folder), desc="read clips", unit="win",
                                        disable=not progress):  # fmt: skip
        for role, spec in specs.items():
            xs[role].append(to_model_uint8(win, spec))
        y.append(int(label or 0))
        clip.append(int(cid))
    if not y:
        raise TrainingError(f"no windows in clip folder {folder}")
    ya, ca = np.array(y, dtype=np.int64), np.array(clip, dtype=np.int64)
    cla = np.array([clip_labels[c] for c in clip], dtype=np.int64)
    return {r: LabeledArrays(np.stack(v), ya, ca, cla) for r, v in xs.items()}


def folder_pool_windows(folder: Path, *, progress: bool = True) -> Iterator[np.ndarray]:
    """Unlabeled windows of every video in a folder.

    With a `labels.csv` the folder's own clip list is used (labels are dropped
    here); without one, every video file under the folder is read.
    """
    from models.clips import iter_windows, read_clip

    if (folder / "labels.csv").exists():
        for _cid, _start, win, _label in tqdm(iter_windows(folder), desc="pool", unit="win",
                                              disable=not progress):  # fmt: skip
            yield win
        return
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    for path in tqdm(files, desc="pool", unit="clip", disable=not progress):
        frames, fps = read_clip(path)
        for _start, win in cut_windows(frames, fps):
            yield win
