"""Clip folders: the one reader for labelled video clips (synthetic or the user's own).

Inputs: a folder holding ``labels.csv`` (required columns ``file,label``; optional
``action,fall_start_s,fall_end_s``; ``label`` in ``fall|no_fall``; ``file`` relative to the
folder, subfolders allowed) and the video files it names, in any container and codec
PyAV can decode, any resolution and frame rate.
Outputs: ``ClipFolder`` iterates ``ClipRecord``s; ``read_clip`` gives RGB uint8 frames
``[T, H, W, 3]`` and the frame rate; ``iter_windows`` yields canonical windows
``(clip_index, start_s, window [16, H, W, 3], window_label | None)``.

Guarantees: frames keep their native resolution (models resize in preprocessing); time is
resampled to 8 fps by ``models.runtime.windows.cut_windows``; a window's label comes from
``models.runtime.windows.window_label`` when the fall's timing is known, is 0 for ``no_fall``
clips and ``None`` for a fall clip without timing. When only ``fall_start_s`` is given,
``fall_end_s = fall_start_s + 1.0``. Failure modes: ``ClipFolderError`` for a missing or
malformed ``labels.csv`` (message names the file, line and problem); ``ClipReadError`` for
a clip that cannot be opened or decoded.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
from numpy.typing import NDArray

from models.runtime.errors import ModelsError
from models.runtime.windows import LABELS, WINDOW_S, cut_windows, window_label

# Colour conversion (swscale) on the calling thread only, for every decode and encode in the
# project (clip files, synthetic clips, window payloads, camera frames). PyAV's default lets
# swscale start its own threads for every frame it converts: for a 160x120 window that costs
# ~7x the single-threaded wall time (thread start-up per frame) and fights the inference
# threads for the cores. Output is bit-identical (tests/unit/streams/test_video.py).
SWS_THREADS = 1

__all__ = [
    "SWS_THREADS",
    "ClipFolder",
    "ClipFolderError",
    "ClipReadError",
    "ClipRecord",
    "iter_windows",
    "read_clip",
]

_REQUIRED = ("file", "label")
_OPTIONAL = ("action", "fall_start_s", "fall_end_s")


class ClipFolderError(ModelsError, ValueError):
    """Raised by ``ClipFolder`` when ``labels.csv`` is missing or malformed.

    The operator fixes the named line of ``labels.csv`` (columns ``file,label`` required,
    ``label`` in fall|no_fall, times as seconds) or points at the right folder.
    """


class ClipReadError(ModelsError, OSError):
    """Raised by ``read_clip`` when a video cannot be opened or decoded.

    The operator checks the file exists and plays (e.g. with ffprobe), or re-encodes it.
    """


@dataclass(frozen=True)
class ClipRecord:
    """One row of ``labels.csv``; ``path`` is absolute, ``file`` as written in the CSV."""

    file: str
    label: str
    action: str | None
    fall_start_s: float | None
    fall_end_s: float | None
    path: Path


def _parse_time(raw: str | None, where: str, column: str) -> float | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        value = float(raw)
    except ValueError as exc:
        raise ClipFolderError(f"{where}: {column}={raw!r} is not a number") from exc
    if not math.isfinite(value) or value < 0:
        raise ClipFolderError(f"{where}: {column}={raw!r} must be a finite time >= 0")
    return value


class ClipFolder:
    """A folder of clips described by its ``labels.csv``; iterable and sized."""

    def __init__(self, path: str | Path) -> None:
        self.root = Path(path)
        self.labels_path = self.root / "labels.csv"
        self.records: list[ClipRecord] = self._load()

    def _load(self) -> list[ClipRecord]:
        if not self.labels_path.is_file():
            raise ClipFolderError(f"{self.labels_path}: not found")
        try:
            text = self.labels_path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ClipFolderError(f"{self.labels_path}: unreadable ({exc})") from exc
        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in _REQUIRED if c not in header]
        if missing:
            raise ClipFolderError(
                f"{self.labels_path}: missing column(s) {missing}; header {header}"
            )
        out: list[ClipRecord] = []
        for line_no, raw_row in enumerate(reader, start=2):
            row = {
                (k or "").strip(): (v or "").strip() for k, v in raw_row.items() if k is not None
            }
            where = f"{self.labels_path}:{line_no}"
            file = row.get("file", "")
            label = row.get("label", "")
            if not file:
                raise ClipFolderError(f"{where}: empty file name")
            rel = Path(file)
            if rel.is_absolute() or ".." in rel.parts:
                raise ClipFolderError(f"{where}: file {file!r} must be relative to the folder")
            if label not in LABELS:
                raise ClipFolderError(f"{where}: label {label!r} not in {list(LABELS)}")
            start = _parse_time(row.get("fall_start_s"), where, "fall_start_s")
            end = _parse_time(row.get("fall_end_s"), where, "fall_end_s")
            if label == "no_fall" and (start is not None or end is not None):
                raise ClipFolderError(f"{where}: no_fall clip with fall times")
            if start is None and end is not None:
                raise ClipFolderError(f"{where}: fall_end_s without fall_start_s")
            if start is not None and end is None:
                end = start + 1.0
            if start is not None and end is not None and end < start:
                raise ClipFolderError(f"{where}: fall_end_s {end} before fall_start_s {start}")
            out.append(
                ClipRecord(file, label, row.get("action") or None, start, end, self.root / rel)
            )
        return out

    def __iter__(self) -> Iterator[ClipRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> ClipRecord:
        return self.records[index]


def _rate(stream: av.video.stream.VideoStream, n_frames: int, duration_s: float | None) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and float(rate) > 0:
            return float(rate)
    if duration_s and duration_s > 0 and n_frames > 0:
        return n_frames / duration_s
    raise ClipReadError("cannot determine the frame rate")


def read_clip(source: str | Path | bytes | BinaryIO) -> tuple[NDArray[np.uint8], float]:
    """Decode the first video stream: RGB uint8 frames ``[T, H, W, 3]`` and frames/second.

    ``source`` is a path, the encoded bytes, or a binary file object. Frames are assumed
    evenly spaced at the stream's average rate.
    """
    name = str(source) if isinstance(source, (str, Path)) else "<memory>"
    opened: str | BinaryIO = io.BytesIO(source) if isinstance(source, bytes) else (
        str(source) if isinstance(source, (str, Path)) else source)  # fmt: skip
    try:
        with av.open(opened, mode="r") as container:
            if not container.streams.video:
                raise ClipReadError(f"{name}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = [f.to_ndarray(format="rgb24", threads=SWS_THREADS)
                      for f in container.decode(stream)]  # fmt: skip
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * Fraction(stream.time_base))
            fps = _rate(stream, len(frames), duration)
    except ClipReadError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise ClipReadError(f"{name}: cannot decode ({exc})") from exc
    if not frames:
        raise ClipReadError(f"{name}: no frames decoded")
    return np.stack(frames), fps


def iter_windows(
    folder: ClipFolder | str | Path,
) -> Iterator[tuple[int, float, NDArray[np.uint8], int | None]]:
    """Yield ``(clip_index, start_s, window, window_label | None)`` for every clip in order."""
    clips = folder if isinstance(folder, ClipFolder) else ClipFolder(folder)
    for index, rec in enumerate(clips):
        frames, fps = read_clip(rec.path)
        for start_s, window in cut_windows(frames, fps):
            label: int | None
            if rec.label == "no_fall":
                label = 0
            elif rec.fall_start_s is None:
                label = None
            else:
                label = window_label(start_s, start_s + WINDOW_S, rec.fall_start_s, rec.fall_end_s)
            yield index, start_s, window, label
