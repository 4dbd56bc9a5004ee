"""Gateway windowing, pacing and ground truth (no network, no sleeping)."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

import schemas
from models.runtime.windows import cut_windows, window_label
from streams.core.video import decode_window
from streams.gateway.gateway import (
    Gateway,
    GatewayError,
    GatewayOptions,
    array_source,
    is_live_source,
    video_source,
)
from streams.gateway.live_windows import (
    FallTruthRecorder,
    NearestFrameResampler,
    RollingWindower,
    StagedFallSpec,
    WindowPacer,
)


def numbered_clip(n: int) -> NDArray[np.uint8]:
    """A clip whose frame i is filled with i (mod 256) so frames can be identified."""
    clip = np.zeros((n, 4, 6, 3), dtype=np.uint8)
    for i in range(n):
        clip[i] = i % 256
    return clip


def stream_windows(
    clip: NDArray[np.uint8], fps: float, *, window_s: float = 2.0, stride_s: float = 1.0
) -> list[tuple[float, NDArray[np.uint8]]]:
    resampler = NearestFrameResampler(8.0)
    windower = RollingWindower(fps=8.0, window_s=window_s, stride_s=stride_s)
    out = []
    for i, frame in enumerate(clip):
        for idx, grid_frame in resampler.push(frame, 100.0 + i / fps):  # offset origin
            out += [(w.start_s, w.frames) for w in windower.push(idx, grid_frame)]
    for idx, grid_frame in resampler.finish(len(clip) / fps):
        out += [(w.start_s, w.frames) for w in windower.push(idx, grid_frame)]
    return out


@pytest.mark.parametrize(("fps", "n"), [(8.0, 40), (25.0, 130), (30.0, 95), (5.0, 23), (12.5, 61)])
def test_streaming_windows_equal_cut_windows(fps: float, n: int) -> None:
    clip = numbered_clip(n)
    expected = cut_windows(clip, fps)
    got = stream_windows(clip, fps)
    assert len(got) == len(expected) > 0
    for (s_got, w_got), (s_exp, w_exp) in zip(got, expected, strict=True):
        assert s_got == pytest.approx(s_exp)
        np.testing.assert_array_equal(w_got, w_exp)


def test_non_default_window_and_stride_match_cut_windows() -> None:
    clip = numbered_clip(90)
    expected = cut_windows(clip, 15.0, window_s=3.0, stride_s=0.5)
    got = stream_windows(clip, 15.0, window_s=3.0, stride_s=0.5)
    assert [s for s, _ in got] == pytest.approx([s for s, _ in expected])
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, expected, strict=True))


def test_window_buffer_stays_bounded_on_a_long_stream() -> None:
    windower = RollingWindower(fps=8.0, window_s=2.0, stride_s=1.0)
    frame = np.zeros((2, 2, 3), dtype=np.uint8)
    n_windows = 0
    for idx in range(8 * 600):
        n_windows += len(windower.push(idx, frame))
    assert len(windower._buffer) <= windower.window_frames
    assert n_windows == 600 - 1


def test_resampler_rejects_bad_rate() -> None:
    with pytest.raises(ValueError):
        NearestFrameResampler(0.0)


class FakeClock:
    def __init__(self) -> None:
        self.mono = 50.0
        self.wall = 1_000_000_000_000
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.mono

    def wall_ns(self) -> int:
        return self.wall + round((self.mono - 50.0) * 1e9)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.mono += seconds


def test_paced_source_sleeps_until_window_end_and_stamps_capture_time() -> None:
    clock = FakeClock()
    pacer = WindowPacer(
        paced=True, wall_ns=clock.wall_ns, monotonic=clock.monotonic, sleep=clock.sleep
    )
    pacer.start()
    end_ns = pacer.capture_end_ns(2.0)
    assert sum(clock.slept) == pytest.approx(2.0)
    assert end_ns == clock.wall + 2_000_000_000
    clock.slept.clear()
    clock.mono += 5.0  # fell behind: no sleeping, stamp stays on the stream timeline
    assert pacer.capture_end_ns(3.0) == clock.wall + 3_000_000_000
    assert clock.slept == []


def test_unpaced_source_never_sleeps_and_stamps_now() -> None:
    clock = FakeClock()
    pacer = WindowPacer(
        paced=False, wall_ns=clock.wall_ns, monotonic=clock.monotonic, sleep=clock.sleep
    )
    pacer.start()
    clock.mono += 0.25
    assert pacer.capture_end_ns(60.0) == clock.wall_ns()
    assert clock.slept == []


def test_paced_sleep_stops_early_on_stop_request() -> None:
    clock = FakeClock()
    pacer = WindowPacer(
        paced=True, wall_ns=clock.wall_ns, monotonic=clock.monotonic, sleep=clock.sleep
    )
    pacer.start()
    pacer.capture_end_ns(30.0, should_stop=lambda: len(clock.slept) >= 2)
    assert sum(clock.slept) < 1.0


def test_truth_records_fall_windows_with_the_shared_label_rule() -> None:
    falls = [StagedFallSpec(10.3, 11.1), StagedFallSpec(40.0, 40.8)]
    rec = FallTruthRecorder("cam0", falls, window_label, window_s=2.0)
    t0 = 5_000_000_000
    for k in range(20):
        rec.observe(k, float(k), k + 2.0, t0 + (k + 2) * 1_000_000_000)
    done = rec.completed(21.0)
    assert [d["fall_index"] for d in done] == [0]  # the second fall is still ahead
    first = done[0]
    expected = [k for k in range(20) if window_label(k, k + 2.0, 10.3, 11.1)]
    assert first["window_seqs"] == expected and expected
    assert first["first_window_capture_end_ns"] == t0 + (expected[0] + 2) * 1_000_000_000
    assert first["capture_start_ns"] == t0 + 10_300_000_000
    assert first["capture_end_ns"] == t0 + 11_100_000_000
    assert rec.completed(21.0) == []  # returned once
    final = rec.completed(21.0, final=True)
    assert [d["fall_index"] for d in final] == [1] and final[0]["window_seqs"] == []


class ListSink:
    def __init__(self) -> None:
        self.messages: list[tuple[bytes, bytes]] = []
        self.flushed = False

    def publish(self, key: bytes, value: bytes) -> None:
        self.messages.append((key, value))

    def flush(self, timeout_s: float) -> None:
        self.flushed = True

    def close(self) -> None:
        pass


def gateway_options(**overrides: object) -> GatewayOptions:
    base: dict[str, object] = {
        "stream_id": "cam7",
        "fps": 8.0,
        "window_s": 2.0,
        "stride_s": 1.0,
        "width": 32,
        "height": 24,
        "codec": "raw-gray8",
        "max_window_bytes": 900_000,
        "paced": False,
    }
    base.update(overrides)
    return GatewayOptions(**base)  # type: ignore[arg-type]


def test_gateway_publishes_decodable_windows_keyed_by_stream() -> None:
    clip = np.zeros((6 * 25, 24, 32, 3), dtype=np.uint8)  # 6 s at 25 fps
    clip[:, :, :, :] = np.arange(len(clip), dtype=np.uint8)[:, None, None, None]
    sink = ListSink()
    seen: list[int] = []
    gw = Gateway(gateway_options(start_seq=100), sink, on_window=lambda seq, _end: seen.append(seq))
    stats = gw.run(array_source(clip, 25.0), end_s=6.0)
    assert sink.flushed
    assert stats.windows == len(cut_windows(clip, 25.0)) == 5
    assert seen == [100, 101, 102, 103, 104]
    records = [schemas.decode("frame_window", v) for _, v in sink.messages]
    assert {k for k, _ in sink.messages} == {b"cam7"}
    assert [r["window_seq"] for r in records] == seen
    ends = [r["capture_end_ns"] for r in records]
    assert ends == sorted(ends)
    for rec in records:
        assert rec["capture_end_ns"] - rec["capture_start_ns"] == 2_000_000_000
        assert (rec["frame_count"], rec["width"], rec["height"]) == (16, 32, 24)
        frames = decode_window(rec["payload"], rec["codec"], 32, 24, 16)
        assert frames.shape == (16, 24, 32, 3)


def test_gateway_stops_promptly_when_asked() -> None:
    clip = np.zeros((40 * 8, 24, 32, 3), dtype=np.uint8)
    sink = ListSink()
    stop = threading.Event()

    def stop_after_two(seq: int, _end: int) -> None:
        if seq >= 1:
            stop.set()

    stats = Gateway(gateway_options(), sink, on_window=stop_after_two).run(
        array_source(clip, 8.0), stop=stop
    )
    assert stats.windows == 2
    assert sink.flushed


def test_gateway_skips_oversize_windows() -> None:
    clip = np.zeros((3 * 8, 24, 32, 3), dtype=np.uint8)
    sink = ListSink()
    stats = Gateway(gateway_options(max_window_bytes=1000), sink).run(array_source(clip, 8.0))
    assert stats.windows == 0 and stats.windows_oversize == 2
    assert sink.messages == []


def test_looping_synthetic_source_repeats_staged_falls() -> None:
    clip = np.zeros((10 * 8, 24, 32, 3), dtype=np.uint8)  # 10 s loop, fall at 4.2..5.0
    stop = threading.Event()
    sink = ListSink()

    def stop_at(seq: int, _end: int) -> None:
        if seq >= 24:
            stop.set()

    stats = Gateway(gateway_options(), sink, on_window=stop_at).run(
        array_source(clip, 8.0, loop=True),
        falls=[StagedFallSpec(4.2, 5.0)],
        loop_period_s=10.0,
        stop=stop,
    )
    starts = [doc["start_s"] for doc in stats.truth]
    assert starts[:2] == pytest.approx([4.2, 14.2])
    assert stats.truth[1]["window_seqs"] == [s + 10 for s in stats.truth[0]["window_seqs"]]


def write_mp4(path: Path, n: int, fps: int, size: tuple[int, int] = (64, 48)) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(n):
            img = np.full((size[1], size[0], 3), (i * 10) % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_video_source_resizes_and_keeps_time_increasing_across_loops(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    write_mp4(path, n=10, fps=10)
    frames = list(itertools.islice(video_source(str(path), 32, 24, loop=True), 25))
    assert len(frames) == 25  # looped past the 10-frame file
    assert all(f.shape == (24, 32, 3) and f.dtype == np.uint8 for f, _ in frames)
    times = [t for _, t in frames]
    assert all(b > a for a, b in itertools.pairwise(times))
    assert times[10] == pytest.approx(1.0, abs=1e-6)  # second loop starts after 10 frames


def test_unreadable_source_raises_gateway_error(tmp_path: Path) -> None:
    bad = tmp_path / "not_a_video.mp4"
    bad.write_bytes(b"definitely not video")
    with pytest.raises(GatewayError):
        list(video_source(str(bad), 32, 24))


@pytest.mark.parametrize(
    ("source", "live"),
    [("rtsp://cam/1", True), ("RTSP://cam/1", True), ("https://x/y.m3u8", True), ("a.mp4", False)],
)
def test_live_sources_are_network_urls(source: str, live: bool) -> None:
    assert is_live_source(source) is live


@pytest.mark.parametrize(
    "overrides",
    [{"stream_id": ""}, {"stream_id": "a/b"}, {"stream_id": "x" * 600_000}, {"start_seq": 2**53}],
)
def test_options_outside_the_record_rules_refuse_to_start(overrides: dict[str, object]) -> None:
    # Windows every worker would dead-letter are never published (issue 19: stream id rule).
    with pytest.raises(ValueError, match=r"stream_id|start_seq"):
        gateway_options(**overrides)
