"""Hostile records against the real edge and cloud worker processes (issue 19, item 1).

On the local Kafka + Redis, with deterministic test models (the edge's P(fall) is the mean
pixel, the switcher sends level-153 windows to the cloud), an edge worker and a cloud worker
(both started through the one harness, ``streams.devtools.workers.WorkerProcess``) get,
between good windows:
- an offloaded window with seq 2**60 (before: raised in the pending write and stopped the
  edge worker, replaying forever), and the same as an offload request straight to the cloud
  (before: retried as if transient, then stopped the cloud worker);
- a 600 kB stream id under a short key (before: the keyed output exceeded the producer's
  1 MB limit, Faust's ProducerSendError stopped the worker);
- the 7.5 kB H.264 decompression bomb (64 flat 1920x1080 frames, 398 MB decoded);
- a bitstream whose real size differs from its header (8192x8192 declared 160x120).
The good windows are answered, each worker keeps its pid, and every bad record is on the
dead-letter topic with a reason.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

import schemas
from streams.devtools.workers import WorkerProcess, free_port
from streams.kafka.deadletter import parse_headers
from tests.hostile_windows import payloads
from tests.integration.edge_rig import EdgeRig, decoded, rig_factory
from tests.integration.test_cloud_worker import build_mean_pixel_cloud
from tests.onnx_test_models import (
    CONFIDENT_FALL,
    CONFIDENT_NO_FALL,
    UNCERTAIN_FALL,
    grey_window_record,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

__all__ = ["rig_factory"]  # the fixture, imported from the rig


def _offload_request(window: dict[str, object]) -> bytes:
    now = time.time_ns()
    request = {
        "window": window,
        "edge": {"p_fall": 0.6, "switcher_score": 0.9, "threshold": 0.5, "embedding": None},
        "reason": "uncertain",
        "model_versions": {"edge": "e@1"},
        "offloaded_at_ns": now,
        "deadline_ns": now + 60_000_000_000,
    }
    return schemas.encode("offload_request", request)


def test_hostile_records_are_dead_lettered_and_no_worker_stops(
    rig_factory: Callable[..., EdgeRig], tmp_path: Path
) -> None:
    bomb, big = payloads(tmp_path / "payloads")
    rig = rig_factory(FALLWATCH_CLOUD_DEADLINE_S="60")
    cloud_env = {
        **rig.worker.env,
        "FALLWATCH_CLOUD_GROUP": f"test-cloud-{uuid.uuid4().hex[:8]}",
        "FALLWATCH_CLOUD_HTTP_PORT": str(free_port()),
        "FALLWATCH_CLOUD_MODEL_PATH": str(build_mean_pixel_cloud(tmp_path / "cloud.onnx")),
        "FALLWATCH_CLOUD_BATCH_WAIT_S": "0.02",
    }
    cloud = WorkerProcess(
        "cloud", cloud_env, int(cloud_env["FALLWATCH_CLOUD_HTTP_PORT"]), tmp_path / "cloud.log"
    )
    cloud.start()
    try:
        cloud.wait_ready(90)
        pids = (rig.worker.pid, cloud.pid)
        stream = f"cam-{uuid.uuid4().hex[:6]}"
        key = stream.encode()
        levels = [CONFIDENT_FALL, UNCERTAIN_FALL, CONFIDENT_NO_FALL, UNCERTAIN_FALL, 200]
        good = [grey_window_record(stream, seq, level) for seq, level in enumerate(levels)]
        bomb_window = grey_window_record(stream, 101, 10) | {
            "width": 1920, "height": 1080, "frame_count": 64, "codec": "h264", "payload": bomb
        }  # fmt: skip
        lying_window = grey_window_record(stream, 102, 10) | {
            "width": 160, "height": 120, "frame_count": 2, "codec": "h264", "payload": big
        }  # fmt: skip

        def frames(record: dict[str, object]) -> bytes:
            return schemas.encode("frame_window", record)

        huge_id = grey_window_record("x" * 600_000, 5, UNCERTAIN_FALL)
        hostile: list[tuple[bytes, bytes, str]] = [
            (key, frames(grey_window_record(stream, 2**60, UNCERTAIN_FALL)), "invalid"),
            (b"cam-long", frames(huge_id), "invalid"),
            (key, frames(bomb_window), "too_large"),
            (key, frames(lying_window), "decode"),
        ]
        for window, bad in zip(good, [*hostile, None], strict=True):
            rig.send_window(window)
            if bad is not None:
                rig.send_raw(bad[0], bad[1], [("trace-id", b"hostile")])
        # Straight to the cloud: an offload request whose window has seq 2**60.
        offload_seq = _offload_request(grey_window_record(stream, 2**60, UNCERTAIN_FALL))
        rig.producer.send(rig.offload, key=key, value=offload_seq).get(30)

        results = decoded(rig.read(rig.results, len(good), timeout_s=60), "result")
        by_seq = {r["window_seq"]: r for r in results if r["stream_id"] == stream}
        assert sorted(by_seq) == list(range(len(good))), sorted(by_seq)
        assert by_seq[1]["decided_by"] == by_seq[3]["decided_by"] == "cloud"
        assert by_seq[0]["decided_by"] == "edge" and by_seq[0]["label"] == 1

        letters = rig.read(rig.deadletter, len(hostile) + 1, timeout_s=30)
        by_worker: dict[str, list[str]] = {}
        for letter in letters:
            dlq = parse_headers(letter.headers)
            by_worker.setdefault(dlq["fallwatch.dlq.worker"], []).append(
                dlq["fallwatch.dlq.reason"]
            )
            if dlq["fallwatch.dlq.worker"] == "edge":  # the producer's own headers are kept
                assert ("trace-id", b"hostile") in letter.headers
        assert sorted(by_worker["edge"]) == sorted(reason for _, _, reason in hostile)
        assert by_worker["cloud"] == ["invalid"]

        assert (rig.worker.pid, cloud.pid) == pids
        assert rig.worker.exited() is None and cloud.exited() is None
        assert rig.worker.readyz()[0] == 200 and cloud.readyz()[0] == 200
    finally:
        status = cloud.stop()
        if status not in (0, None):
            print(f"cloud worker exit status {status}; log tail:\n{cloud.logs()}")
