"""Canonical window cutting and labelling (models/runtime/windows.py) against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from models.runtime.windows import (
    LABELS,
    STRIDE_S,
    WINDOW_FPS,
    WINDOW_FRAMES,
    WINDOW_S,
    cut_windows,
    resample_frames,
    window_indices,
    window_label,
)


def _indexed_clip(n: int, h: int = 4, w: int = 6) -> np.ndarray:
    """Frame i is filled with the value i, so a window's frames reveal their source indices."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, h, w, 3)).copy()


def test_constants_match_the_contract() -> None:
    assert (WINDOW_FPS, WINDOW_FRAMES, WINDOW_S, STRIDE_S) == (8.0, 16, 2.0, 1.0)
    assert LABELS == ("no_fall", "fall")


def test_native_rate_windows_are_consecutive_slices_one_second_apart() -> None:
    clip = _indexed_clip(40)  # 5.0 s at 8 fps
    wins = cut_windows(clip, 8.0)
    assert [s for s, _ in wins] == [0.0, 1.0, 2.0, 3.0]
    for k, (_, win) in enumerate(wins):
        assert win.shape == (16, 4, 6, 3)
        assert list(win[:, 0, 0, 0]) == list(range(8 * k, 8 * k + 16))


def test_24_fps_clip_takes_every_third_frame() -> None:
    wins = cut_windows(_indexed_clip(120), 24.0)  # 5.0 s
    assert len(wins) == 4
    assert list(wins[1][1][:, 0, 0, 0]) == [3 * j for j in range(8, 24)]


def test_10_fps_clip_uses_nearest_frame() -> None:
    # Output frame j shows t = j/8 s; nearest 10 fps frame is round(j * 10 / 8).
    out = resample_frames(_indexed_clip(30), 10.0)  # 3.0 s -> 24 frames
    assert out.shape[0] == 24
    assert list(out[:5, 0, 0, 0]) == [0, 1, 3, 4, 5]


def test_clip_shorter_than_a_window_gives_no_windows() -> None:
    assert cut_windows(_indexed_clip(15), 8.0) == []
    assert len(cut_windows(_indexed_clip(16), 8.0)) == 1


def test_malformed_input_is_rejected() -> None:
    with pytest.raises(ValueError):
        cut_windows(np.zeros((10, 4, 4), dtype=np.uint8), 8.0)
    with pytest.raises(ValueError):
        cut_windows(_indexed_clip(20), 0.0)


@pytest.mark.parametrize(("n", "fps"), [(40, 8.0), (120, 24.0), (30, 10.0), (91, 12.5),
                                        (200, 30.0), (15, 8.0)])  # fmt: skip
def test_window_indices_pick_the_frames_cut_windows_cuts(n: int, fps: float) -> None:
    clip = _indexed_clip(n)
    cuts = window_indices(n, fps)
    wins = cut_windows(clip, fps)
    assert [s for s, _ in cuts] == [s for s, _ in wins]
    for (_, idx), (_, win) in zip(cuts, wins, strict=True):
        assert np.array_equal(clip[idx], win)


@pytest.mark.parametrize(
    ("start", "fall_start", "fall_end", "expected"),
    [
        (2.0, 3.0, 4.0, 1),  # window [2,4) covers the whole descent
        (3.5, 3.0, 4.0, 1),  # exactly half of the descent
        (3.6, 3.0, 4.0, 0),  # 0.4 of 1.0 s
        (1.0, 3.0, 4.0, 0),  # ends at onset
        (0.0, 3.0, 4.0, 0),
        (2.9, 3.0, 3.6, 1),
        (3.4, 3.0, 3.6, 0),  # 0.2 of 0.6 s
        (3.0, 3.0, 3.6, 1),
    ],
)
def test_window_label_half_of_descent_rule(
    start: float, fall_start: float, fall_end: float, expected: int
) -> None:
    assert window_label(start, start + 2.0, fall_start, fall_end) == expected


def test_window_label_without_fall_or_end() -> None:
    assert window_label(0.0, 2.0, None, None) == 0
    # Only the onset known: descent assumed to last 1.0 s.
    assert window_label(2.0, 4.0, 3.0, None) == 1
    assert window_label(3.6, 5.6, 3.0, None) == 0


def test_window_label_zero_length_descent_counts_when_inside() -> None:
    assert window_label(2.0, 4.0, 3.0, 3.0) == 1
    assert window_label(4.0, 6.0, 3.0, 3.0) == 0


def test_window_label_rejects_reversed_fall() -> None:
    with pytest.raises(ValueError):
        window_label(0.0, 2.0, 3.0, 2.0)
