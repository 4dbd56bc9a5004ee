"""No record stops a worker (issue 19, item 1): structure-aware fuzzing of both workers.

Hypothesis builds VALID Avro frame windows (every field within its Avro type) carrying
hostile values — extreme and negative seqs and timestamps, NaN/zero/infinite fps, huge and
unicode stream ids, lying dimensions and frame counts, garbage payloads, the 7.5 kB H.264
bomb and 8192x8192 frames declared small — and drives each one:
- through the edge's whole batch path (``EdgeBatchProcessor.process``: decode, infer, route,
  encode, pending write, publish, delivery) between two good windows, with an in-memory
  producer that enforces the broker's message-size limit as Faust does (``ProducerSendError``)
  and an in-memory pending store that validates members as the Redis one does;
- wrapped in an offload request (hostile reason and edge values too) through the cloud
  worker's ``process``.
Every record must end as exactly one answer (result, or pending entry + offload request) or
exactly one dead letter with a ``reason`` header, and no exception may leave the batch.
Regression for: seq >= 2**53 raising in the pending write and stopping the edge worker; a
600 kB stream id making the keyed output exceed the producer limit (ProducerSendError is
not a KafkaError); the cloud worker retrying a poison error as if it were transient.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import ProducerSendError
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import schemas
from models.runtime.onnx_models import EdgeModel, Switcher
from streams.cloud.metrics import CloudMetrics
from streams.cloud.worker import CloudWorker
from streams.core.errors import POISON_REASONS
from streams.core.settings import Settings
from streams.edge.agent import EdgeBatchProcessor
from streams.edge.deps import LoadedModels, Publisher, Retrier
from streams.edge.inference import InboundMessage
from streams.edge.metrics import EdgeMetrics
from streams.events.client import RedisOutage
from streams.events.state import pending_member
from streams.kafka.deadletter import parse_headers
from streams.kafka.topics import max_message_bytes
from tests.hostile_windows import payloads
from tests.onnx_test_models import (
    CONFIDENT_FALL,
    FRAMES,
    SIDE,
    UNCERTAIN_FALL,
    build_margin_switcher,
    build_mean_pixel_edge,
    grey_window_record,
)

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
GOOD = "good-cam"
SETTINGS = Settings(audit_rate=0.0, snapshot_max_bytes=20_000)
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


# ---- in-memory Kafka and Redis ---------------------------------------------------------


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class SizeLimitedProducer:
    """Faust's producer as the workers see it: a record over the topic limit raises
    ``ProducerSendError`` (from aiokafka's ``MessageSizeTooLargeError``), as in production."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.limit = max_message_bytes(SETTINGS)

    def _record(self, topic: str, key: Any, value: Any, headers: Any) -> asyncio.Future[None]:
        size = len(key or b"") + len(value or b"") + sum(len(k) + len(v) for k, v in headers or [])
        if size > self.limit:
            raise ProducerSendError("Error while sending") from MessageSizeTooLargeError()
        self.sent.append(Sent(topic, key, value, list(headers or [])))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def send(self, topic: str, **kwargs: Any) -> asyncio.Future[None]:
        return self._record(topic, kwargs.get("key"), kwargs.get("value"), kwargs.get("headers"))


class AiokafkaLikeProducer(SizeLimitedProducer):
    """The cloud's aiokafka producer: the same limit raises ``MessageSizeTooLargeError``."""

    async def send(self, topic: str, **kwargs: Any) -> asyncio.Future[None]:
        try:
            return await super().send(topic, **kwargs)
        except ProducerSendError as exc:
            raise MessageSizeTooLargeError() from exc


class MemoryPending:
    """The pending-offload store in memory, with the Redis store's member validation."""

    def __init__(self) -> None:
        self.added: dict[str, bytes] = {}
        self.removed: list[str] = []

    async def add(self, stream_id: str, seq: int, deadline_ns: int, result: bytes) -> bool:
        self.added.setdefault(pending_member(stream_id, seq), result)
        return True

    async def remove_many(self, keys: Sequence[tuple[str, int]]) -> None:
        self.removed += [pending_member(s, q) for s, q in keys]

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        pass


# ---- hostile windows -------------------------------------------------------------------


def _stream_ids() -> st.SearchStrategy[str]:
    return st.one_of(
        st.from_regex(r"[A-Za-z0-9._:-]{1,128}", fullmatch=True),
        st.text(max_size=300),
        st.just(""),
        st.just("x" * 600_000),
        st.just("c" * 129),
        st.just("kam\u00e9ra-\U0001f600"),
    )


def _ns() -> st.SearchStrategy[int]:
    return st.one_of(
        st.integers(0, 2**62),
        st.integers(*INT64),
        st.sampled_from([0, -1, INT64[0], INT64[1]]),
    )


def _dims() -> st.SearchStrategy[int]:
    return st.one_of(
        st.just(SIDE),
        st.integers(-4, 40),
        st.sampled_from([120, 160, 1080, 1920, 8192, 8193, *INT32]),
        st.integers(*INT32),
    )


@st.composite
def hostile_windows(draw: st.DrawFn, bomb: bytes, big: bytes) -> dict[str, Any]:
    level = draw(st.sampled_from([CONFIDENT_FALL, UNCERTAIN_FALL, 13]))
    record = grey_window_record("cam-x", 3, level)
    hostile_values: dict[str, st.SearchStrategy[Any]] = {
        "stream_id": _stream_ids(),
        "window_seq": st.one_of(
            st.sampled_from([2**53 - 1, 2**53, 2**60, -1, *INT64]), st.integers(*INT64)
        ),
        "capture_start_ns": _ns(),
        "capture_end_ns": _ns(),
        "fps": st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from([0.0, -0.0, math.nan, math.inf, 8.0, 120.0, 121.0]),
        ),
        "width": _dims(),
        "height": _dims(),
        "frame_count": st.one_of(
            st.sampled_from([FRAMES, 64]), st.integers(-2, 70), st.integers(*INT32)
        ),
        "codec": st.sampled_from(["raw-gray8", "h264", "mjpeg", "vp9", "", "RAW-GRAY8"]),
    }
    # A few fields at a time, so each rule is reached on its own and not always masked by
    # an earlier one.
    fields = draw(st.lists(st.sampled_from(sorted(hostile_values)), max_size=3, unique=True))
    changes = {name: draw(hostile_values[name]) for name in fields}
    record |= changes
    # The named inputs, whole: the bomb with an honest header (decoded-size cap), an
    # offloaded window with seq 2**60, a 600 kB stream id.
    named = draw(st.sampled_from([None, None, None, "bomb", "seq", "long-id"]))
    if named == "bomb":
        return (
            record
            | {"width": 1920, "height": 1080, "frame_count": 64, "codec": "h264"}
            | {"payload": bomb}
        )
    if named == "seq":
        return grey_window_record("cam-x", 2**60, UNCERTAIN_FALL)
    if named == "long-id":
        return grey_window_record("x" * 600_000, 4, UNCERTAIN_FALL)
    payload = draw(
        st.one_of(
            st.just("keep"),
            st.just("consistent"),
            st.binary(max_size=3000),
            st.sampled_from([b"", bomb, big]),
        )
    )
    if payload == "consistent":
        count, height, width = record["frame_count"], record["height"], record["width"]
        size = count * height * width if min(count, height, width) > 0 else 0
        record["payload"] = bytes([level]) * size if 0 < size <= 200_000 else b"\x00"
    elif isinstance(payload, bytes):
        record["payload"] = payload
    assume(record["stream_id"] != GOOD)
    return record


