"""The events agent without Kafka or Redis: typed results in, alerts out, poison dead-lettered.

``ResultsProcessor`` is built with fakes for exactly the parts it takes (tracker, publisher,
retrier, metrics); the tracker fake runs the pure-Python reference rules.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from importlib import resources
from typing import Any, cast

import jsonschema
import pytest

import schemas
from schemas.records import Result
from streams.core.errors import MessageSchemaError, MessageValueError
from streams.core.settings import Settings
from streams.edge.deps import Publisher, Retrier
from streams.edge.inference import InboundMessage
from streams.edge.metrics import EdgeMetrics
from streams.events.agent import ResultsProcessor, parse_result_message
from streams.events.client import RedisOutage
from streams.events.reference import ReferenceTracker
from streams.events.tracker import ApplyOutcome, EventTracker, OutboxBatch, TrackerConfig
from streams.kafka.deadletter import parse_headers
from tests.event_cases import counting_tokens, result

SETTINGS = Settings()


def message(value: bytes | None, offset: int = 0) -> InboundMessage:
    return InboundMessage("fallwatch.results", 0, offset, b"cam-1", value, [])


def test_a_results_record_is_read_as_a_typed_result() -> None:
    record = result(7, 1)
    parsed = parse_result_message(message(record.encode()))
    assert isinstance(parsed, Result)
    assert parsed == record


@pytest.mark.parametrize(
    ("value", "error", "reason"),
    [
        (None, MessageSchemaError, "schema"),
        (b"\x00\x00\x00\x00\x03 not a result", MessageSchemaError, "schema"),
        (
            schemas.encode("result", result(7, 1).to_avro() | {"label": 2}),
            MessageValueError,
            "invalid",
        ),
        (
            schemas.encode("result", result(7, 1).to_avro() | {"stream_id": "no spaces"}),
            MessageValueError,
            "invalid",
        ),
    ],
)
def test_records_that_are_no_result_are_poison_with_their_reason(
    value: bytes | None, error: type[Exception], reason: str
) -> None:
    with pytest.raises(error) as caught:
        parse_result_message(message(value))
    assert type(caught.value) is error
    assert caught.value.reason == reason  # type: ignore[attr-defined]


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = []

    async def send(self, topic: str, **record: Any) -> Any:
        self.sent.append((topic, record["key"], record["value"], list(record["headers"] or [])))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class _Tracker:
    """The tracker's interface over the reference rules (no Redis, no outbox)."""

    def __init__(self) -> None:
        self.rules = ReferenceTracker(
            TrackerConfig(resolve_after_windows=2, cooldown_windows=1),
            token_factory=counting_tokens(),
        )
        self.acked: list[str] = []

    async def apply_result(self, result: Result) -> ApplyOutcome:
        return self.rules.apply(result, now_ns=1_800_000_000_000_000_000)

    async def ack(self, alert_ids: Iterable[str]) -> int:
        ids = list(alert_ids)
        self.acked += ids
        return len(ids)

    async def unacked_entries(self, older_than_s: float = 5.0) -> OutboxBatch:
        return OutboxBatch([], [])


async def test_processor_built_from_fakes_publishes_acks_and_dead_letters() -> None:
    producer, tracker, metrics = _Producer(), _Tracker(), EdgeMetrics()
    processor = ResultsProcessor(
        SETTINGS,
        cast(EventTracker, tracker),
        Publisher(SETTINGS, lambda: cast(Any, producer), metrics),
        Retrier(RedisOutage(0.01, worker="edge")),
        metrics,
    )
    batch = [
        message(result(10, 1).encode(), offset=0),
        message(b"garbage", offset=1),
        message(result(11, 0).encode(), offset=2),
        message(result(12, 0).encode(), offset=3),
    ]
    await processor.process(batch)

    alerts = [json.loads(v or b"") for t, _, v, _ in producer.sent if t == SETTINGS.topic_alerts]
    assert [a["data"]["state"] for a in alerts] == ["detected", "resolved"]
    schema = json.loads(resources.files("schemas").joinpath("alert.v1.json").read_text())
    for alert in alerts:
        jsonschema.validate(alert, schema, format_checker=jsonschema.FormatChecker())
    assert tracker.acked == [a["id"] for a in alerts]
    dead = [h for t, _, _, h in producer.sent if t == SETTINGS.topic_deadletter]
    assert len(dead) == 1
    headers = parse_headers(dead[0])
    assert (headers["fallwatch.dlq.offset"], headers["fallwatch.dlq.reason"]) == ("1", "schema")
    assert await processor.republish_outbox() == 0
