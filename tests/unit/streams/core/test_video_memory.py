"""Bounded memory when decoding hostile windows (issue 19, item 2).

Regression tests for: a 7.5 kB H.264 payload of 64 flat 1920x1080 frames decoded to 398 MB
(an edge batch of four reached 1.58 GB); a 197 kB stream of 8192x8192 frames declared as
160x120 allocated ~160 MB inside FFmpeg before the size check refused it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from streams.core.errors import MessageTooLargeError, WindowDecodeError
from streams.core.settings import Settings
from streams.core.video import decode_window, encode_window
from streams.devtools.workers import REPO_ROOT
from tests.hostile_windows import BOMB_FRAMES, BOMB_HEIGHT, BOMB_WIDTH, payloads

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    return payloads(tmp_path_factory.getbasetemp() / "hostile-payloads")


def test_the_bomb_is_refused_by_the_decoded_size_cap_before_any_frame(
    hostile: tuple[bytes, bytes],
) -> None:
    bomb, _ = hostile
    assert len(bomb) < 10_000
    tracemalloc.start()
    try:
        with pytest.raises(MessageTooLargeError, match="max_window_decoded_bytes"):
            decode_window(bomb, "h264", BOMB_WIDTH, BOMB_HEIGHT, BOMB_FRAMES)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 * MIB  # refused from the header: no frame buffer was allocated
    assert Settings().max_window_decoded_bytes == 64 * MIB


def test_frames_larger_than_declared_are_refused_by_the_decoder(
    hostile: tuple[bytes, bytes],
) -> None:
    bomb, big = hostile
    with pytest.raises(WindowDecodeError, match="does not decode"):
        decode_window(big, "h264", 160, 120, 2)
    # The bomb's 1920x1080 frames in a window declared small: refused the same way.
    with pytest.raises(WindowDecodeError):
        decode_window(bomb, "h264", 160, 120, BOMB_FRAMES)


@pytest.mark.parametrize("codec", ["h264", "mjpeg"])
@pytest.mark.parametrize(("width", "height"), [(2, 2), (34, 26), (66, 66), (130, 98), (160, 120)])
def test_the_decoder_pixel_cap_keeps_honest_frames_of_any_size(
    codec: str, width: int, height: int
) -> None:
    frames = np.random.default_rng(width).integers(0, 255, (2, height, width, 3), np.uint8)
    out = decode_window(encode_window(frames, 8.0, codec), codec, width, height, 2)
    assert out.shape == (2, height, width, 3)


_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    from models.runtime.onnx_models import EdgeModel, Switcher
    from schemas.records import FrameWindow
    from streams.core.settings import Settings
    from streams.edge.inference import InboundMessage, compute_batch
    from tests.hostile_windows import payloads
    from tests.onnx_test_models import build_margin_switcher, build_mean_pixel_edge

    folder = Path(sys.argv[1])
    bomb, big = payloads(folder)
    edge = EdgeModel.load(build_mean_pixel_edge(folder / "edge.onnx"))
    switcher = Switcher.load(build_margin_switcher(folder / "switcher.onnx"))
    windows = [
        ("bomb", bomb, 1920, 1080, 64),          # honest header, 398 MB decoded
        ("bomb-as-small", bomb, 160, 120, 64),   # lying header
        ("big-as-small", big, 160, 120, 2),      # 8192x8192 declared 160x120
        ("big-as-more", big, 160, 120, 64),
    ]
    messages = []
    for i, (name, payload, w, h, n) in enumerate(windows * 2):
        window = FrameWindow("cam-" + name, i, 0, 1, 8.0, w, h, n, "h264", payload)
        messages.append(InboundMessage("frames", 0, i, b"k", window.encode(), []))
    settings = Settings()
    out = []
    for start in range(0, len(messages), settings.edge_batch_max):
        batch = messages[start : start + settings.edge_batch_max]
        outcome = compute_batch(
            batch, edge=edge, switcher=switcher, threshold=0.5, settings=settings
        )
        out += [(m.offset, type(e).__name__) for m, e in outcome.poisoned]
        out += [(w.message.offset, "routed") for w in outcome.routed]
    # VmHWM: the peak RSS of this process's own memory since its exec. ru_maxrss would do
    # outside pytest, but Linux carries the parent's peak into the child's ru_maxrss at
    # execve (signal->maxrss takes the old mm's high-water mark), so under a big pytest
    # process it reports the parent's peak, not ours.
    status = Path("/proc/self/status").read_text()
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_rss_bytes": hwm * 1024, "ru_maxrss_bytes": maxrss * 1024,
                      "outcomes": sorted(out)}))
    """
)


def test_a_batch_of_hostile_windows_keeps_peak_rss_under_one_gib(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    outcomes = report["outcomes"]
    assert [offset for offset, _ in outcomes] == list(range(8))
    assert {kind for _, kind in outcomes} <= {"MessageTooLargeError", "WindowDecodeError"}
    assert report["peak_rss_bytes"] < 1024 * MIB, report["peak_rss_bytes"]
    print(
        "hostile batch peak RSS MiB:",
        report["peak_rss_bytes"] // MIB,
        "ru_maxrss MiB:",
        report["ru_maxrss_bytes"] // MIB,
    )
