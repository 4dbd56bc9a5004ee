"""The outbox cannot be blocked (issue 19 item 6), on the real edge worker, Kafka and Redis.

Outbox entries committed long ago and never acknowledged, the OLDEST ones unpublishable
(an alert whose CloudEvent is over the alerts topic's limit, an entry that is not an
alert at all): the worker's outbox republisher dead-letters and drops those and publishes
the good alerts behind them, without stopping.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from importlib import resources
from typing import Any

import jsonschema
import pytest
import redis.asyncio

from schemas.records import Result
from streams.core.settings import Settings
from streams.events.state import outbox_keys
from streams.events.tracker import EventTracker
from streams.kafka.deadletter import parse_headers
from tests.integration.edge_rig import EdgeRig, alerts_of, rig_factory

pytestmark = pytest.mark.integration

__all__ = ["rig_factory"]  # the fixture, imported for pytest


def _fall(stream: str, snapshot: bytes | None) -> Result:
    now = time.time_ns()
    return Result.from_avro(
        {
            "stream_id": stream,
            "window_seq": 1,
            "capture_start_ns": now - 2 * 10**9,
            "capture_end_ns": now,
            "p_fall": 0.95,
            "label": 1,
            "decided_by": "edge",
            "switcher_score": 0.1,
            "model_versions": {"edge": "e@1"},
            "latencies_s": {},
            "produced_at_ns": now,
            "snapshot_jpeg": snapshot,
        }
    )


async def _commit(url: str, prefix: str, streams: list[tuple[str, bytes | None]]) -> list[str]:
    """Commit one detected alert per stream, oldest first, as if the worker died before
    publishing; then a malformed entry older than all of them. Returns the alert ids."""
    client = redis.asyncio.Redis.from_url(url)
    try:
        tracker = EventTracker(client, settings=Settings(redis_prefix=prefix))
        base = time.time_ns() - 120 * 10**9
        ids = []
        for i, (stream, snapshot) in enumerate(streams):
            (alert,) = await tracker.apply(_fall(stream, snapshot), now_ns=base + i * 10**9)
            ids.append(alert.alert_id)
        outbox, outbox_t = outbox_keys(prefix)
        await client.hset(outbox, "not-an-alert", b"{not json")
        await client.zadd(outbox_t, {"not-an-alert": (base - 10**9) // 10**6})
        return ids
    finally:
        await client.aclose()


async def _outbox_size(url: str, prefix: str) -> tuple[int, int]:
    client = redis.asyncio.Redis.from_url(url)
    try:
        outbox, outbox_t = outbox_keys(prefix)
        return int(await client.hlen(outbox)), int(await client.zcard(outbox_t))
    finally:
        await client.aclose()


def test_issue19_unpublishable_alerts_are_dead_lettered_and_the_rest_go_out(
    rig_factory: Callable[..., EdgeRig], redis_prefix: str, stack: Any
) -> None:
    tag = uuid.uuid4().hex[:6]
    oversized = b"\xff\xd8" + b"\x00" * 900_000  # base64 in the CloudEvent: ~1.2 MB
    ids = asyncio.run(
        _commit(
            stack.redis_url,
            redis_prefix,
            [(f"big-{tag}", oversized), (f"a-{tag}", None), (f"b-{tag}", None)],
        )
    )
    too_big, good = ids[0], ids[1:]

    rig = rig_factory()
    pid = rig.worker.pid
    alerts = alerts_of(rig.read(rig.alerts, 2, timeout_s=30))
    assert sorted(a["id"] for a in alerts) == sorted(good)
    dead = rig.read(rig.deadletter, 2, timeout_s=30)
    headers = [parse_headers(r.headers) | dict(_plain(r.headers)) for r in dead]
    by_id = {h["fallwatch.alert_id"]: h for h in headers}
    assert set(by_id) == {too_big, "not-an-alert"}
    assert by_id[too_big]["fallwatch.dlq.reason"] == "too_large"
    assert by_id["not-an-alert"]["fallwatch.dlq.reason"] == "schema"
    schema = json.loads(resources.files("schemas").joinpath("dead_letter.v1.json").read_text())
    for h in headers:
        jsonschema.validate({k: v for k, v in h.items() if k.startswith("fallwatch.dlq.")}, schema)
        assert h["fallwatch.dlq.worker"] == "events"
    deadline = time.monotonic() + 15
    while asyncio.run(_outbox_size(stack.redis_url, redis_prefix)) != (0, 0):
        assert time.monotonic() < deadline, "outbox not emptied"
        time.sleep(0.3)
    assert rig.worker.exited() is None and rig.worker.pid == pid


def _plain(headers: Any) -> list[tuple[str, str]]:
    return [(k, (v or b"").decode()) for k, v in headers if k == "fallwatch.alert_id"]
