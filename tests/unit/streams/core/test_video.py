"""Window payload codec: round trips, GOP layout, header caps, hostile payloads."""

from __future__ import annotations

import functools
import io

import av
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from streams.core.errors import PoisonMessageError, WindowDecodeError, WindowDimensionsError
from streams.core.video import CODECS, decode_window, encode_window, snapshot_jpeg

T, H, W = 16, 120, 160


@functools.cache
def smooth_frames() -> npt.NDArray[np.uint8]:
    """A moving gradient with a bright square: compressible, and frames differ."""
    y, x = np.mgrid[0:H, 0:W]
    frames = np.empty((T, H, W, 3), dtype=np.uint8)
    for t in range(T):
        frames[t, ..., 0] = (x + 4 * t) % 256
        frames[t, ..., 1] = (y * 2) % 256
        frames[t, ..., 2] = 128
        frames[t, 40:60, 10 + 5 * t : 30 + 5 * t] = 250
    return frames


@functools.cache
def payload(codec: str) -> bytes:
    return encode_window(smooth_frames(), 8.0, codec)


@pytest.mark.parametrize("codec", ["h264", "mjpeg"])
def test_lossy_round_trip_keeps_shape_and_content(codec: str) -> None:
    decoded = decode_window(payload(codec), codec, W, H, T)
    assert decoded.shape == (T, H, W, 3)
    assert decoded.dtype == np.uint8
    error = np.abs(decoded.astype(np.int16) - smooth_frames().astype(np.int16)).mean()
    baseline = np.abs(smooth_frames()[::-1].astype(np.int16) - smooth_frames()).mean()
    assert error < 8.0
    assert error < baseline / 4  # frame order and motion survive


@pytest.mark.parametrize("codec", ["h264", "mjpeg"])
def test_single_threaded_colour_conversion_changes_no_pixel(codec: str) -> None:
    """decode_window converts colour on one thread (SWS_THREADS): same bytes as PyAV's
    default multi-threaded swscale, so models see exactly what they were trained on."""
    ctx = av.CodecContext.create(codec, "r")
    packets = ctx.parse(payload(codec)) + ctx.parse(None)
    frames = [f for p in packets for f in ctx.decode(p)] + list(ctx.decode(None))
    default = np.stack([f.to_ndarray(format="rgb24") for f in frames])
    np.testing.assert_array_equal(decode_window(payload(codec), codec, W, H, T), default)


def test_raw_gray8_round_trip_is_exact_in_grey() -> None:
    grey = np.repeat(smooth_frames()[..., :1], 3, axis=3)
    data = encode_window(grey, 8.0, "raw-gray8")
    assert len(data) == T * H * W
    np.testing.assert_array_equal(decode_window(data, "raw-gray8", W, H, T), grey)


def test_h264_is_annex_b_one_gop_and_decodes_without_delay() -> None:
    data = payload("h264")
    assert data.startswith(b"\x00\x00\x00\x01") or data.startswith(b"\x00\x00\x01")
    ctx = av.CodecContext.create("h264", "r")
    ctx.thread_count = 1
    packets = ctx.parse(data) + ctx.parse(None)
    assert len(packets) == T
    assert [p.is_keyframe for p in packets] == [True] + [False] * (T - 1)
    # No B-frames: every packet yields its frame immediately (nothing held back).
    assert [len(ctx.decode(p)) for p in packets] == [1] * T


@pytest.mark.parametrize(
    ("width", "height", "count", "error"),
    [
        (W, H, 65, WindowDimensionsError),
        (4000, 4000, T, WindowDimensionsError),
        (W + 1, H, T, WindowDimensionsError),
        (0, H, T, WindowDimensionsError),
        (W, H, -1, WindowDimensionsError),
        (W, H, True, WindowDimensionsError),
        (W, H, T - 1, WindowDecodeError),
        (W, H, T + 1, WindowDecodeError),
        (W // 2, H // 2, T, WindowDecodeError),
    ],
)
def test_header_mismatches_are_rejected(width: int, height: int, count: int, error: type) -> None:
    with pytest.raises(error):
        decode_window(payload("h264"), "h264", width, height, count)


def test_caps_come_from_the_caller() -> None:
    with pytest.raises(WindowDimensionsError):
        decode_window(payload("h264"), "h264", W, H, T, max_frames=T - 1)
    with pytest.raises(WindowDimensionsError):
        decode_window(payload("h264"), "h264", W, H, T, max_pixels=W * H - 1)


@pytest.mark.parametrize(
    ("data", "codec"),
    [(b"", "h264"), (b"x" * 10, "vp9"), (b"\x00" * (T * H * W - 1), "raw-gray8")],
)
def test_unknown_codec_empty_and_short_payloads(data: bytes, codec: str) -> None:
    with pytest.raises(WindowDecodeError):
        decode_window(data, codec, W, H, T)


def test_decode_errors_are_poison_with_bounded_reasons() -> None:
    assert issubclass(WindowDecodeError, PoisonMessageError)
    assert WindowDecodeError.reason == "decode"
    assert WindowDimensionsError.reason == "dimensions"


@pytest.mark.parametrize(
    "frames",
    [
        np.zeros((T, H, W, 3), dtype=np.float32),
        np.zeros((T, H, W), dtype=np.uint8),
        np.zeros((T, H + 1, W, 3), dtype=np.uint8),
        np.zeros((0, H, W, 3), dtype=np.uint8),
    ],
)
def test_encode_rejects_unusable_frames(frames: npt.NDArray[np.generic]) -> None:
    with pytest.raises(ValueError):
        encode_window(frames, 8.0, "h264")  # type: ignore[arg-type]


def test_encode_rejects_unknown_codec_and_bad_fps() -> None:
    with pytest.raises(ValueError):
        encode_window(smooth_frames(), 8.0, "vp9")
    with pytest.raises(ValueError):
        encode_window(smooth_frames(), 0.0, "h264")


def _decode_only_poison(data: bytes, codec: str) -> None:
    try:
        out = decode_window(data, codec, W, H, T)
    except WindowDecodeError:
        return
    # Error concealment may rebuild a slightly damaged stream; it must still be well-formed.
    assert out.shape == (T, H, W, 3)
    assert out.dtype == np.uint8


FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(codec=st.sampled_from(CODECS), data=st.binary(min_size=1, max_size=2000))
def test_random_payloads_only_raise_window_decode_error(codec: str, data: bytes) -> None:
    _decode_only_poison(data, codec)


@FUZZ
@given(codec=st.sampled_from(["h264", "mjpeg"]), fraction=st.floats(0.0, 0.999))
def test_truncated_payloads_only_raise_window_decode_error(codec: str, fraction: float) -> None:
    data = payload(codec)
    _decode_only_poison(data[: max(1, int(len(data) * fraction))], codec)


@FUZZ
@given(
    codec=st.sampled_from(["h264", "mjpeg"]),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=20),
)
def test_corrupted_payloads_only_raise_window_decode_error(
    codec: str, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(payload(codec))
    for position, mask in flips:
        data[position % len(data)] ^= mask
    _decode_only_poison(bytes(data), codec)


def test_snapshot_shrinks_a_noisy_frame_to_fit_or_gives_up() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(4, 240, 320, 3), dtype=np.uint8)
    small = snapshot_jpeg(frames, 3_000)
    assert small is None or len(small) <= 3_000
    assert snapshot_jpeg(frames, 0) is None
    big = snapshot_jpeg(frames, 500_000)
    assert big is not None and Image.open(io.BytesIO(big)).size == (320, 240)
