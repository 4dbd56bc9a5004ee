"""Kafka client security kwargs (streams.kafka.security) and the service's topics."""

from __future__ import annotations

import faust
from pydantic import SecretStr

from streams.core.settings import Settings
from streams.edge.app import faust_credentials
from streams.kafka.security import kafka_python_security


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


def test_output_topics_are_every_service_topic_but_the_frames() -> None:
    from streams.kafka.topics import output_topics, service_topics

    s = Settings(topic_frames="f", topic_offload="o", topic_results="r", topic_alerts="a",
                 topic_deadletter="d")  # fmt: skip
    assert output_topics(s) == ["o", "r", "a", "d"]
    assert set(service_topics(s)) - set(output_topics(s)) == {"f"}
