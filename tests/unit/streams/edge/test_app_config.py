"""Unit tests of the edge worker's Faust configuration (no broker: nothing connects)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from streams.core.settings import Settings
from streams.edge.app import IdempotentProducer, create_app
from streams.kafka.topics import max_message_bytes


def test_app_is_safe_by_default() -> None:
    settings = Settings(edge_group="unit-edge", max_window_bytes=900_000)
    app = create_app(settings)
    conf = app.conf
    assert conf.id == "unit-edge"
    assert conf.web_enabled is False
    assert conf.web_bind == "127.0.0.1"  # never 0.0.0.0, even if someone enables it
    assert conf.producer_acks == -1
    assert conf.value_serializer == "raw" and conf.key_serializer == "raw"
    # A full window plus framing must fit through both the producer and the consumer.
    assert conf.producer_max_request_size > settings.max_window_bytes
    assert conf.consumer_max_fetch_size >= max_message_bytes(settings)
    assert conf.consumer_auto_offset_reset == "earliest"
    assert set(app.agents) == {"edge", "events"}


def test_faust_data_folder_is_per_app_under_the_temp_dir_not_the_working_dir() -> None:
    datadir = Path(create_app(Settings(edge_group="unit-datadir")).conf.datadir)
    assert datadir.is_absolute()
    assert datadir.parent.parent == Path(tempfile.gettempdir())
    assert datadir.name == "unit-datadir-data"
    # Faust creates only the last level (mkdir without parents) when the worker starts.
    assert datadir.parent.is_dir()
    datadir.mkdir(exist_ok=True)
    datadir.rmdir()


def test_message_size_limits_follow_a_raised_window_cap() -> None:
    settings = Settings(max_window_bytes=3_000_000, max_window_pixels=1920 * 1080)
    conf = create_app(settings).conf
    assert max_message_bytes(settings) > 3_000_000
    assert conf.producer_max_request_size > 3_000_000
    assert conf.consumer_max_fetch_size > 3_000_000


def test_producer_is_idempotent_with_acks_all() -> None:
    app = create_app(Settings())
    producer = app._new_producer()
    assert isinstance(producer, IdempotentProducer)
    extra = producer._settings_extra()
    assert extra["enable_idempotence"] is True
    assert extra["acks"] == "all"


async def test_readiness_waits_for_the_consumer_group() -> None:
    """/readyz's consumer_group check: false until the first rebalance completes and
    during any later rebalance (the worker consumes nothing then)."""
    app = create_app(Settings(edge_group="unit-ready"))
    group_ready = app.runtime._group_ready
    assert await group_ready() is False  # never joined
    app.on_rebalance_start()
    assert await group_ready() is False  # joining
    app.on_rebalance_end()
    assert await group_ready() is True
    app.on_rebalance_start()
    assert await group_ready() is False  # a later rebalance
