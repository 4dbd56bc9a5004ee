"""Clip-folder reader (models/runtime/clips.py): round trip with the generator, errors, subfolders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.runtime.clips import ClipFolder, ClipFolderError, ClipReadError, iter_windows, read_clip
from models.runtime.windows import window_label
from models.synth.codec import encode_mp4
from models.synth.dataset import write_dataset


def test_round_trip_with_write_dataset(tmp_path: Path) -> None:
    metas = write_dataset(tmp_path, 2, seed=3, preset="train", duration_s=3.0)
    folder = ClipFolder(tmp_path)
    assert len(folder) == 2
    for rec, meta in zip(folder, metas, strict=True):
        assert (rec.label, rec.action) == (meta.label, meta.action)
        assert rec.fall_start_s == meta.fall_start_s
        frames, fps = read_clip(rec.path)
        assert fps == pytest.approx(8.0)
        assert frames.shape == (24, 120, 160, 3)
        assert frames.dtype == np.uint8
    windows = list(iter_windows(tmp_path))
    assert [w[0] for w in windows] == [0, 0, 1, 1]  # 3 s clips: windows at 0 s and 1 s
    for clip_index, start_s, window, label in windows:
        meta = metas[clip_index]
        assert window.shape == (16, 120, 160, 3)
        assert label == window_label(start_s, start_s + 2.0, meta.fall_start_s, meta.fall_end_s)


def _write_labels(folder: Path, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.csv").write_text(text, encoding="utf-8")


def test_subfolders_other_rates_and_sizes(tmp_path: Path) -> None:
    # 16 fps, 64x48, 2.5 s: windows resampled to 8 fps at native resolution.
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (40, 48, 64, 3), dtype=np.uint8)
    sub = tmp_path / "cam1" / "day2"
    sub.mkdir(parents=True)
    (sub / "a.mp4").write_bytes(encode_mp4(frames, 16.0, 20))
    _write_labels(tmp_path, "label,file,fall_start_s\nfall,cam1/day2/a.mp4,0.5\n")
    rec = ClipFolder(tmp_path)[0]
    assert rec.fall_end_s == pytest.approx(1.5)  # onset only: descent assumed 1.0 s
    decoded, fps = read_clip(rec.path)
    assert fps == pytest.approx(16.0)
    assert decoded.shape == (40, 48, 64, 3)
    windows = list(iter_windows(ClipFolder(tmp_path)))
    assert len(windows) == 1
    assert windows[0][2].shape == (16, 48, 64, 3)
    assert windows[0][3] == 1


def test_fall_without_timing_gives_unknown_window_label(tmp_path: Path) -> None:
    frames = np.zeros((24, 32, 32, 3), dtype=np.uint8)
    (tmp_path / "x.mp4").write_bytes(encode_mp4(frames, 8.0, 30))
    _write_labels(tmp_path, "file,label\nx.mp4,fall\n")
    assert [w[3] for w in iter_windows(tmp_path)] == [None, None]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name,label\na.mp4,fall\n", "missing column"),
        ("file,label\na.mp4,maybe\n", "label 'maybe'"),
        ("file,label,fall_start_s\na.mp4,fall,soon\n", "not a number"),
        ("file,label,fall_start_s,fall_end_s\na.mp4,fall,3,2\n", "before fall_start_s"),
        ("file,label,fall_start_s\na.mp4,no_fall,2\n", "no_fall clip with fall times"),
        ("file,label\n../a.mp4,fall\n", "relative"),
        ("file,label\n,fall\n", "empty file"),
    ],
)
def test_bad_labels_csv_raises_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    _write_labels(tmp_path, text)
    with pytest.raises(ClipFolderError, match=needle) as info:
        ClipFolder(tmp_path)
    assert "labels.csv" in str(info.value)


def test_missing_labels_csv(tmp_path: Path) -> None:
    with pytest.raises(ClipFolderError, match="not found"):
        ClipFolder(tmp_path)


def test_unreadable_clip_raises_clip_read_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(ClipReadError):
        read_clip(bad)
    with pytest.raises(ClipReadError):
        read_clip(tmp_path / "missing.mp4")