def encoded(record: dict[str, Any]) -> bytes:
    return schemas.encode("frame_window", record, max_bytes=10**7)


# ---- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    return payloads(tmp_path_factory.getbasetemp() / "hostile-payloads")


@dataclass(frozen=True)
class EdgeParts:
    """The parts of the edge batch processor that outlive one example."""

    models: LoadedModels
    executor: ThreadPoolExecutor


@pytest.fixture(scope="module")
def edge_parts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeParts]:
    folder = tmp_path_factory.mktemp("hostile-models")
    models = LoadedModels(
        edge=EdgeModel.load(build_mean_pixel_edge(folder / "edge.onnx")),
        switcher=Switcher.load(build_margin_switcher(folder / "switcher.onnx")),
        threshold=0.5,
        versions={"edge": "edge@1", "switcher": "switcher@1"},
    )
    executor = ThreadPoolExecutor(max_workers=1)
    yield EdgeParts(models, executor)
    executor.shutdown(wait=True)


def edge_processor(
    parts: EdgeParts, producer: SizeLimitedProducer, pending: MemoryPending
) -> EdgeBatchProcessor:
    """The edge's batch processor on an in-memory producer and pending store."""
    metrics = EdgeMetrics()
    return EdgeBatchProcessor(
        SETTINGS,
        parts.models,
        pending,
        Publisher(SETTINGS, lambda: cast(Any, producer), metrics),
        Retrier(RedisOutage(0.01, worker="edge")),
        metrics,
        executor=parts.executor,
    )


def _message(offset: int, key: bytes, value: bytes) -> InboundMessage:
    return InboundMessage("frames", 0, offset, key, value, [("trace", b"t%d" % offset)])


def _fates(sent: list[Sent], source_offset: str) -> tuple[int, int]:
    """(answers, dead letters) of the record at ``source_offset`` among ``sent``."""
    dead = [
        s for s in sent if parse_headers(s.headers).get("fallwatch.dlq.offset") == source_offset
    ]
    for letter in dead:
        headers = parse_headers(letter.headers)
        assert headers["fallwatch.dlq.reason"] in POISON_REASONS, headers
        event(f"dead letter: {headers['fallwatch.dlq.reason']}")
        assert ("trace", b"t" + source_offset.encode()) in letter.headers
    answers = [s for s in sent if s.key != GOOD.encode() and not s.topic.endswith("deadletter")]
    if answers:
        event("answered")
    return len(answers), len(dead)


