"""The edge worker's Faust application: app factory and the blocking worker entry point.

Inputs: a frozen ``Settings``. Outputs:
- ``create_app(settings) -> EdgeApp``: a configured ``faust.App`` with the edge agent
  (frames → results/offloads), the events agent (results → alerts), the fallback sweeper
  and the outbox republisher. Nothing connects until the app starts; models, Redis and the
  health server are started in ``EdgeApp.on_start`` (before any agent consumes), and the
  agents and timers build their processors from the started runtime's ``EdgeDeps``.
- ``run_edge_worker(settings)``: creates the topics, runs the worker until SIGTERM/SIGINT;
  returns after a clean stop, raises ``EdgeWorkerCrashedError`` after a fatal dependency
  failure (exit status non-zero in the CLI).

Kafka configuration (docs/ARCHITECTURE.md, "Known traps"): value/key serializer ``raw``
(we decode ourselves so bad bytes can be dead-lettered; no Records, no pickle); producer ``acks=all`` AND idempotence
(faust only enables idempotence for transactions, so ``IdempotentProducer`` adds it);
``producer_max_request_size``/``consumer_max_fetch_size`` sized from ``max_window_bytes``;
the Faust web server is off unless ``faust_web_enabled`` and then bound to 127.0.0.1 only;
no leader topic (no ``on_leader`` work: the sweeper runs on every worker by design).
Offsets are committed only for events the agents acked after their side effects were
delivered, so a crash replays (at-least-once) and every side effect is idempotent.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import faust
from faust.transport.drivers.aiokafka import Producer as AiokafkaProducer
from faust.types import ProducerT

from streams.core.errors import FallwatchError
from streams.core.settings import Settings
from streams.edge.agent import make_edge_agent
from streams.edge.fallback import make_fallback_sweeper
from streams.edge.runtime import EdgeRuntime
from streams.events.agent import make_events_agent, make_outbox_republisher
from streams.kafka.security import aiokafka_ssl_context
from streams.kafka.topics import MESSAGE_HEADROOM_BYTES, max_message_bytes

__all__ = [
    "EdgeApp",
    "EdgeWorkerCrashedError",
    "IdempotentProducer",
    "create_app",
    "faust_credentials",
    "run_edge_worker",
]

log = logging.getLogger(__name__)

# One folder per user (another user's folder would not be writable); Faust creates only
# the last path level, so create_app makes this one.
_FAUST_DATADIR = Path(tempfile.gettempdir()) / f"fallwatch-faust-{os.getuid()}"

#: How often unacknowledged outbox alerts are re-offered (crash between commit and publish).
OUTBOX_POLL_S = 2.0
# Faust's in-memory buffer per partition: windows are up to ~1 MB, so a small bound keeps
# memory flat; the consumer pauses fetching when it is full (backpressure).
_MIN_STREAM_BUFFER = 64


class EdgeWorkerCrashedError(FallwatchError):
    """Raised by ``run_edge_worker`` when the worker stopped because a dependency (Kafka,
    Redis) stayed down past its retries or a model could not be loaded. Operator: read the
    preceding ``worker_fatal`` log line, fix the dependency; the supervisor restarts the
    worker, which replays the unacknowledged windows."""


class IdempotentProducer(AiokafkaProducer):
    """Faust's aiokafka producer with ``acks=all`` and idempotence always on.

    aiokafka defaults to ``acks=1`` without idempotence and faust enables idempotence only
    inside transactions; retried sends must never duplicate or reorder per partition.
    """

    def _settings_extra(self) -> dict[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class EdgeApp(faust.App):
    """``faust.App`` that owns an ``EdgeRuntime`` (models, Redis, health) for its agents."""

    runtime: EdgeRuntime

    def _new_producer(self) -> ProducerT:
        return IdempotentProducer(self.transport, loop=self.loop, beacon=self.beacon)

    async def on_start(self) -> None:
        await super().on_start()
        # Runs before the consumer and the agents start: models and Redis are ready (or the
        # worker fails to start) before the first window is fetched.
        await self.runtime.start()

    async def on_stop(self) -> None:
        try:
            await super().on_stop()  # stops the consumer, flushes the producer
        finally:
            await self.runtime.stop()


def faust_credentials(settings: Settings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """Faust broker credentials for the configured security protocol (None = PLAINTEXT)."""
    protocol = settings.kafka_security_protocol
    ssl_context = aiokafka_ssl_context(settings) if protocol in ("SSL", "SASL_SSL") else None
    if protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=password.get_secret_value() if password else None,
            ssl_context=ssl_context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if ssl_context is not None:
        return faust.SSLCredentials(ssl_context)
    return None


def _broker_urls(settings: Settings) -> list[str]:
    return [
        f"kafka://{host.strip()}" for host in settings.kafka_bootstrap.split(",") if host.strip()
    ]


EDGE_SESSION_TIMEOUT_S = 10.0
EDGE_HEARTBEAT_INTERVAL_S = 1.0


def create_app(settings: Settings) -> EdgeApp:
    """Build the edge worker's Faust app (no network I/O, no model loading here).

    Registers the ``edge`` agent (frames topic), the ``events`` agent (results topic), the
    fallback sweeper timer (every ``fallback_poll_s``) and the outbox republisher timer.
    Faust's own web UI stays off unless ``faust_web_enabled``; then it listens on
    127.0.0.1:(``edge_http_port`` + 100) only. /metrics, /livez and /readyz are served by the
    runtime's ``HealthServer`` on ``http_host:edge_http_port`` once the app starts.
    """
    max_message = max_message_bytes(settings)
    _FAUST_DATADIR.mkdir(parents=True, exist_ok=True)
    app = EdgeApp(
        settings.edge_group,
        broker=_broker_urls(settings),
        broker_credentials=faust_credentials(settings),
        broker_client_id=settings.edge_group,
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        # Faust's 60 s default session keeps a kill -9'd worker's partitions unassigned for a
        # minute after restart; 10 s (as the cloud worker uses) bounds that gap.
        broker_session_timeout=EDGE_SESSION_TIMEOUT_S,
        broker_heartbeat_interval=EDGE_HEARTBEAT_INTERVAL_S,
        producer_acks=-1,
        producer_max_request_size=max_message + MESSAGE_HEADROOM_BYTES,
        consumer_max_fetch_size=4 * max_message,
        stream_buffer_maxsize=max(_MIN_STREAM_BUFFER, 4 * settings.edge_batch_max),
        web_enabled=settings.faust_web_enabled,
        # Never 0.0.0.0 (docs/ARCHITECTURE.md, "Known traps"); our own /metrics and probes
        # are on edge_http_port.
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        web_port=min(65535, settings.edge_http_port + 100),
        worker_redirect_stdouts=False,
        # Faust makes an (empty, with the memory store) tables folder per app id; by default
        # in the current directory, which filled repo roots with "<app id>-data" folders.
        datadir=str(_FAUST_DATADIR / "{conf.name}-data"),
    )
    app.runtime = EdgeRuntime(settings, app)

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(
            name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    frames = raw_topic(settings.topic_frames)
    results = raw_topic(settings.topic_results)
    app.agent(frames, name="edge")(make_edge_agent(app.runtime))
    app.agent(results, name="events")(make_events_agent(app.runtime))
    app.timer(interval=settings.fallback_poll_s, name="fallback_sweeper")(
        make_fallback_sweeper(app.runtime)
    )
    app.timer(interval=OUTBOX_POLL_S, name="outbox_republisher")(
        make_outbox_republisher(app.runtime)
    )
    return app


def run_edge_worker(settings: Settings) -> None:
    """Run the edge worker in this process until SIGTERM/SIGINT (blocking).

    Checks pinned model digests (``ModelLoadError``), creates the service topics
    (TopicSetupError if the broker refuses), then runs a ``faust.Worker``. Returns normally after a clean stop; raises ``EdgeWorkerCrashedError``
    when the worker stopped because of a fatal error.
    """
    from models.runtime.onnx_models import verify_file_sha256
    from streams.kafka.topics import ensure_topics

    settings.log_summary(log)
    # A pinned model that is not the file on disk: refuse before touching Kafka or Redis.
    for role, path, pinned in (
        ("edge", settings.edge_model_path, settings.edge_model_sha256),
        ("switcher", settings.switcher_model_path, settings.switcher_model_sha256),
    ):
        if pinned is not None:
            verify_file_sha256(path, pinned, role)
    ensure_topics(settings)
    app = create_app(settings)
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        quiet=True,
        # Logging is configured once by the entry point (streams.core.logs), not by mode.
        override_logging=False,
        redirect_stdouts=False,
    )
    app.runtime.attach_worker(worker)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None) and app.runtime.fatal_error is None:
            raise EdgeWorkerCrashedError(f"edge worker exited with status {exc.code}") from exc
    fatal = app.runtime.fatal_error
    if fatal is not None:
        raise EdgeWorkerCrashedError(f"edge worker stopped: {fatal!r}") from fatal
