"""Unit tests of the edge agent without Kafka or Redis: the decode, infer and route stages,
and the batch processor and fallback sweeper built with fakes for their dependencies."""

from __future__ import annotations

import asyncio
import functools
import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import numpy as np
import pytest
from PIL import Image

import schemas
import schemas.records
from models.runtime.errors import InferenceError, WindowError
from models.runtime.onnx_models import EdgeModel, Switcher
from streams.core.errors import (
    MessageSchemaError,
    MessageTooLargeError,
    WindowDecodeError,
    WindowDimensionsError,
)
from streams.core.settings import Settings
from streams.edge.agent import EdgeBatchProcessor, batch_wait_s
from streams.edge.deps import LoadedModels, Publisher, PublishError, Retrier
from streams.edge.fallback import FallbackSweeper
from streams.edge.inference import (
    InboundMessage,
    compute_batch,
    decode_frame_message,
    decode_stage,
    infer_stage,
    route_stage,
)
from streams.edge.metrics import EdgeMetrics
from streams.events.client import RedisOutage
from streams.events.state import PendingEntry
from tests.onnx_test_models import (
    CONFIDENT_FALL,
    CONFIDENT_NO_FALL,
    UNCERTAIN_FALL,
    build_margin_switcher,
    build_mean_pixel_edge,
    grey_window_record,
)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[EdgeModel, Switcher]:
    folder = tmp_path_factory.mktemp("models")
    edge = EdgeModel.load(build_mean_pixel_edge(folder / "edge.onnx"))
    switcher = Switcher.load(build_margin_switcher(folder / "switcher.onnx"))
    return edge, switcher


@pytest.fixture
def settings() -> Settings:
    return Settings(audit_rate=0.0, snapshot_max_bytes=20_000, max_window_bytes=200_000)


def message(value: bytes | None, offset: int = 0) -> InboundMessage:
    return InboundMessage(
        topic="frames", partition=1, offset=offset, key=b"cam", value=value, headers=[]
    )


def window_message(seq: int, level: int, **changes: Any) -> InboundMessage:
    record = grey_window_record("cam", seq, level) | changes
    return message(schemas.encode("frame_window", record, max_bytes=10**7), offset=seq)


def test_batch_routes_each_window_and_isolates_poison(
    models: tuple[EdgeModel, Switcher], settings: Settings
) -> None:
    edge, switcher = models
    batch = [
        window_message(0, CONFIDENT_FALL),
        message(b"not avro at all", offset=1),
        window_message(2, CONFIDENT_NO_FALL),
        window_message(3, 10, width=5000, height=5000),
        window_message(4, UNCERTAIN_FALL),
        message(None, offset=5),
    ]
    out = compute_batch(batch, edge=edge, switcher=switcher, threshold=0.5, settings=settings)

    routed = {w.window.window_seq: w for w in out.routed}
    assert sorted(routed) == [0, 2, 4]
    assert (routed[0].decision.path, routed[0].decision.label) == ("edge", 1)
    assert (routed[2].decision.path, routed[2].decision.label) == ("edge", 0)
    assert (routed[4].decision.path, routed[4].decision.offload_reason) == ("offload", "uncertain")
    assert routed[4].decision.label == 1  # the edge's own answer, kept for the fallback
    assert routed[0].p_fall == pytest.approx(CONFIDENT_FALL / 255, abs=1e-3)
    assert routed[0].embedding is not None and len(routed[0].embedding) == 1
    poisoned = {m.offset: type(e) for m, e in out.poisoned}
    assert poisoned == {1: MessageSchemaError, 3: WindowDimensionsError, 5: MessageSchemaError}


def test_snapshot_only_on_falls_and_is_a_jpeg_within_the_cap(
    models: tuple[EdgeModel, Switcher], settings: Settings
) -> None:
    edge, switcher = models
    out = compute_batch(
        [window_message(0, CONFIDENT_FALL), window_message(1, CONFIDENT_NO_FALL)],
        edge=edge,
        switcher=switcher,
        threshold=0.5,
        settings=settings,
    )
    by_seq = {w.window.window_seq: w for w in out.routed}
    snapshot = by_seq[0].snapshot_jpeg
    assert snapshot is not None and len(snapshot) <= settings.snapshot_max_bytes
    assert Image.open(io.BytesIO(snapshot)).format == "JPEG"
    assert by_seq[1].snapshot_jpeg is None


def test_decode_rejects_oversize_record_before_parsing(settings: Settings) -> None:
    with pytest.raises(MessageTooLargeError):
        decode_frame_message(message(b"\x00" * (settings.max_window_bytes + 1)), settings)


def test_decode_rejects_a_payload_that_does_not_match_its_header(settings: Settings) -> None:
    short = window_message(0, 10, payload=b"\x00" * 10)
    with pytest.raises(WindowDecodeError):
        decode_frame_message(short, settings)


