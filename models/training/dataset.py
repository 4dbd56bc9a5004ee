"""Model-ready training/pool data from the synthetic generator or a clip folder.

Inputs: clip seeds + a preset (synthetic, `models.synth`) or a labeled clip
folder (`models.runtime.clips`), and the input spec the frames are sized to.
Outputs:
- `synth_clipframes` / `folder_clipframes`: a `ClipFrames`: every frame of every clip
  once at the spec's size, the windows as frame ranges with their labels
  (`models.runtime.windows.window_label`), and for synthetic clips the generator's per-frame
  truth (the main person's silhouette and joint positions, as target maps at
  1/`target_stride` resolution): the training data of both video models
  (`models.training.silhouette`);
- `synth_pool_windows` / `folder_pool_windows`: UNLABELED canonical windows
  (uint8 `[16,H,W,3]`) for DMD — labels are dropped inside the generator, never
  returned.
Guarantees: clips are rendered in `workers` processes (spawn context, so it is
safe after torch was imported); the same seeds give the same arrays; synthetic
clips go through an in-memory H.264 round trip at the clip's own `crf`
(`models.synth.codec_round_trip`, as `write_dataset` stores them) so training sees
codec artefacts like held-out files; the truth maps describe the frames before the codec.
Failure modes: errors of the generator / PyAV propagate (`av.FFmpegError`,
`ValueError`); an empty result raises `TrainingError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.runtime.errors import TrainingError
from models.runtime.metadata import InputSpec
from models.runtime.preprocess import to_model_uint8
from models.runtime.windows import WINDOW_S, cut_windows, window_label

__all__ = [
    "FRAME_FIELDS",
    "KEYPOINTS",
    "ClipFrames",
    "clip_seeds",
    "folder_clipframes",
    "folder_pool_windows",
    "synth_clipframes",
    "synth_pool_windows",
    "target_maps",
]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")


@dataclass
class ClipFrames:
    """Every frame of a set of clips once, with per-frame truth and the windows as ranges.

    Window `i` is frames `first[i] .. first[i] + frames_per_window - 1` (contiguous: the
    clips are rendered at the window rate). `target[:, 0]` is the main person's visible
    silhouette coverage, `target[:, 1 + k]` a Gaussian around their joint `KEYPOINTS[k]`
    (visible or not; all zero when it is outside the frame); all 0..255.
    """

    x: np.ndarray  # uint8 [F,3,H,W] frames at the model's spec
    target: np.ndarray  # uint8 [F,1+len(KEYPOINTS),h,w]
    frame_clip: np.ndarray  # int64 [F]
    first: np.ndarray  # int64 [N] first frame of each window
    y: np.ndarray  # int64 [N] window labels
    clip: np.ndarray  # int64 [N]
    clip_label: np.ndarray  # int64 [N]


FRAME_FIELDS = ("x", "target", "frame_clip", "first", "y", "clip", "clip_label")
KEYPOINT_SIGMA = 1.0  # joint Gaussians' width in target cells
# The joints whose image positions the cloud's perception stage learns to find: enough for
# the body's posture and axis (the temporal stage on their TRUE 2D positions and the true
# silhouette reaches held-out clip F1 0.934; on true silhouettes alone, 0.84 at best:
# docs/MODEL_EXPERIMENTS.md).
KEYPOINTS = ("head", "neck", "pelvis", "knee_l", "knee_r", "ankle_l", "ankle_r", "wrist_l",
             "wrist_r")  # fmt: skip


def target_maps(masks: np.ndarray, joints_uv: np.ndarray, src_hw: tuple[int, int],
                out_hw: tuple[int, int]) -> np.ndarray:  # fmt: skip
    """Silhouettes `[T,H,W]` bool + joint positions `[T,K,2]` (pixels) → uint8 `[T,1+K,h,w]`."""
    from PIL import Image

    (sh, sw), (h, w) = src_hw, out_hw
    n_k = joints_uv.shape[1]
    out = np.zeros((len(masks), 1 + n_k, h, w), dtype=np.uint8)
    for k, m in enumerate(masks):
        img = Image.fromarray(m.astype(np.uint8) * 255, mode="L")
        out[k, 0] = np.asarray(img.resize((w, h), Image.Resampling.BOX))
    gx = (np.arange(w, dtype=np.float32) + 0.5)[None, :]
    gy = (np.arange(h, dtype=np.float32) + 0.5)[:, None]
    u = joints_uv[..., 0] * (w / sw)
    v = joints_uv[..., 1] * (h / sh)
    for k in range(len(masks)):
        for j in range(n_k):
            if 0.0 <= u[k, j] < w and 0.0 <= v[k, j] < h:
                d2 = (gx - u[k, j]) ** 2 + (gy - v[k, j]) ** 2
                out[k, 1 + j] = np.round(255 * np.exp(-d2 / (2 * KEYPOINT_SIGMA**2))).astype(
                    np.uint8
                )
    return out


def _clip_frames(frames: np.ndarray, fps: float, masks: np.ndarray, joints_uv: np.ndarray,
                 spec: InputSpec, stride: int) -> tuple[np.ndarray, np.ndarray, list[int]]:  # fmt: skip
    """One clip → (frames uint8 [T,3,H,W], targets [T,2,h,w], first frame of each window)."""
    from dataclasses import replace

    from models.runtime.windows import window_indices

    t = len(frames)
    x = to_model_uint8(frames, replace(spec, frames=t)).transpose(1, 0, 2, 3)
    tgt = target_maps(masks, joints_uv, frames.shape[1:3],
                      (spec.height // stride, spec.width // stride))  # fmt: skip
    firsts = []
    for _start, idx in window_indices(t, fps):
        if len(idx) != spec.frames or not np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):
            raise TrainingError(
                f"clip at {fps} fps does not give contiguous {spec.frames}-frame windows"
            )
        firsts.append(int(idx[0]))
    return np.ascontiguousarray(x), tgt, firsts


_Job = tuple[int, str, bool, InputSpec, int]
_Result = tuple[np.ndarray, np.ndarray, list[int], np.ndarray, int]


def _render_clip_frames(job: _Job) -> _Result:
    """Worker: render one clip with its truth → (frames, target maps, first frame of each
    window, window labels, clip label)."""
    from models.synth import codec_round_trip, render_clip
    from models.synth.clip import ClipTruth
    from models.synth.skeleton import joint_index

    seed, preset, codec, spec, stride = job
    truth = ClipTruth.empty()
    frames, meta = render_clip(seed, preset=preset, truth=truth)
    if codec:
        frames = codec_round_trip(frames, meta.fps, meta.crf)
    keys = [joint_index(n) for n in KEYPOINTS]
    x, tgt, firsts = _clip_frames(frames, meta.fps, truth.masks, truth.joints_uv[:, keys], spec,
                                  stride)  # fmt: skip
    y = np.array([window_label(start, start + WINDOW_S, meta.fall_start_s, meta.fall_end_s)
                  for start, _ in cut_windows(frames, meta.fps)], dtype=np.int64)  # fmt: skip
    return x, tgt, firsts, y, int(meta.label == "fall")


def _render_unlabeled(job: tuple[int, str, bool]) -> list[np.ndarray]:
    from models.synth import codec_round_trip, render_clip

    seed, preset, codec = job
    frames, meta = render_clip(seed, preset=preset)
    if codec:
        frames = codec_round_trip(frames, meta.fps, meta.crf)
    return [np.ascontiguousarray(w) for _, w in cut_windows(frames, meta.fps)]


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=max(1, workers), mp_context=get_context("spawn"))


def _assemble_frames(results: Sequence[_Result]) -> ClipFrames:
    xs, tgts, fclip, firsts, ys, clips, cls = [], [], [], [], [], [], []
    offset = 0
    for cid, (x, tgt, first, y, clip_label) in enumerate(results):
        xs.append(x)
        tgts.append(tgt)
        fclip.append(np.full(len(x), cid, dtype=np.int64))
        firsts.append(np.asarray(first, dtype=np.int64) + offset)
        ys.append(y)
        clips.append(np.full(len(y), cid, dtype=np.int64))
        cls.append(np.full(len(y), clip_label, dtype=np.int64))
        offset += len(x)
    if not ys or sum(len(y) for y in ys) == 0:
        raise TrainingError("no windows rendered")
    return ClipFrames(np.concatenate(xs), np.concatenate(tgts), np.concatenate(fclip),
                      np.concatenate(firsts), np.concatenate(ys), np.concatenate(clips),
                      np.concatenate(cls))  # fmt: skip


def clip_seeds(base_seed: int, n_clips: int) -> list[int]:
    """Render seeds of clips 0..n-1 of a dataset, as `models.synth.write_dataset` derives them."""
    from models.synth import clip_seed

    return [clip_seed(base_seed, i) for i in range(n_clips)]


def synth_clipframes(
    seeds: Sequence[int], preset: str, spec: InputSpec, *, workers: int = 2, codec: bool = True,
    target_stride: int = 4, progress: bool = True,
) -> ClipFrames:  # fmt: skip
    """Render clips `seeds` with their per-frame truth as `ClipFrames` at `spec`'s size."""
    jobs: list[_Job] = [(int(s), preset, codec, spec, target_stride) for s in seeds]
    with _pool(workers) as ex:
        results = list(tqdm(ex.map(_render_clip_frames, jobs, chunksize=4), total=len(jobs),
                            desc=f"render {preset}", unit="clip", disable=not progress))  # fmt: skip
    return _assemble_frames(results)


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


