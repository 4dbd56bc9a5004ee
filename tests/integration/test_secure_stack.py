"""The service's own security options against a secured stack (issue 19, item 9).

Kafka: SASL_SSL with SCRAM-SHA-512 and a CA generated at test time; Redis: TLS only
(``port 0``) with ``requirepass``. The clients are configured only through the project's
helpers: `Settings` built from the stack's ``FALLWATCH_*`` environment, then
``streams.kafka.security.kafka_python_security`` (kafka-python: admin, gateway, readers),
``streams.kafka.security.aiokafka_security`` (the workers' own producers and consumers) and
``streams.edge.app.faust_credentials`` as Faust's aiokafka driver turns it into client options;
Redis through ``streams.events.client`` (the ``rediss://`` URL, and the CA from
``FALLWATCH_REDIS_SSL_CAFILE``) exactly as the workers open it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from streams.core.settings import Settings
from streams.devtools.workers import WorkerProcess, wait_all_ready
from streams.edge.app import faust_credentials
from streams.events.client import async_redis, sync_redis
from streams.kafka.security import aiokafka_security, kafka_python_security
from streams.kafka.topics import ensure_topics
from tests.integration.conftest import subscribe_when_known, unique_name
from tests.secure_stack import SecureStack, free_ports

pytestmark = pytest.mark.integration

_TIMEOUT_MS = 10_000
_REFUSED_TIMEOUT_MS = 5_000


def _faust_security(settings: Settings) -> dict[str, Any]:
    """The client options Faust's aiokafka driver derives from the app's credentials."""
    return dict(credentials_to_aiokafka_auth(faust_credentials(settings)))


def _admin(settings: Settings, **overrides: Any) -> KafkaAdminClient:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "client_id": unique_name("secure-admin"),
        "request_timeout_ms": _TIMEOUT_MS,
        "bootstrap_timeout_ms": _TIMEOUT_MS,
        **kafka_python_security(settings),
    }
    options.update(overrides)
    return KafkaAdminClient(**options)


def _broker_refusals(stack: SecureStack) -> int:
    """How many logins the secured broker has refused for bad credentials so far."""
    log = (stack.directory / "logs" / "kafka.log").read_text(errors="replace")
    return sum(
        "Failed authentication" in line and "invalid credentials" in line
        for line in log.splitlines()
    )


@pytest.fixture
def secure_topic(secure_stack: SecureStack) -> Iterator[Callable[[str], str]]:
    """Create unique topics through the project's ``ensure_topics``; delete them after."""
    settings = secure_stack.settings()
    created: list[str] = []

    def create(hint: str) -> str:
        name = unique_name(hint)
        assert ensure_topics(settings, [name], attempts=2) == [name]
        created.append(name)
        return name

    yield create
    if created:
        admin = _admin(settings)
        try:
            admin.delete_topics(created, timeout_ms=_TIMEOUT_MS, raise_errors=False)
        except KafkaError:
            logging.getLogger(__name__).warning("could not delete %s", created, exc_info=True)
        finally:
            admin.close()


def test_settings_from_the_stack_env_select_sasl_ssl_and_mask_every_secret(
    secure_stack: SecureStack,
) -> None:
    settings = secure_stack.settings()

    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert settings.kafka_ssl_cafile == secure_stack.ca_file
    assert settings.redis_url.get_secret_value().startswith("rediss://")
    assert settings.redis_ssl_cafile == secure_stack.ca_file  # the CA is a setting, not in the URL
    shown = json.dumps(settings.masked())
    assert secure_stack.kafka_password not in shown
    assert secure_stack.redis_password not in shown
    assert secure_stack.redis_password not in settings.redis_url_masked


def test_ensure_topics_creates_a_topic_over_sasl_ssl_and_is_idempotent(
    secure_stack: SecureStack, secure_topic: Callable[[str], str]
) -> None:
    settings = secure_stack.settings()
    topic = secure_topic("secure-admin")

    admin = _admin(settings)
    try:
        assert topic in admin.list_topics()
        (described,) = admin.describe_topics([topic])
        assert len(described["partitions"]) == settings.topic_partitions
        assert ensure_topics(settings, [topic]) == []
    finally:
        admin.close()


async def _produce_aiokafka(
    settings: Settings, security: dict[str, Any], topic: str, key: bytes
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        request_timeout_ms=_TIMEOUT_MS,
        **security,
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, key=key, value=b"payload:" + key)
    finally:
        await producer.stop()


