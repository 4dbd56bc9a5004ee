"""Unit tests of the edge worker's Faust configuration (no broker: nothing connects)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import faust
from pydantic import SecretStr

from streams.core.settings import Settings
from streams.edge.app import IdempotentProducer, create_app, faust_credentials
from streams.kafka.security import kafka_python_security
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


def test_plaintext_has_no_credentials() -> None:
    assert faust_credentials(Settings()) is None


def test_sasl_credentials_carry_mechanism_and_user() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="edge",
        kafka_sasl_password=SecretStr("s3cret"),
    )
    creds = faust_credentials(settings)
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password) == ("edge", "s3cret")
    assert creds.mechanism.value == "SCRAM-SHA-512"
    assert creds.ssl_context is None
    assert kafka_python_security(settings)["sasl_plain_password"] == "s3cret"


def test_tls_protocols_get_an_ssl_context() -> None:
    ssl_only = faust_credentials(Settings(kafka_security_protocol="SSL"))
    sasl_ssl = faust_credentials(
        Settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="PLAIN",
            kafka_sasl_username="u",
            kafka_sasl_password=SecretStr("p"),
        )
    )
    assert isinstance(ssl_only, faust.SSLCredentials) and ssl_only.context is not None
    assert isinstance(sasl_ssl, faust.SASLCredentials) and sasl_ssl.ssl_context is not None


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


def test_output_topics_are_every_service_topic_but_the_frames() -> None:
    from streams.kafka.topics import output_topics, service_topics

    s = Settings(topic_frames="f", topic_offload="o", topic_results="r", topic_alerts="a",
                 topic_deadletter="d")  # fmt: skip
    assert output_topics(s) == ["o", "r", "a", "d"]
    assert set(service_topics(s)) - set(output_topics(s)) == {"f"}
