"""Client keyword arguments for TLS/SASL of the two Kafka libraries in use.

Inputs: ``Settings`` (``kafka_security_protocol``, CA file, SASL mechanism and credentials).
Outputs: ``kafka_python_security`` (kafka-python: admin work, the gateway's producer, the
readers of output topics), ``aiokafka_security`` and ``aiokafka_ssl_context`` (aiokafka:
under Faust and in the cloud worker).

Guarantees: no client is created here and nothing is logged (the SASL password is read from
its ``SecretStr`` only into the returned kwargs). Failure modes: an unreadable CA file
raises from ``ssl`` when the context is built.
"""

from __future__ import annotations

import ssl
from typing import Any

from streams.core.settings import Settings

__all__ = ["aiokafka_security", "aiokafka_ssl_context", "kafka_python_security"]


def kafka_python_security(settings: Settings) -> dict[str, Any]:
    """kafka-python client kwargs for the configured security protocol (no secrets logged)."""
    kwargs: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if settings.kafka_ssl_cafile is not None:
        kwargs["ssl_cafile"] = str(settings.kafka_ssl_cafile)
    if settings.kafka_security_protocol.startswith("SASL_"):
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism
        kwargs["sasl_plain_username"] = settings.kafka_sasl_username
        password = settings.kafka_sasl_password
        kwargs["sasl_plain_password"] = password.get_secret_value() if password else None
    return kwargs


def aiokafka_ssl_context(settings: Settings) -> ssl.SSLContext:
    """TLS context for aiokafka/faust clients (CA file from settings, else system CAs)."""
    from aiokafka.helpers import create_ssl_context

    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile is not None else None
    context: ssl.SSLContext = create_ssl_context(cafile=cafile)
    return context


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """aiokafka client kwargs (``AIOKafkaClient``, consumers, producers) for TLS/SASL."""
    protocol = settings.kafka_security_protocol
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = aiokafka_ssl_context(settings)
    if protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism
        kwargs["sasl_plain_username"] = settings.kafka_sasl_username
        kwargs["sasl_plain_password"] = password.get_secret_value() if password else None
    return kwargs