async def _consume_aiokafka(
    settings: Settings, security: dict[str, Any], topic: str, n: int
) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=unique_name("secure-group"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        request_timeout_ms=_TIMEOUT_MS,
        **security,
    )
    await consumer.start()
    records: list[tuple[bytes, bytes]] = []
    try:
        async with asyncio.timeout(30):
            while len(records) < n:
                batches = await consumer.getmany(timeout_ms=250)
                records.extend((r.key, r.value) for batch in batches.values() for r in batch)
    except TimeoutError:
        pass  # the caller asserts on what arrived
    finally:
        await consumer.stop()
    return records


def test_produce_and_consume_through_every_client_library_over_sasl_ssl(
    secure_stack: SecureStack, secure_topic: Callable[[str], str]
) -> None:
    settings = secure_stack.settings()
    topic = secure_topic("secure-roundtrip")

    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        request_timeout_ms=_TIMEOUT_MS,
        **kafka_python_security(settings),
    )
    try:
        producer.send(topic, key=b"kafka-python", value=b"payload:kafka-python").get(timeout=30)
    finally:
        producer.close(timeout=10)
    asyncio.run(_produce_aiokafka(settings, aiokafka_security(settings), topic, b"aiokafka"))
    asyncio.run(_produce_aiokafka(settings, _faust_security(settings), topic, b"faust"))

    expected = sorted((key, b"payload:" + key) for key in (b"kafka-python", b"aiokafka", b"faust"))
    by_faust = asyncio.run(_consume_aiokafka(settings, _faust_security(settings), topic, 3))
    assert sorted(by_faust) == expected
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=unique_name("secure-group"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=30_000,
        **kafka_python_security(settings),
    )
    try:
        subscribe_when_known(consumer, [topic])  # first join assigns (cold-start race)
        by_kafka_python = [(r.key, r.value) for _, r in zip(range(3), consumer, strict=False)]
    finally:
        consumer.close()
    assert sorted(by_kafka_python) == expected


@pytest.mark.parametrize("library", ["aiokafka", "faust"])
def test_wrong_password_is_refused_naming_the_credentials_aiokafka(
    secure_stack: SecureStack, library: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = secure_stack.settings(kafka_sasl_password="not-the-password")
    security = aiokafka_security(settings) if library == "aiokafka" else _faust_security(settings)
    refusals_before = _broker_refusals(secure_stack)

    async def start() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            request_timeout_ms=_REFUSED_TIMEOUT_MS,
            **security,
        )
        try:
            await producer.start()
        finally:
            await producer.stop()

    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaConnectionError):
        asyncio.run(start())
    assert "SaslAuthenticationFailed" in caplog.text
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in caplog.text
    assert _broker_refusals(secure_stack) > refusals_before


def test_wrong_password_is_refused_kafka_python(secure_stack: SecureStack) -> None:
    """kafka-python 3.0.12 reports a refused SCRAM login only as "socket disconnected"
    and then "Unable to bootstrap" (the broker's reason is not surfaced); the broker's
    log is what proves the credentials were the cause."""
    settings = secure_stack.settings(kafka_sasl_password="not-the-password")
    refusals_before = _broker_refusals(secure_stack)

    with pytest.raises(KafkaError, match="Unable to bootstrap"):
        _admin(settings, bootstrap_timeout_ms=_REFUSED_TIMEOUT_MS).list_topics()
    assert _broker_refusals(secure_stack) > refusals_before


def test_plaintext_and_untrusted_tls_clients_are_refused(secure_stack: SecureStack) -> None:
    plaintext = secure_stack.settings(
        kafka_security_protocol="PLAINTEXT", kafka_sasl_mechanism=None
    )
    with pytest.raises(KafkaError, match="Unable to bootstrap"):
        _admin(plaintext, bootstrap_timeout_ms=_REFUSED_TIMEOUT_MS).list_topics()

    # No CA file: the system CAs do not know the test CA, so the handshake fails.
    untrusted = secure_stack.settings(kafka_ssl_cafile=None)

    async def start() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=untrusted.kafka_bootstrap,
            request_timeout_ms=_REFUSED_TIMEOUT_MS,
            **aiokafka_security(untrusted),
        )
        try:
            await producer.start()
        finally:
            await producer.stop()

    with pytest.raises(KafkaConnectionError):
        asyncio.run(start())


def test_redis_over_tls_with_password_through_the_service_clients(
    secure_stack: SecureStack,
) -> None:
    settings = secure_stack.settings()
    key = f"fwtest:{unique_name('secure')}"

    sync_client = sync_redis(settings)
    try:
        pool_kwargs = sync_client.connection_pool.connection_kwargs
        assert pool_kwargs["ssl_ca_certs"] == str(secure_stack.ca_file)
        assert sync_client.set(key, b"over-tls", ex=60)
        assert sync_client.get(key) == b"over-tls"
    finally:
        sync_client.close()

    async def round_trip() -> tuple[bytes | str | None, int]:
        # As the edge worker opens it (streams.edge.runtime), with a Lua call as its state does.
        client = async_redis(settings)
        try:
            value = await client.get(key)
            deleted = await client.eval("return redis.call('DEL', KEYS[1])", 1, key)
            return value, int(deleted)
        finally:
            await client.aclose()

    assert asyncio.run(round_trip()) == (b"over-tls", 1)