class _FlakyEdge:
    """Delegates to a real edge model but rejects windows whose mean is below 5."""

    def __init__(self, edge: EdgeModel, error: type[Exception]) -> None:
        self.edge, self.error = edge, error

    def predict(self, windows: list[np.ndarray]) -> Any:
        if any(w.mean() < 5 for w in windows):
            raise self.error("bad window")
        return self.edge.predict(windows)


def test_a_window_the_model_rejects_is_poisoned_and_the_rest_answered(
    models: tuple[EdgeModel, Switcher], settings: Settings
) -> None:
    edge, switcher = models
    flaky = cast(EdgeModel, _FlakyEdge(edge, WindowError))
    batch = [window_message(0, CONFIDENT_FALL), window_message(1, 2), window_message(2, 200)]
    out = compute_batch(batch, edge=flaky, switcher=switcher, threshold=0.5, settings=settings)
    assert sorted(w.window.window_seq for w in out.routed) == [0, 2]
    assert [(m.offset, type(e)) for m, e in out.poisoned] == [(1, WindowDecodeError)]


def test_inference_failing_on_every_window_is_not_blamed_on_the_input(
    models: tuple[EdgeModel, Switcher], settings: Settings
) -> None:
    edge, switcher = models
    broken = cast(EdgeModel, _FlakyEdge(edge, InferenceError))
    with pytest.raises(InferenceError):
        compute_batch(
            [window_message(0, 1), window_message(1, 2)],
            edge=broken,
            switcher=switcher,
            threshold=0.5,
            settings=settings,
        )


def test_inbound_message_keeps_headers_and_position() -> None:
    class _Msg:
        topic, partition, offset, timestamp = "frames", 3, 42, 1.5
        key, value = b"cam", b"v"
        headers = (("trace", b"1"), ("x", b"2"))

    class _Event:
        message = _Msg()

    got = InboundMessage.from_event(cast(Any, _Event()))
    assert (got.topic, got.partition, got.offset, got.key, got.value) == (
        "frames",
        3,
        42,
        b"cam",
        b"v",
    )
    assert got.headers == [("trace", b"1"), ("x", b"2")]


def test_zero_batch_wait_never_becomes_faust_wait_forever() -> None:
    # faust's take(within=0) means "no timeout": a partial batch would wait until full.
    assert batch_wait_s(Settings(edge_batch_wait_s=0.0)) > 0
    assert batch_wait_s(Settings(edge_batch_wait_s=0.02)) == 0.02


async def test_a_record_over_the_producer_limit_is_poison_and_a_broker_refusal_is_not() -> None:
    # Regression (issue 19): Faust wraps aiokafka's MessageSizeTooLargeError in
    # ProducerSendError, which is not a KafkaError, and the worker went fatal on it.
    from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
    from faust.exceptions import ProducerSendError

    class Producer:
        def __init__(self, cause: Exception) -> None:
            self.cause = cause

        async def send(self, topic: str, **_: Any) -> Any:
            raise ProducerSendError("Error while sending") from self.cause

    for cause, expected in (
        (MessageSizeTooLargeError(), MessageTooLargeError),
        (KafkaTimeoutError(), PublishError),
    ):
        producer: Any = Producer(cause)
        publisher = Publisher(Settings(), functools.partial(lambda p: p, producer), EdgeMetrics())
        with pytest.raises(expected):
            await publisher.publish("t", b"k", b"v")


def test_batch_metrics_count_edge_results_and_their_end_to_end_time(
    models: tuple[EdgeModel, Switcher], settings: Settings
) -> None:
    # Regression: the metrics read the window as a dict after the typed records came in; the
    # AttributeError was swallowed and every batch's routed/results counters went missing.
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    edge, switcher = models
    out = compute_batch(
        [window_message(0, CONFIDENT_FALL)],
        edge=edge,
        switcher=switcher,
        threshold=0.5,
        settings=settings,
    )
    results = sample("fallwatch_results_total", decided_by="edge")
    e2e = sample("fallwatch_end_to_end_seconds_count", path="edge")
    stages = ("decode", "edge", "switcher", "route", "publish")
    counts = {stage: sample("fallwatch_stage_seconds_count", stage=stage) for stage in stages}
    EdgeMetrics().edge_batch(out, size=1, publish_s=0.001)
    assert sample("fallwatch_results_total", decided_by="edge") == results + 1
    assert sample("fallwatch_end_to_end_seconds_count", path="edge") == e2e + 1
    for stage in stages:  # every stage of the batch is timed, the route stage included
        assert sample("fallwatch_stage_seconds_count", stage=stage) == counts[stage] + 1


# ---- the stages one by one ---------------------------------------------------------------


