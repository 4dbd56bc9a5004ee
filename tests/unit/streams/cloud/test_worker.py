"""Cloud worker batch logic with fake producer, model and pending store (no network)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from prometheus_client import REGISTRY

import schemas
from models.runtime.errors import InferenceError, WindowError
from models.runtime.onnx_models import CloudModel
from streams.cloud.metrics import CloudMetrics
from streams.cloud.worker import CloudModelFailingError, CloudWorker, CloudWorkerError
from streams.core.settings import Settings
from streams.core.video import encode_window
from streams.kafka.batches import commit_offsets
from streams.kafka.deadletter import parse_headers
from tests.onnx_test_models import build_failing_cloud

W, H = 32, 24


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class FakeProducer:
    def __init__(self, log: list[str], fail: bool = False) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, Any]] = []
        self._log = log
        self._fail = fail

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Any = None
    ) -> asyncio.Future[None]:
        self.sent.append((topic, value, key, headers))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def deliver() -> None:
            self._log.append(f"delivered:{topic}")
            if self._fail:
                from aiokafka.errors import KafkaTimeoutError

                fut.set_exception(KafkaTimeoutError())
            else:
                fut.set_result(None)

        asyncio.get_running_loop().call_later(0.01, deliver)
        return fut


class FakePending:
    def __init__(self, log: list[str]) -> None:
        self.removed: list[tuple[str, int]] = []
        self._log = log

    async def remove_many(self, keys: Sequence[tuple[str, int]]) -> None:
        self._log.append("removed")
        self.removed += list(keys)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        pass


@dataclass
class Out:
    probs: np.ndarray


class FakeModel:
    """p_fall = mean pixel / 255; refuses windows whose first pixel is 7; onnxruntime
    "fails" (InferenceError: the model's fault) on windows whose first pixel is 99."""

    def predict(self, windows: Sequence[np.ndarray]) -> Out:
        if any(int(w[0, 0, 0, 0]) == 7 for w in windows):
            raise WindowError("bad window")
        if any(int(w[0, 0, 0, 0]) == 99 for w in windows):
            raise InferenceError("onnxruntime failed")
        p = np.array([float(w.mean()) / 255.0 for w in windows])
        return Out(np.stack([1 - p, p], axis=1))


def offload_bytes(seq: int, value: int, reason: str = "uncertain", edge_p: float = 0.4) -> bytes:
    frames = np.full((16, H, W, 3), value, dtype=np.uint8)
    window = {
        "stream_id": "camA",
        "window_seq": seq,
        "capture_start_ns": 1_000,
        "capture_end_ns": 2_000,
        "fps": 8.0,
        "width": W,
        "height": H,
        "frame_count": 16,
        "codec": "raw-gray8",
        "payload": encode_window(frames, fps=8.0, codec="raw-gray8"),
    }
    request = {
        "window": window,
        "edge": {"p_fall": edge_p, "switcher_score": 0.9, "threshold": 0.5, "embedding": None},
        "reason": reason,
        "model_versions": {"edge": "e@1", "switcher": "s@1"},
        "offloaded_at_ns": 1_500,
        "deadline_ns": 2**62,
    }
    return schemas.encode("offload_request", request)


def make_worker(
    log: list[str], *, fail: bool = False, model: Any = None, max_model_failures: int = 16
) -> tuple[CloudWorker, FakeProducer, FakePending]:
    producer = FakeProducer(log, fail=fail)
    pending = FakePending(log)
    worker = CloudWorker(
        Settings(snapshot_max_bytes=20_000, cloud_max_model_failures=max_model_failures),
        model if model is not None else FakeModel(),
        "cloud@1",
        producer,
        pending,
        CloudMetrics(),
        executor=ThreadPoolExecutor(max_workers=1),
    )
    return worker, producer, pending


def rec(offset: int, value: bytes | None, partition: int = 0) -> Record:
    return Record("off", partition, offset, b"camA", value)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_uncertain_windows_get_cloud_results_before_pending_removal() -> None:
    before = sample("fallwatch_results_total", decided_by="cloud")
    log: list[str] = []
    worker, producer, pending = make_worker(log)
    outcome = await worker.process([rec(0, offload_bytes(5, 250)), rec(1, offload_bytes(6, 10))])
    results = [schemas.decode("result", v) for t, v, _, _ in producer.sent]
    assert [r["window_seq"] for r in results] == [5, 6]
    assert [r["label"] for r in results] == [1, 0]
    assert {r["decided_by"] for r in results} == {"cloud"}
    assert results[0]["model_versions"] == {"edge": "e@1", "switcher": "s@1", "cloud": "cloud@1"}
    assert results[0]["snapshot_jpeg"] and results[1]["snapshot_jpeg"] is None
    assert pending.removed == [("camA", 5), ("camA", 6)]
    # Every delivery is acknowledged before the pending entries go.
    assert log.index("removed") > max(i for i, e in enumerate(log) if e.startswith("delivered"))
    assert outcome.results == 2 and outcome.dead_letters == 0
    assert sample("fallwatch_results_total", decided_by="cloud") == before + 2


async def test_audit_requests_produce_no_result() -> None:
    log: list[str] = []
    worker, producer, pending = make_worker(log)
    agreed = sample("fallwatch_audit_agreement_total", agree="true")
    outcome = await worker.process([rec(0, offload_bytes(1, 250, reason="audit", edge_p=0.9))])
    assert producer.sent == [] and pending.removed == []
    assert outcome.audits == 1
    assert sample("fallwatch_audit_agreement_total", agree="true") == agreed + 1


async def test_poison_messages_are_dead_lettered_and_the_rest_processed() -> None:
    log: list[str] = []
    worker, producer, _ = make_worker(log)
    records = [
        rec(0, b"garbage"),
        rec(1, offload_bytes(2, 7)),  # the model refuses this window
        rec(2, offload_bytes(3, 200)),
        rec(3, None),
    ]
    outcome = await worker.process(records)
    topics = [t for t, _, _, _ in producer.sent]
    dlq = [(v, h) for t, v, _, h in producer.sent if t == worker._settings.topic_deadletter]
    assert topics.count(worker._settings.topic_results) == 1
    assert outcome.dead_letters == 3 and len(dlq) == 3
    assert dlq[0][0] == b"garbage"  # original bytes unchanged
    headers = dict(dlq[0][1])
    assert headers["fallwatch.dlq.offset"] == b"0"
    assert headers["fallwatch.dlq.error_class"] == b"MessageSchemaError"
    classes = sorted(dict(h)["fallwatch.dlq.error_class"] for _, h in dlq)
    assert classes == [b"MessageSchemaError", b"MessageSchemaError", b"WindowError"]


async def test_failed_delivery_raises_and_keeps_pending_entries() -> None:
    log: list[str] = []
    worker, _, pending = make_worker(log, fail=True)
    with pytest.raises(CloudWorkerError):
        await worker.process([rec(0, offload_bytes(5, 250))])
    assert pending.removed == []


def test_commit_offsets_are_next_offset_per_partition() -> None:
    offsets = commit_offsets([rec(4, b""), rec(9, b""), rec(2, b"", partition=3)])
    assert {(tp.partition, off) for tp, off in offsets.items()} == {(0, 10), (3, 3)}


DEAD_LETTER_SCHEMA = json.loads(
    resources.files("schemas").joinpath("dead_letter.v1.json").read_text(encoding="utf-8")
)


async def test_cloud_dead_letters_come_from_the_one_builder_and_match_the_schema() -> None:
    """Regression (issue 19): the cloud worker built its own dead letters, without
    reason/worker/failed_at_ns and without the message's own headers."""
    log: list[str] = []
    worker, producer, _ = make_worker(log)
    traced = Record("off", 2, 41, b"camA", b"garbage", [("traceparent", b"00-abc-01")])
    await worker.process([traced, rec(42, offload_bytes(2, 7), partition=2)])
    dead = [(v, h) for t, v, _, h in producer.sent if t == worker._settings.topic_deadletter]
    assert len(dead) == 2
    check = jsonschema.Draft202012Validator(DEAD_LETTER_SCHEMA)
    for _, headers in dead:
        decoded = {name: raw.decode("utf-8") for name, raw in headers}
        check.validate(decoded)
        assert decoded["fallwatch.dlq.worker"] == "cloud"
        assert decoded["fallwatch.dlq.reason"] in ("schema", "poison")
        assert int(decoded["fallwatch.dlq.failed_at_ns"]) > 0
        assert parse_headers(headers)["fallwatch.dlq.source_topic"] == "off"
    assert dead[0][0] == b"garbage"
    assert ("traceparent", b"00-abc-01") in dead[0][1]  # the message's own headers kept


async def test_windows_the_model_rejects_never_count_as_model_failures() -> None:
    log: list[str] = []
    worker, _, _ = make_worker(log, max_model_failures=2)
    outcome = await worker.process([rec(i, offload_bytes(i, 7)) for i in range(5)])
    assert outcome.dead_letters == 5 and worker.model_failures_in_row == 0


async def test_a_success_resets_the_count_of_model_failures() -> None:
    log: list[str] = []
    worker, _, _ = make_worker(log, max_model_failures=3)
    await worker.process([rec(0, offload_bytes(0, 99)), rec(1, offload_bytes(1, 99))])
    assert worker.model_failures_in_row == 2
    await worker.process([rec(2, offload_bytes(2, 200))])
    assert worker.model_failures_in_row == 0
    outcome = await worker.process([rec(3, offload_bytes(3, 99)), rec(4, offload_bytes(4, 99))])
    assert outcome.dead_letters == 2  # 2 in a row again: below the limit of 3


async def test_a_model_failing_on_every_window_stops_the_worker_without_publishing(
    tmp_path: Path,
) -> None:
    """Regression (issue 19): a cloud model failing on every window dead-lettered and
    committed every offload while /readyz stayed ready."""
    model = CloudModel.load(build_failing_cloud(tmp_path / "failing.onnx"))  # loads, warms up
    log: list[str] = []
    worker, producer, pending = make_worker(log, model=model, max_model_failures=3)
    first = await worker.process([rec(0, offload_bytes(0, 200)), rec(1, offload_bytes(1, 10))])
    assert first.dead_letters == 2 and worker.model_failures_in_row == 2
    sent = list(producer.sent)
    with pytest.raises(CloudModelFailingError, match="failed on 4 windows in a row"):
        await worker.process([rec(2, offload_bytes(2, 200)), rec(3, offload_bytes(3, 10))])
    assert producer.sent == sent and pending.removed == []  # nothing of the batch went out
