"""Rendered clips, sequences and the dataset writers/streamers of models/synth."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from models.runtime.clips import read_clip
from models.runtime.windows import window_label
from models.synth import (
    iter_clip_windows,
    render_clip,
    render_sequence,
    render_windows,
    write_dataset,
)
from models.synth.cli import run_synth_cli


def test_same_seed_gives_identical_frames_and_different_seeds_differ() -> None:
    a, meta_a = render_clip(42, duration_s=2.0, width=64, height=48)
    b, meta_b = render_clip(42, duration_s=2.0, width=64, height=48)
    c, _ = render_clip(43, duration_s=2.0, width=64, height=48)
    assert a.shape == (16, 48, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert meta_a == meta_b
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("preset", ["train", "heldout", "demo"])
def test_clip_meta_matches_the_action(preset: str) -> None:
    frames, meta = render_clip(7, preset=preset, action="fall_sideways", width=64, height=48)
    assert meta.label == "fall" and meta.action == "fall_sideways" and meta.preset == preset
    assert meta.fall_start_s is not None and meta.fall_end_s is not None
    assert 0 < meta.fall_start_s < meta.fall_end_s < meta.duration_s
    assert frames.shape[0] == round(meta.duration_s * 8)
    _, walk = render_clip(7, preset=preset, action="walk", width=64, height=48, duration_s=2.0)
    assert (walk.label, walk.fall_start_s, walk.fall_end_s) == ("no_fall", None, None)


def test_person_changes_pixels_over_time() -> None:
    frames, _ = render_clip(9, action="walk", width=80, height=60, duration_s=3.0)
    diff = np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean(axis=-1)
    assert (diff > 40).sum() > 20, "a walking person must move visibly"


def test_render_sequence_reports_falls_inside_the_scene() -> None:
    frames, falls = render_sequence(5, duration_s=40.0, n_falls=1, width=64, height=48)
    assert frames.shape == (320, 48, 64, 3)
    assert len(falls) == 1
    assert 0 < falls[0].start_s < falls[0].end_s < 40.0
    again, falls_again = render_sequence(5, duration_s=40.0, n_falls=1, width=64, height=48)
    assert falls_again == falls and np.array_equal(again, frames)


def test_iter_clip_windows_labels_follow_window_label() -> None:
    items = list(iter_clip_windows(2, seed=1, duration_s=3.0, width=64, height=48))
    assert len(items) == 2
    for meta, windows in items:
        assert [s for s, _, _ in windows] == [0.0, 1.0]
        for start_s, window, label in windows:
            assert window.shape == (16, 48, 64, 3)
            assert not window.flags.writeable
            assert label == window_label(start_s, start_s + 2.0, meta.fall_start_s, meta.fall_end_s)


def test_render_windows_same_result_with_one_or_two_workers() -> None:
    one = render_windows(2, seed=4, workers=1, duration_s=3.0, width=64, height=48)
    two = render_windows(2, seed=4, workers=2, duration_s=3.0, width=64, height=48)
    assert one.windows.shape == (4, 16, 48, 64, 3)
    assert np.array_equal(one.windows, two.windows)
    assert list(one.clip_index) == [0, 0, 1, 1]
    assert list(one.clip_labels) == [int(m.label == "fall") for m in one.metas]
    raw = render_windows(2, seed=4, codec=False, duration_s=3.0, width=64, height=48)
    assert not np.array_equal(raw.windows, one.windows), "codec round trip must change pixels"


def test_write_dataset_is_deterministic_and_labelled(tmp_path: Path) -> None:
    metas = write_dataset(tmp_path / "a", 2, seed=8, duration_s=2.0)
    write_dataset(tmp_path / "b", 2, seed=8, duration_s=2.0)
    with (tmp_path / "a" / "labels.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["file", "label", "action", "fall_start_s", "fall_end_s"]
    assert [r["file"] for r in rows] == ["clips/00000.mp4", "clips/00001.mp4"]
    assert [r["label"] for r in rows] == [m.label for m in metas]
    for r in rows:
        assert (tmp_path / "a" / r["file"]).read_bytes() == (
            tmp_path / "b" / r["file"]
        ).read_bytes()


def test_cli_writes_folder_and_preview(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_synth_cli(["--out", str(tmp_path / "ds"), "--n", "1", "--seed", "2",
                          "--preview", str(tmp_path / "p.png"), "--preview-rows", "1"])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["clips"] == 1
    assert (tmp_path / "ds" / "labels.csv").is_file()
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert run_synth_cli([]) == 2


def test_cli_renders_the_size_and_frame_rate_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "far"
    code = run_synth_cli(["--out", str(out), "--n", "1", "--seed", "3", "--preset", "far_night",
                          "--size", "96x64", "--fps", "12"])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["size"], summary["fps"], summary["preset"]) == ("96x64", 12.0, "far_night")
    frames, fps = read_clip(out / "clips" / "00000.mp4")
    assert frames.shape[1:] == (64, 96, 3)
    assert fps == pytest.approx(12.0)
    # every far_night clip is IR night mode: grey, so the three channels agree
    spread = np.abs(frames.astype(np.int16) - frames.mean(axis=3, keepdims=True)).mean()
    assert spread < 3.0


@pytest.mark.parametrize("size", ["320", "320x", "31x24", "321x240", "4000x240", "axb"])
def test_cli_refuses_a_size_it_cannot_encode(size: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        run_synth_cli(["--out", "unused", "--size", size])
    assert exc.value.code == 2
    assert "size" in capsys.readouterr().err


def test_cli_refuses_a_frame_rate_out_of_range(tmp_path: Path) -> None:
    assert run_synth_cli(["--out", str(tmp_path / "x"), "--n", "1", "--fps", "0.5"]) == 2
    assert not (tmp_path / "x").exists()