def folder_clipframes(
    folder: Path, spec: InputSpec, *, target_channels: int = 1 + len(KEYPOINTS),
    progress: bool = True,
) -> ClipFrames:  # fmt: skip
    """A labeled clip folder as `ClipFrames` for the cloud's temporal stage.

    Frames are resampled to the window rate and sized to `spec` once per clip; windows and
    labels are cut exactly as `clips.iter_windows` cuts them. Real footage has no
    silhouettes, so `target` is all zero (only a head-only retrain may use it).
    """
    from dataclasses import replace

    from models.runtime.clips import ClipFolder, read_clip
    from models.runtime.windows import WINDOW_FPS, resample_frames, window_indices

    xs, fclip, firsts, ys, clips, cls = [], [], [], [], [], []
    offset = 0
    for cid, rec in enumerate(tqdm(ClipFolder(folder), desc="read clips", unit="clip",
                                   disable=not progress)):  # fmt: skip
        frames, fps = read_clip(rec.path)
        frames = resample_frames(frames, fps)
        spans = window_indices(len(frames), WINDOW_FPS)
        if not spans:
            continue
        x = to_model_uint8(frames, replace(spec, frames=len(frames))).transpose(1, 0, 2, 3)
        xs.append(np.ascontiguousarray(x))
        fclip.append(np.full(len(x), cid, dtype=np.int64))
        for start, idx in spans:
            firsts.append(offset + int(idx[0]))
            if rec.label == "no_fall" or rec.fall_start_s is None:
                ys.append(0)
            else:
                ys.append(window_label(start, start + WINDOW_S, rec.fall_start_s, rec.fall_end_s))
            clips.append(cid)
            cls.append(int(rec.label == "fall"))
        offset += len(x)
    if not ys:
        raise TrainingError(f"no windows in clip folder {folder}")
    x_all = np.concatenate(xs)
    target = np.zeros((len(x_all), target_channels, spec.height // 4, spec.width // 4), np.uint8)
    return ClipFrames(x_all, target, np.concatenate(fclip), np.array(firsts, dtype=np.int64),
                      np.array(ys, dtype=np.int64), np.array(clips, dtype=np.int64),
                      np.array(cls, dtype=np.int64))  # fmt: skip


def folder_pool_windows(folder: Path, *, progress: bool = True) -> Iterator[np.ndarray]:
    """Unlabeled windows of every video in a folder.

    With a `labels.csv` the folder's own clip list is used (labels are dropped
    here); without one, every video file under the folder is read.
    """
    from models.runtime.clips import iter_windows, read_clip

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
