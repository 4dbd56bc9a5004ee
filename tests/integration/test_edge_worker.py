"""Integration tests of the edge worker (streams.edge.app) on the real local Kafka + Redis.

Each test runs the worker as a subprocess (``run_edge_worker`` with settings from
``FALLWATCH_*`` variables) on its own topics, consumer group, HTTP port and Redis prefix,
produces frame windows with kafka-python and reads what the worker wrote.

Most tests use tiny test-only ONNX models built here with ``onnx.helper`` so decisions are
deterministic: the edge's P(fall) is the mean pixel value of the window (a uniform grey
window of level v gives p = v/255), and the switcher's P(edge wrong) is ``1 - margin``
(``margin = |2p - 1|``) with threshold 0.5 — so p≈0.95/0.05 are confident and p≈0.6 is
uncertain. One test runs the shipped zoo models on a rendered clip.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import schemas
from streams.devtools.workers import free_port
from tests.integration.edge_rig import (
    EdgeRig,
    alerts_of,
    decoded,
    listening_sockets,
    rig_factory,
)
from tests.onnx_test_models import (
    CONFIDENT_FALL,
    CONFIDENT_NO_FALL,
    UNCERTAIN_FALL,
    build_margin_switcher,
    grey_window_record,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

__all__ = ["rig_factory"]  # the fixture, imported from the rig


# ---- tests -----------------------------------------------------------------------------


def test_windows_are_routed_to_results_and_offloads(rig_factory: Callable[..., EdgeRig]) -> None:
    # audit_rate=1: every confident window is ALSO sent to the cloud as an audit sample.
    rig = rig_factory(FALLWATCH_CLOUD_DEADLINE_S="60", FALLWATCH_AUDIT_RATE="1.0")
    stream = f"cam-{uuid.uuid4().hex[:6]}"
    rig.send_window(grey_window_record(stream, 0, CONFIDENT_FALL))
    rig.send_window(grey_window_record(stream, 1, CONFIDENT_NO_FALL))
    uncertain = grey_window_record(stream, 2, UNCERTAIN_FALL)
    rig.send_window(uncertain)

    results = {r["window_seq"]: r for r in decoded(rig.read(rig.results, 2), "result")}
    offloads = decoded(rig.read(rig.offload, 3), "offload_request")

    assert sorted(results) == [0, 1], results.keys()
    fall, no_fall = results[0], results[1]
    assert (fall["label"], fall["decided_by"]) == (1, "edge")
    assert (no_fall["label"], no_fall["decided_by"]) == (0, "edge")
    assert fall["p_fall"] == pytest.approx(CONFIDENT_FALL / 255, abs=0.01)
    assert fall["snapshot_jpeg"] is not None and fall["snapshot_jpeg"][:2] == b"\xff\xd8"
    assert len(fall["snapshot_jpeg"]) <= 20_000
    assert no_fall["snapshot_jpeg"] is None
    assert set(fall["model_versions"]) == {"edge", "switcher"}

    by_reason = sorted((o["reason"], o["window"]["window_seq"]) for o in offloads)
    assert by_reason == [("audit", 0), ("audit", 1), ("uncertain", 2)]
    request = next(o for o in offloads if o["reason"] == "uncertain")
    assert request["window"] == uncertain  # the original window, unchanged
    assert request["edge"]["switcher_score"] >= request["edge"]["threshold"] == 0.5
    assert request["deadline_ns"] - request["offloaded_at_ns"] == 60 * 1_000_000_000

    status, body = rig.worker.readyz()
    assert status == 200 and all(body["checks"].values()), body
    assert set(body["checks"]) == {"kafka", "consumer_group", "redis", "models"}
    windows_in = ("fallwatch_windows_in_total", (("worker", "edge"),))
    deadline = time.monotonic() + 5  # metrics are updated right after the batch's delivery
    while (samples := rig.worker.metrics()).get(windows_in) != 3:
        assert time.monotonic() < deadline, samples.get(windows_in)
        time.sleep(0.1)
    assert samples[("fallwatch_windows_routed_total", (("path", "edge"),))] == 2
    assert samples[("fallwatch_windows_routed_total", (("path", "offload"),))] == 1
    assert samples[("fallwatch_windows_routed_total", (("path", "audit"),))] == 2
    assert samples[("fallwatch_results_total", (("decided_by", "edge"),))] == 2
    # docs/ARCHITECTURE.md, "Known traps": no Faust web server on 0.0.0.0 — the only
    # listener is our loopback health port.
    assert rig.worker.proc is not None
    assert listening_sockets(rig.worker.proc.pid) == {("127.0.0.1", rig.worker.port)}


def test_malformed_messages_are_dead_lettered_and_good_ones_still_processed(
    rig_factory: Callable[..., EdgeRig],
) -> None:
    rig = rig_factory()
    stream = f"cam-{uuid.uuid4().hex[:6]}"
    key = stream.encode()
    oversize = grey_window_record(stream, 1, 10) | {"width": 4000, "height": 4000}
    undecodable = grey_window_record(stream, 2, 10) | {"codec": "h264", "payload": os.urandom(3000)}
    not_a_window = schemas.encode(
        "result",
        {
            "stream_id": stream,
            "window_seq": 3,
            "capture_start_ns": 0,
            "capture_end_ns": 1,
            "p_fall": 0.1,
            "label": 0,
            "decided_by": "edge",
            "switcher_score": None,
            "model_versions": {},
            "latencies_s": {},
            "produced_at_ns": 1,
            "snapshot_jpeg": None,
        },
    )
    too_large = grey_window_record(stream, 4, 10) | {"frame_count": 1, "payload": b"\x00" * 950_000}
    bad: list[tuple[bytes, str]] = [
        (b"\xff\x00 garbage \x00\x01", "MessageSchemaError"),
        (schemas.encode("frame_window", too_large, max_bytes=10**7), "MessageTooLargeError"),
        (not_a_window, "MessageSchemaError"),
        (schemas.encode("frame_window", oversize), "WindowDimensionsError"),
        (schemas.encode("frame_window", undecodable), "WindowDecodeError"),
    ]
    sent = [
        (rig.send_raw(key, value, [("trace-id", b"t%d" % i)]), value, cls)
        for i, (value, cls) in enumerate(bad)
    ]
    rig.send_window(grey_window_record(stream, 10, CONFIDENT_FALL))  # after all the bad ones
    # A good window just under the 900 kB cap must pass the producer/consumer size limits.
    near_cap = grey_window_record(stream, 11, CONFIDENT_NO_FALL)
    near_cap |= {
        "width": 240,
        "height": 228,
        "payload": bytes([CONFIDENT_NO_FALL]) * (16 * 240 * 228),
    }
    rig.send_window(near_cap)

    dead = rig.read(rig.deadletter, len(bad))
    results = decoded(rig.read(rig.results, 2), "result")

    assert sorted(r["window_seq"] for r in results) == [10, 11]
    assert len(dead) == len(bad)

    def source(record: Any) -> tuple[str, str]:
        headers = dict(record.headers)
        return headers["fallwatch.dlq.partition"].decode(), headers["fallwatch.dlq.offset"].decode()

    by_source = {source(r): r for r in dead}
    for i, (metadata, value, error_class) in enumerate(sent):
        got = by_source[(str(metadata.partition), str(metadata.offset))]
        headers = {k: v.decode() for k, v in got.headers}
        assert got.value == value, "dead letter must carry the original bytes"
        assert got.key == key
        assert headers["fallwatch.dlq.source_topic"] == rig.frames
        assert headers["fallwatch.dlq.partition"] == str(metadata.partition)
        assert headers["fallwatch.dlq.offset"] == str(metadata.offset)
        assert headers["fallwatch.dlq.error_class"] == error_class
        assert headers["fallwatch.dlq.error"]
        assert headers["trace-id"] == f"t{i}"
    assert rig.worker.proc is not None and rig.worker.proc.poll() is None


def test_offload_without_cloud_falls_back_within_deadline_with_one_alert(
    rig_factory: Callable[..., EdgeRig],
) -> None:
    rig = rig_factory()  # cloud_deadline_s = 1.0, no cloud worker running
    stream = f"cam-{uuid.uuid4().hex[:6]}"
    rig.send_window(grey_window_record(stream, 0, UNCERTAIN_FALL))

    offload = decoded(rig.read(rig.offload, 1), "offload_request")
    result_records = rig.read(rig.results, 1, timeout_s=20)
    results = decoded(result_records, "result")

    assert len(offload) == 1 and len(results) == 1
    fallback = results[0]
    assert (fallback["window_seq"], fallback["decided_by"]) == (0, "edge-fallback")
    assert fallback["label"] == 1 and fallback["snapshot_jpeg"] is not None
    # The broker timestamp is when the sweeper published it: not before the deadline, and
    # soon after it (poll every 0.1 s; 5 s of slack for a loaded 2-core machine).
    deadline_ms = offload[0]["deadline_ns"] // 1_000_000
    assert deadline_ms <= result_records[0].timestamp <= deadline_ms + 5_000

    alerts = alerts_of(rig.read(rig.alerts, 2, timeout_s=8))
    detected = [a for a in alerts if a["data"]["state"] == "detected"]
    assert len(detected) == 1, alerts
    assert detected[0]["subject"] == stream
    assert detected[0]["data"]["decided_by"] == "edge-fallback"
    # No second fallback result for the same window.
    assert len(rig.read(rig.results, 2, timeout_s=2)) == 1


def test_redelivered_windows_give_exactly_one_alert_per_fall(
    rig_factory: Callable[..., EdgeRig],
) -> None:
    rig = rig_factory()
    stream = f"cam-{uuid.uuid4().hex[:6]}"
    levels = [CONFIDENT_NO_FALL] * 2 + [CONFIDENT_FALL] * 2 + [CONFIDENT_NO_FALL] * 4
    windows = [grey_window_record(stream, seq, level) for seq, level in enumerate(levels)]
    for record in windows + windows:  # every window delivered twice
        rig.send_window(record)

    results = rig.read(rig.results, 2 * len(windows))
    alerts = alerts_of(rig.read(rig.alerts, 3, timeout_s=10))

    assert len(results) == 2 * len(windows)
    states = sorted(a["data"]["state"] for a in alerts)
    assert states == ["detected", "resolved"], alerts
    detected = next(a for a in alerts if a["data"]["state"] == "detected")
    resolved = next(a for a in alerts if a["data"]["state"] == "resolved")
    assert detected["data"]["first_window_seq"] == 2
    assert detected["data"]["event_id"] == resolved["data"]["event_id"]
    assert detected["id"] != resolved["id"]


def test_zoo_models_route_every_window_of_a_rendered_clip(
    rig_factory: Callable[..., EdgeRig],
) -> None:
    from models import zoo_path
    from models.runtime.metadata import parse_model, read_metadata
    from models.runtime.windows import cut_windows
    from models.synth import render_clip
    from streams.core.video import encode_window

    if not zoo_path("edge").exists() or not zoo_path("switcher").exists():
        pytest.fail("model zoo missing: run `make models` (models/zoo/{edge,switcher}.onnx)")
    rig = rig_factory(zoo=True, FALLWATCH_CLOUD_DEADLINE_S="60")
    frames, _meta = render_clip(
        3, preset="heldout", action="fall_forward", width=160, height=120, fps=8.0
    )
    stream = f"cam-{uuid.uuid4().hex[:6]}"
    windows = cut_windows(frames, 8.0)
    assert len(windows) >= 2
    now_ns = time.time_ns()
    for seq, (start_s, window) in enumerate(windows):
        rig.send_window(
            {
                "stream_id": stream,
                "window_seq": seq,
                "capture_start_ns": now_ns + int(start_s * 1e9),
                "capture_end_ns": now_ns + int((start_s + 2.0) * 1e9),
                "fps": 8.0,
                "width": 160,
                "height": 120,
                "frame_count": window.shape[0],
                "codec": "h264",
                "payload": encode_window(window, 8.0, "h264"),
            }
        )

    results = decoded(rig.read(rig.results, len(windows), timeout_s=15), "result")
    offloads = decoded(rig.read(rig.offload, len(windows), timeout_s=3), "offload_request")

    edge_seqs = {r["window_seq"] for r in results if r["decided_by"] == "edge"}
    offloaded = {o["window"]["window_seq"] for o in offloads if o["reason"] == "uncertain"}
    assert edge_seqs | offloaded == set(range(len(windows)))
    assert not edge_seqs & offloaded
    edge_meta = read_metadata(parse_model(zoo_path("edge").read_bytes()))
    for r in results:
        assert 0.0 <= r["p_fall"] <= 1.0
        assert r["model_versions"]["edge"] == f"{edge_meta.name}@{edge_meta.version}"
    assert not rig.read(rig.deadletter, 1, timeout_s=1)


def test_worker_fails_to_start_and_exits_nonzero_when_redis_is_down(
    rig_factory: Callable[..., EdgeRig],
) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    rig = rig_factory(wait_ready=False, FALLWATCH_REDIS_URL=dead_redis)
    proc = rig.worker.proc
    assert proc is not None
    try:
        status = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"worker kept running without Redis:\n{rig.worker.logs()}")
    assert status != 0
    assert "EdgeWorkerCrashedError" in rig.worker.logs()
    assert "StateStoreError" in rig.worker.logs(tail=10**7)


def test_broken_model_stops_the_worker_without_losing_the_window(
    rig_factory: Callable[..., EdgeRig], tmp_path: Path
) -> None:
    """A failure that is not the input's fault must crash the worker WITHOUT committing the
    window's offset (faust-streaming #315: an escaping exception would skip it); after a
    restart with a working model the same window is answered."""
    # Loads and warms up fine, but asks for an embedding dimension the edge does not emit,
    # so every batch fails with InferenceError at run time.
    broken = build_margin_switcher(tmp_path / "broken.onnx", features=("emb.5",))
    rig = rig_factory(FALLWATCH_SWITCHER_MODEL_PATH=str(broken))
    stream = f"cam-{uuid.uuid4().hex[:6]}"
    sent = rig.send_window(grey_window_record(stream, 0, CONFIDENT_FALL))
    proc = rig.worker.proc
    assert proc is not None
    try:
        status = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"worker did not stop on a broken model:\n{rig.worker.logs()}")
    assert status != 0
    assert '"worker_fatal"' in rig.worker.logs(tail=10**7)
    assert "EdgeWorkerCrashedError" in rig.worker.logs()
    assert not rig.read(rig.results, 1, timeout_s=2)

    committed = _committed_offset(rig, sent.partition)
    assert committed is None or committed <= sent.offset, "the failed window was committed"

    rig.restart(FALLWATCH_SWITCHER_MODEL_PATH=str(build_margin_switcher(tmp_path / "ok.onnx")))
    results = decoded(rig.read(rig.results, 1), "result")
    assert [(r["stream_id"], r["window_seq"], r["label"]) for r in results] == [(stream, 0, 1)]


def _committed_offset(rig: EdgeRig, partition: int) -> int | None:
    from kafka.structs import TopicPartition

    group = rig.worker.env["FALLWATCH_EDGE_GROUP"]
    consumer = rig.consumer_factory(group_id=group, enable_auto_commit=False)
    try:
        value = consumer.committed(TopicPartition(rig.frames, partition))
    finally:
        consumer.close()
    return None if value is None else int(value)


def test_outbox_alert_never_published_is_republished_with_the_same_id(
    rig_factory: Callable[..., EdgeRig], redis_prefix: str, stack: Any
) -> None:
    """Crash between the tracker's Lua commit and the alert publish: the alert sits in the
    outbox unacknowledged; the worker's outbox republisher must publish it (same id)."""
    import asyncio

    import redis.asyncio

    from schemas.records import Result
    from streams.core.settings import Settings
    from streams.events.tracker import EventTracker

    stream = f"cam-{uuid.uuid4().hex[:6]}"
    record = grey_window_record(stream, 7, CONFIDENT_FALL)
    result = Result.from_avro(
        {
            "stream_id": stream,
            "window_seq": 7,
            "capture_start_ns": record["capture_start_ns"],
            "capture_end_ns": record["capture_end_ns"],
            "p_fall": 0.95,
            "label": 1,
            "decided_by": "edge",
            "switcher_score": 0.1,
            "model_versions": {"edge": "e@1"},
            "latencies_s": {},
            "produced_at_ns": time.time_ns(),
            "snapshot_jpeg": None,
        }
    )

    async def commit_without_publishing() -> list[Any]:
        client = redis.asyncio.Redis.from_url(stack.redis_url)
        try:
            tracker = EventTracker(client, settings=Settings(redis_prefix=redis_prefix))
            # Committed 60 s ago and never acknowledged: as if the worker died right after.
            return await tracker.apply(result, now_ns=time.time_ns() - 60 * 1_000_000_000)
        finally:
            await client.aclose()

    async def still_unacked() -> list[Any]:
        client = redis.asyncio.Redis.from_url(stack.redis_url)
        try:
            tracker = EventTracker(client, settings=Settings(redis_prefix=redis_prefix))
            return await tracker.unacked(older_than_s=0)
        finally:
            await client.aclose()

    committed = asyncio.run(commit_without_publishing())
    assert [a.state for a in committed] == ["detected"]

    rig = rig_factory()
    alerts = alerts_of(rig.read(rig.alerts, 1, timeout_s=20))
    assert [a["id"] for a in alerts] == [committed[0].alert_id]
    assert alerts[0]["subject"] == stream and alerts[0]["data"]["first_window_seq"] == 7
    deadline = time.monotonic() + 10  # acknowledged (removed from the outbox) after delivery
    while asyncio.run(still_unacked()):
        assert time.monotonic() < deadline, "outbox entry never acknowledged"
        time.sleep(0.2)