def test_stages_compose_to_compute_batch(
    models: tuple[EdgeModel, Switcher], settings: Settings
) -> None:
    edge, switcher = models
    batch = [
        window_message(0, CONFIDENT_FALL),
        message(b"garbage", offset=1),
        window_message(2, UNCERTAIN_FALL),
    ]
    decoded = decode_stage(batch, settings)
    assert [d.window.window_seq for d in decoded.decoded] == [0, 2]
    assert [(m.offset, type(e)) for m, e in decoded.poisoned] == [(1, MessageSchemaError)]
    inferred = infer_stage([d.frames for d in decoded.decoded], edge, switcher)
    assert len(inferred.scores) == 2
    routed = route_stage(decoded.decoded, inferred.scores, threshold=0.5, settings=settings)
    assert routed.poisoned == []
    whole = compute_batch(batch, edge=edge, switcher=switcher, threshold=0.5, settings=settings)
    staged = [(w.window.window_seq, w.decision, w.p_fall, w.switcher_score) for w in routed.routed]
    assert staged == [
        (w.window.window_seq, w.decision, w.p_fall, w.switcher_score) for w in whole.routed
    ]
    assert [m.offset for m, _ in whole.poisoned] == [1]
    assert whole.cpu_s > 0  # the computing thread's CPU for the batch, for the bench's split


def test_infer_stage_isolates_rejected_windows_and_route_stage_poisons_them(
    models: tuple[EdgeModel, Switcher], settings: Settings
) -> None:
    edge, switcher = models
    flaky = cast(EdgeModel, _FlakyEdge(edge, WindowError))
    decoded = decode_stage([window_message(0, 2), window_message(1, CONFIDENT_FALL)], settings)
    inferred = infer_stage([d.frames for d in decoded.decoded], flaky, switcher)
    assert [isinstance(s, WindowError) for s in inferred.scores] == [True, False]
    routed = route_stage(decoded.decoded, inferred.scores, threshold=0.5, settings=settings)
    assert [w.window.window_seq for w in routed.routed] == [1]
    assert [(m.offset, type(e)) for m, e in routed.poisoned] == [(0, WindowDecodeError)]
    broken = cast(EdgeModel, _FlakyEdge(edge, InferenceError))
    with pytest.raises(InferenceError):
        infer_stage([decoded.decoded[0].frames], broken, switcher)
    assert infer_stage([], broken, switcher).scores == []


# ---- the batch processor and the sweeper with fakes ---------------------------------------


class _Producer:
    """Records what is queued, in order; every delivery succeeds."""

    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.log = log

    async def send(self, topic: str, **record: Any) -> Any:
        self.log.append(("send", (topic, record["key"], record["value"])))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class _Pending:
    """The pending store in memory (add for the agent; due/remove/count for the sweeper)."""

    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.log = log
        self.entries: dict[tuple[str, int], bytes] = {}

    async def add(self, stream_id: str, seq: int, deadline_ns: int, fallback: bytes) -> bool:
        self.log.append(("pending_add", (stream_id, seq)))
        self.entries[(stream_id, seq)] = fallback
        return True

    async def due(self, now_ns: int | None = None, *, limit: int = 256) -> list[PendingEntry]:
        return [PendingEntry(s, q, data) for (s, q), data in list(self.entries.items())[:limit]]

    async def remove(self, stream_id: str, seq: int) -> bool:
        return self.entries.pop((stream_id, seq), None) is not None

    async def count(self) -> int:
        return len(self.entries)


def _loaded(models: tuple[EdgeModel, Switcher]) -> LoadedModels:
    edge, switcher = models
    return LoadedModels(edge, switcher, 0.5, {"edge": "edge@1", "switcher": "switcher@1"})


async def test_processor_built_from_fakes_writes_pending_before_the_offload_and_sweeps_it(
    models: tuple[EdgeModel, Switcher], settings: Settings
) -> None:
    log: list[tuple[str, Any]] = []
    metrics = EdgeMetrics()
    publisher = Publisher(settings, lambda: cast(Any, _Producer(log)), metrics)
    retrier = Retrier(RedisOutage(0.01, worker="edge"))
    pending = _Pending(log)
    with ThreadPoolExecutor(max_workers=1) as executor:
        processor = EdgeBatchProcessor(
            settings, _loaded(models), pending, publisher, retrier, metrics, executor=executor
        )
        await processor.process(
            [window_message(0, CONFIDENT_FALL), window_message(1, UNCERTAIN_FALL)]
        )
    steps = [(kind, item[0] if kind == "send" else item) for kind, item in log]
    assert steps == [
        ("send", settings.topic_results),
        ("pending_add", ("cam", 1)),
        ("send", settings.topic_offload),
    ]
    edge_result = schemas.records.parse_result(log[0][1][2])
    assert (edge_result.window_seq, edge_result.decided_by, edge_result.label) == (0, "edge", 1)
    request = schemas.records.parse_offload_request(log[2][1][2])
    assert (request.reason, request.edge.threshold) == ("uncertain", 0.5)
    assert dict(request.model_versions) == {"edge": "edge@1", "switcher": "switcher@1"}

    log.clear()
    sweeper = FallbackSweeper(settings, pending, publisher, retrier, metrics)
    assert await sweeper.sweep_once() == 1
    assert [item[0] for _, item in log] == [settings.topic_results]
    fallback = schemas.records.parse_result(log[0][1][2])
    assert (fallback.window_seq, fallback.decided_by) == (1, "edge-fallback")
    assert await pending.count() == 0
    assert await sweeper.sweep_once() == 0
