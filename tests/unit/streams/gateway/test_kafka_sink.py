"""The gateway's Kafka sink through a broker outage (issue 19 item 5), with a fake producer.

Guards the bug "during a broker outage the gateway exits and live windows are lost": the
sink holds windows for ``gateway_hold_s`` (retried by the producer, logged while held and
when they flow again) and exits with a clear `GatewayError` only after the hold.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError

from streams.core.settings import Settings
from streams.gateway import gateway as gateway_module
from streams.gateway.gateway import GatewayError, KafkaWindowSink


class FakeFuture:
    def __init__(self) -> None:
        self.callbacks: list[Callable[[Any], None]] = []
        self.errbacks: list[Callable[[BaseException], None]] = []

    def add_callback(self, fn: Callable[..., None], *args: Any) -> FakeFuture:
        self.callbacks.append(lambda value: fn(*args, value))
        return self

    def add_errback(self, fn: Callable[..., None], *args: Any) -> FakeFuture:
        self.errbacks.append(lambda exc: fn(*args, exc))
        return self

    def ack(self) -> None:
        for cb in self.callbacks:
            cb(object())

    def fail(self, exc: BaseException) -> None:
        for eb in self.errbacks:
            eb(exc)


class FakeProducer:
    instances: list[FakeProducer] = []

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.futures: list[FakeFuture] = []
        self.send_error: BaseException | None = None
        self.flush_timeouts: list[float | None] = []
        FakeProducer.instances.append(self)

    def send(self, topic: str, key: bytes, value: bytes) -> FakeFuture:
        if self.send_error is not None:
            raise self.send_error
        future = FakeFuture()
        self.futures.append(future)
        return future

    def flush(self, timeout: float | None = None) -> None:
        self.flush_timeouts.append(timeout)

    def close(self, timeout: float | None = None) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    import kafka

    FakeProducer.instances.clear()
    monkeypatch.setattr(kafka, "KafkaProducer", FakeProducer)
    fake = Clock()
    monkeypatch.setattr(gateway_module.time, "monotonic", fake)
    return fake


def make_sink(hold_s: float = 30.0) -> tuple[KafkaWindowSink, FakeProducer]:
    settings = Settings(gateway_hold_s=hold_s, gateway_buffer_bytes=4_194_304)
    sink = KafkaWindowSink(settings, "frames")
    return sink, FakeProducer.instances[-1]


def test_producer_holds_for_the_configured_time_with_a_bounded_buffer(clock: Clock) -> None:
    _, producer = make_sink(hold_s=45.0)
    config = producer.config
    assert config["delivery_timeout_ms"] == 45_000
    assert config["max_block_ms"] == 45_000
    assert config["bootstrap_timeout_ms"] == 45_000
    assert config["request_timeout_ms"] < config["delivery_timeout_ms"]
    assert config["enable_idempotence"] is True and config["acks"] == "all"
    assert config["reconnect_backoff_max_ms"] <= 1000


def test_unacknowledged_windows_are_held_and_logged_then_resumed(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="streams.gateway.gateway")
    sink, producer = make_sink()
    sink.publish(b"cam", b"w0")
    clock.now += 3.0  # the broker does not answer: w0 waits
    sink.publish(b"cam", b"w1")
    held = [r for r in caplog.records if r.message == "gateway_kafka_unreachable_holding"]
    assert len(held) == 1 and held[0].held_windows == 2  # type: ignore[attr-defined]
    for future in producer.futures:
        future.ack()  # the broker is back: the producer's retries went through
    clock.now += 1.0
    sink.publish(b"cam", b"w2")
    resumed = [r for r in caplog.records if r.message == "gateway_kafka_delivery_resumed"]
    assert len(resumed) == 1 and resumed[0].held_windows_max == 2  # type: ignore[attr-defined]
    producer.futures[-1].ack()
    sink.flush(5.0)
    assert producer.flush_timeouts == [30.0]  # an outage in progress gets the whole hold


def test_a_window_not_delivered_within_the_hold_stops_the_gateway(clock: Clock) -> None:
    sink, producer = make_sink()
    sink.publish(b"cam", b"w0")
    producer.futures[0].fail(KafkaTimeoutError("expired after 30000 ms"))
    with pytest.raises(GatewayError, match="FALLWATCH_GATEWAY_HOLD_S"):
        sink.publish(b"cam", b"w1")
    with pytest.raises(GatewayError, match="not delivered"):
        sink.flush(1.0)


def test_the_buffer_is_bounded_a_full_one_blocks_then_stops_the_gateway(clock: Clock) -> None:
    settings = Settings(gateway_buffer_bytes=1_048_576)
    sink = KafkaWindowSink(settings, "frames", hold_s=0.2)
    producer = FakeProducer.instances[-1]
    window = b"x" * 400_000
    sink.publish(b"cam", window)
    sink.publish(b"cam", window)  # 800 kB held, nothing acknowledged
    with pytest.raises(GatewayError, match="buffer"):
        sink.publish(b"cam", window)  # waits up to the 0.2 s hold for room
    assert len(producer.futures) == 2
    producer.futures[0].ack()
    sink.publish(b"cam", window)  # room again once the broker acknowledged one
    assert len(producer.futures) == 3


def test_no_metadata_within_the_hold_stops_the_gateway(clock: Clock) -> None:
    sink, producer = make_sink()
    producer.send_error = KafkaTimeoutError("metadata")
    with pytest.raises(GatewayError, match="metadata"):
        sink.publish(b"cam", b"w0")
