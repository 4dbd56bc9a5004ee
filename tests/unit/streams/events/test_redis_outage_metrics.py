"""Redis outages on /metrics: an active gauge and a counter per worker (issue 20 item 4)."""

from __future__ import annotations

import pytest
import redis
from prometheus_client import REGISTRY

from streams.core.errors import StateStoreError
from streams.events.client import RedisOutage


def _sample(name: str, worker: str) -> float:
    value = REGISTRY.get_sample_value(name, {"worker": worker})
    return 0.0 if value is None else value


def _down() -> StateStoreError:
    error = StateStoreError("Redis unavailable")
    error.__cause__ = redis.ConnectionError("Connection refused")
    return error


@pytest.mark.parametrize("worker", ["edge", "cloud"])
async def test_an_outage_raises_the_gauge_while_it_lasts_and_counts_once(worker: str) -> None:
    outage = RedisOutage(0.01, worker=worker)
    other = "cloud" if worker == "edge" else "edge"
    before = _sample("fallwatch_redis_outages_total", worker)
    other_before = _sample("fallwatch_redis_outages_total", other)
    gauge_seen: list[float] = []
    failures = 3

    async def op() -> str:
        nonlocal failures
        gauge_seen.append(_sample("fallwatch_redis_outage_active", worker))
        if failures:
            failures -= 1
            raise _down()
        return "done"

    for _ in range(2):  # two separate outages
        failures = 3
        assert await outage.hold("op", op) == "done"
        assert _sample("fallwatch_redis_outage_active", worker) == 0.0
    assert gauge_seen == [0.0, 1.0, 1.0, 1.0] * 2
    assert _sample("fallwatch_redis_outages_total", worker) == before + 2
    assert _sample("fallwatch_redis_outages_total", other) == other_before


def test_the_worker_label_is_bounded() -> None:
    with pytest.raises(ValueError, match="worker"):
        RedisOutage(0.01, worker="test")
