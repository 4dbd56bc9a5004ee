"""Preprocessing driven by the input spec, and the switcher's frame statistics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from models.runtime.errors import WindowError
from models.runtime.metadata import InputSpec
from models.runtime.preprocess import (
    STAT_NAMES,
    check_window,
    frame_stats,
    temporal_indices,
    to_model_input,
    to_model_uint8,
)

RGB = InputSpec(frames=16, height=28, width=28, color="rgb", resample="box")
GRAY = InputSpec(frames=8, height=16, width=16, color="gray", resample="nearest")


def _window(seed: int = 0, t: int = 16, h: int = 30, w: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def test_temporal_indices_spread_over_the_whole_window() -> None:
    assert temporal_indices(16, 8).tolist() == [1, 3, 5, 7, 9, 11, 13, 15]
    assert temporal_indices(16, 16).tolist() == list(range(16))
    assert temporal_indices(4, 8).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert temporal_indices(1, 3).tolist() == [0, 0, 0]


def test_shapes_dtype_and_scale_follow_the_spec() -> None:
    x = to_model_input([_window(0), _window(1)], GRAY)
    assert x.shape == (2, 1, 8, 16, 16) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    y = to_model_input([_window(0)], RGB)
    assert y.shape == (1, 3, 16, 28, 28)
    u = to_model_uint8(_window(0), RGB)
    np.testing.assert_allclose(y[0], u.astype(np.float32) / 255.0, atol=1e-7)


@pytest.mark.parametrize("resample", ["box", "nearest", "bilinear"])
@pytest.mark.parametrize(("h", "w"), [(30, 40), (120, 160), (37, 53), (240, 320)])
def test_frames_never_bleed_into_each_other(resample: str, h: int, w: int) -> None:
    win = np.zeros((16, h, w, 3), dtype=np.uint8)
    for t in range(16):
        win[t] = t * 15
    spec = InputSpec(frames=16, height=28, width=28, color="rgb", resample=resample)
    u = to_model_uint8(win, spec)
    for t in range(16):
        assert np.unique(u[:, t]).tolist() == [t * 15]


def test_stacked_resize_is_close_to_per_frame_resize_on_smooth_images() -> None:
    yy, xx = np.mgrid[0:120, 0:160]
    win = np.stack([((xx + 3 * t) % 160 * 1.5 + yy * 0.5) for t in range(16)]).astype(np.uint8)
    win = np.repeat(win[..., None], 3, axis=3)
    spec = InputSpec(frames=16, height=112, width=112, color="rgb", resample="box")
    got = to_model_uint8(win, spec).astype(float)
    for t in (0, 9, 15):
        ref = np.asarray(Image.fromarray(win[t]).resize((112, 112), Image.Resampling.BOX))
        assert np.abs(got[:, t] - ref.transpose(2, 0, 1)).mean() < 1.0


def test_grey_uses_luma_and_picks_the_spec_frames() -> None:
    win = np.zeros((16, 16, 16, 3), dtype=np.uint8)
    for t in range(16):
        win[t, ..., 0] = t * 10  # red ramps over time
    spec = InputSpec(frames=8, height=16, width=16, color="gray", resample="nearest")
    u = to_model_uint8(win, spec)
    expected = [round(0.299 * 10 * i) for i in temporal_indices(16, 8)]
    assert u[0, :, 0, 0].tolist() == pytest.approx(expected, abs=1)


def test_any_input_size_and_frame_count_is_accepted() -> None:
    for t, h, w in ((16, 120, 160), (9, 7, 5), (32, 240, 320)):
        assert to_model_uint8(_window(2, t, h, w), GRAY).shape == (1, 8, 16, 16)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((16, 8, 8, 3), dtype=np.float32),
        np.zeros((16, 8, 8), dtype=np.uint8),
        np.zeros((16, 8, 8, 4), dtype=np.uint8),
        np.zeros((0, 8, 8, 3), dtype=np.uint8),
        np.zeros((16, 1, 8, 3), dtype=np.uint8),
        [[1, 2, 3]],
    ],
)
def test_bad_windows_raise_window_error(bad: object) -> None:
    with pytest.raises(WindowError):
        check_window(bad)
    with pytest.raises(WindowError):
        to_model_input([bad], GRAY)  # type: ignore[list-item]


def test_empty_batch_is_a_window_error() -> None:
    with pytest.raises(WindowError):
        to_model_input([], GRAY)


def _bar_clip(direction: int, t: int = 8, side: int = 64) -> np.ndarray:
    """A bright horizontal bar moving down (direction=1) or up (-1) over dark frames."""
    x = np.zeros((1, 1, t, side, side), dtype=np.float32)
    for k in range(t):
        row = 8 + 6 * k if direction > 0 else side - 8 - 6 * k
        x[0, 0, k, row : row + 4] = 1.0
    return x


def test_frame_stats_static_window_has_no_motion() -> None:
    x = np.full((2, 1, 8, 64, 64), 0.25, dtype=np.float32)
    s = frame_stats(x)
    assert s.shape == (2, len(STAT_NAMES))
    col = {n: i for i, n in enumerate(STAT_NAMES)}
    assert s[0, col["brightness_mean"]] == pytest.approx(0.25)
    assert s[0, col["contrast"]] == pytest.approx(0.0, abs=1e-6)
    for name in ("motion_mean", "motion_max", "moving_fraction", "motion_centroid_dy"):
        assert s[0, col[name]] == pytest.approx(0.0, abs=1e-6)


def test_frame_stats_see_downward_motion_as_positive_dy() -> None:
    col = {n: i for i, n in enumerate(STAT_NAMES)}
    down = frame_stats(_bar_clip(+1))[0]
    up = frame_stats(_bar_clip(-1))[0]
    assert down[col["motion_centroid_dy"]] > 0.1
    assert up[col["motion_centroid_dy"]] < -0.1
    assert down[col["motion_mean"]] > 0 and down[col["moving_fraction"]] > 0


def test_frame_stats_time_of_peak_motion() -> None:
    x = np.zeros((1, 1, 8, 32, 32), dtype=np.float32)
    x[0, 0, 6:] = 1.0  # a flash between frames 5 and 6
    s = frame_stats(x)[0]
    assert s[STAT_NAMES.index("motion_peak_time")] == pytest.approx(5 / 6)


def test_frame_stats_rgb_is_averaged_to_grey() -> None:
    x = np.zeros((1, 3, 4, 16, 16), dtype=np.float32)
    x[:, 0] = 0.9
    assert frame_stats(x)[0, 0] == pytest.approx(0.3)


def test_frame_stats_of_two_frames_compute_no_centroid_shift_and_warn_nothing() -> None:
    x = np.zeros((3, 1, 2, 16, 16), dtype=np.float32)
    x[:, :, 1, 8:, :] = 1.0  # motion between the two frames
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0/0 on an empty second half used to warn
        s = frame_stats(x)
    assert np.isfinite(s).all()
    assert s[0, 2] > 0 and s[0, 6] == 0.0