def _redis_settings(stack: SecureStack, case: str) -> Settings:
    """The stack's settings with the Redis URL (and CA) one refusal case needs."""
    host = f"127.0.0.1:{stack.redis_port}"
    password = stack.redis_password
    overrides: dict[str, dict[str, Any]] = {
        "plaintext": {"redis_url": f"redis://:{password}@{host}/0", "redis_ssl_cafile": None},
        "wrong-password": {"redis_url": f"rediss://:not-the-password@{host}/0"},
        "no-password": {"redis_url": f"rediss://{host}/0"},
        "untrusted-ca": {"redis_url": f"rediss://:{password}@{host}/0", "redis_ssl_cafile": None},
    }
    return stack.settings(**overrides[case])


@pytest.mark.parametrize(
    ("case", "error", "match"),
    [
        ("plaintext", redis.ConnectionError, "Connection reset by peer|Connection closed"),
        ("wrong-password", redis.AuthenticationError, "invalid username-password pair"),
        ("no-password", redis.AuthenticationError, "Authentication required|authenticated"),
        ("untrusted-ca", redis.ConnectionError, "CERTIFICATE_VERIFY_FAILED"),
    ],
)
def test_redis_refuses_clients_without_tls_or_the_password(
    secure_stack: SecureStack, case: str, error: type[Exception], match: str
) -> None:
    client = sync_redis(_redis_settings(secure_stack, case))
    try:
        with pytest.raises(error, match=match) as refused:
            client.ping()
    finally:
        client.close()
    if error is redis.ConnectionError:  # AuthenticationError is a ConnectionError too
        assert not isinstance(refused.value, redis.AuthenticationError)


def test_stack_folder_holds_every_generated_secret_and_certificate(
    secure_stack: SecureStack,
) -> None:
    tls = secure_stack.directory / "tls"
    for name in ("ca.pem", "ca.key", "server.pem", "server.key", "server-keystore.pem"):
        assert (tls / name).is_file(), name
    for secret in (Path(secure_stack.directory / "secure.env"), tls / "ca.key", tls / "server.key"):
        assert secret.stat().st_mode & 0o077 == 0, f"{secret} is readable by others"


def test_edge_and_cloud_workers_get_ready_and_stop_cleanly_on_the_secured_stack(
    secure_stack: SecureStack, tmp_path: Path
) -> None:
    """The real workers with nothing but the stack's FALLWATCH_* environment: Faust over
    SASL_SSL, topic creation, the cloud's aiokafka clients and Redis over TLS all connect."""
    edge_port, cloud_port = free_ports(2)
    env = {
        **os.environ,
        **secure_stack.env,
        "FALLWATCH_EDGE_HTTP_PORT": str(edge_port),
        "FALLWATCH_CLOUD_HTTP_PORT": str(cloud_port),
        "FALLWATCH_EDGE_GROUP": unique_name("secure-edge"),
        "FALLWATCH_CLOUD_GROUP": unique_name("secure-cloud"),
        "FALLWATCH_REDIS_PREFIX": unique_name("secure"),
    }
    workers = {
        role: WorkerProcess(role, env, port, tmp_path / f"{role}.log")
        for role, port in (("edge", edge_port), ("cloud", cloud_port))
    }
    try:
        for worker in workers.values():
            worker.start()
        wait_all_ready(list(workers.values()), timeout_s=120)
        groups = {env["FALLWATCH_EDGE_GROUP"], env["FALLWATCH_CLOUD_GROUP"]}
        assert _groups_seen(secure_stack.settings(), groups) == groups
        codes = {role: worker.stop(grace_s=60) for role, worker in workers.items()}
        assert codes == {"edge": 0, "cloud": 0}, codes
    finally:
        for worker in workers.values():
            worker.kill9()


def _groups_seen(settings: Settings, wanted: set[str], timeout_s: float = 30.0) -> set[str]:
    """The consumer groups of ``wanted`` the secured broker knows, polled until all are."""
    admin = _admin(settings)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            seen = {group["group_id"] for group in admin.list_groups()} & wanted
            if seen == wanted or time.monotonic() > deadline:
                return seen
            time.sleep(0.5)
    finally:
        admin.close()