# ---- the properties --------------------------------------------------------------------
@FUZZ
@given(data=st.data())
def test_every_hostile_window_ends_as_one_answer_or_one_dead_letter_at_the_edge(
    edge_parts: EdgeParts, hostile: tuple[bytes, bytes], data: st.DataObject
) -> None:
    record = data.draw(hostile_windows(*hostile))
    producer, pending = SizeLimitedProducer(), MemoryPending()
    key = data.draw(st.sampled_from([b"cam-x", record["stream_id"].encode("utf-8")[:1000]]))
    batch = [
        _message(0, GOOD.encode(), encoded(grey_window_record(GOOD, 1, CONFIDENT_FALL))),
        _message(1, key, encoded(record)),
        _message(2, GOOD.encode(), encoded(grey_window_record(GOOD, 2, UNCERTAIN_FALL))),
    ]
    # No exception may leave the batch (the agent would stop the worker on one).
    asyncio.run(edge_processor(edge_parts, producer, pending).process(batch))

    good = [s for s in producer.sent if s.key == GOOD.encode()]
    assert sorted(s.topic for s in good) == [SETTINGS.topic_offload, SETTINGS.topic_results]
    answers, dead = _fates(producer.sent, "1")
    hostile_pending = [m for m in pending.added if not m.startswith(f'["{GOOD}"')]
    if dead:
        assert (dead, answers, hostile_pending) == (1, 0, [])
    else:  # answered: one result, or one offload request after its pending entry
        topics = [s.topic for s in producer.sent if s.key != GOOD.encode()]
        assert topics in ([SETTINGS.topic_results], [SETTINGS.topic_offload])
        assert len(hostile_pending) == (1 if topics == [SETTINGS.topic_offload] else 0)


def _offload(window: dict[str, Any], edge: dict[str, Any], reason: str, **more: Any) -> bytes:
    request = {
        "window": window,
        "edge": edge,
        "reason": reason,
        "model_versions": more.get("model_versions", {"edge": "e@1"}),
        "offloaded_at_ns": more.get("offloaded_at_ns", 1_000),
        "deadline_ns": more.get("deadline_ns", 2**62),
    }
    return schemas.encode("offload_request", request, max_bytes=10**7)


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class MeanPixelModel:
    def predict(self, windows: Sequence[np.ndarray]) -> Any:
        p = np.array([float(w.mean()) / 255.0 for w in windows])
        return type("Out", (), {"probs": np.stack([1 - p, p], axis=1)})()


@FUZZ
@given(data=st.data())
def test_every_hostile_offload_ends_as_one_result_or_one_dead_letter_in_the_cloud(
    hostile: tuple[bytes, bytes], data: st.DataObject, tmp_path: Path
) -> None:
    window = data.draw(hostile_windows(*hostile))
    edge = {
        "p_fall": data.draw(st.floats(allow_nan=True, allow_infinity=True)),
        "switcher_score": data.draw(st.floats(allow_nan=True, allow_infinity=True)),
        "threshold": 0.5,
        "embedding": data.draw(st.none() | st.lists(st.floats(width=32), max_size=4)),
    }
    reason = data.draw(st.sampled_from(["uncertain", "uncertain", "audit", "because", ""]))
    more = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                "offloaded_at_ns": _ns(),
                "deadline_ns": _ns(),
                "model_versions": st.sampled_from(
                    [{}, {"edge": "\u00e9" * 50}, {"edge": "m" * 300_000}]
                ),
            },
        )
    )
    good = _offload(
        grey_window_record(GOOD, 1, CONFIDENT_FALL), edge | {"p_fall": 0.5}, "uncertain"
    )
    records = [
        Record("offload", 0, 0, GOOD.encode(), good, []),
        Record(
            "offload", 0, 1, b"cam-x", _offload(window, edge, reason, **more), [("trace", b"t1")]
        ),
    ]
    producer, pending = AiokafkaLikeProducer(), MemoryPending()
    with ThreadPoolExecutor(max_workers=1) as executor:
        worker = CloudWorker(
            SETTINGS,
            MeanPixelModel(),
            "cloud@1",
            producer,
            pending,
            CloudMetrics(),
            executor=executor,
        )
        outcome = asyncio.run(worker.process(records))

    good_results = [s for s in producer.sent if s.key == GOOD.encode()]
    assert [s.topic for s in good_results] == [SETTINGS.topic_results]
    answers, dead = _fates(producer.sent, "1")
    audited = outcome.audits == 1
    assert answers + dead + int(audited) == 1, (answers, dead, outcome)
    assert len(pending.removed) == 1 + answers
