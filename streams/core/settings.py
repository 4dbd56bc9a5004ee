"""Service configuration: environment variables `FALLWATCH_*` → one frozen `Settings`.

Inputs: the process environment (prefix `FALLWATCH_`, case-insensitive, e.g.
`FALLWATCH_KAFKA_BOOTSTRAP`, `FALLWATCH_REDIS_PREFIX`). This is the only module of the
project that reads `os.environ`; everything else receives values through constructor
arguments.

Guarantees:
- `Settings` is immutable (frozen) and validated: obviously broken values (partitions
  < 1, thresholds or rates outside [0, 1], odd gateway dimensions for H.264, SASL
  without credentials, negative waits, ...) raise at construction.
- `get_settings()` builds it once per process (cached); `get_settings.cache_clear()`
  lets tests rebuild it after changing the environment.
- Secrets are `SecretStr` (`kafka_sasl_password`, `redis_url`); `masked()` and
  `log_summary()` never print them (the Redis URL is shown with its password hidden).
- Model digests (`edge_model_sha256`, ...) are 64 lowercase hex characters or None (not
  pinned); `test_crash_at` names only known crash points and needs `test_crash_dir`
  (TEST-ONLY, `streams.core.crash_points`; empty by default, so inert).

Failure modes: `get_settings()` raises `streams.core.errors.SettingsError` naming the bad
variable(s); constructing `Settings(...)` directly raises pydantic's `ValidationError`.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.core.errors import SettingsError

__all__ = ["Settings", "get_settings"]

logger = logging.getLogger(__name__)

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
WindowCodec = Literal["h264", "mjpeg", "raw-gray8"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

_MASK = "**********"


def _zoo_model_path(role: str) -> Path:
    """Default model path: `models.zoo_path(role)`, imported lazily (no work at import)."""
    from models import zoo_path

    return zoo_path(role)


def _mask_url(url: str) -> str:
    """Return `url` with any password in its userinfo replaced by a mask."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    netloc = f"{user}:{_MASK}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class Settings(BaseSettings):
    """Every tunable of the fallwatch service (see docs/CONTRACTS.md for the topics).

    Build it with `get_settings()` in entry points; pass values (not the object) into
    library constructors where practical so they stay testable.
    """

    model_config = SettingsConfigDict(
        env_prefix="FALLWATCH_",
        case_sensitive=False,
        frozen=True,
        extra="ignore",
        validate_default=True,
    )

    # Kafka connection
    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None

    # Topics
    topic_frames: str = "fallwatch.frames"
    topic_offload: str = "fallwatch.offload"
    topic_results: str = "fallwatch.results"
    topic_alerts: str = "fallwatch.alerts"
    topic_deadletter: str = "fallwatch.deadletter"
    topic_partitions: int = Field(default=8, ge=1)
    topic_replication: int = Field(default=1, ge=1)

    # Consumer groups (edge_group is also the Faust app id)
    edge_group: str = "fallwatch-edge"
    cloud_group: str = "fallwatch-cloud"

    # Redis state
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:16379/0")
    redis_prefix: str = "fw"
    # Every Redis client (streams.events.client): a hung or blackholed Redis becomes an
    # error within these bounds instead of a stall; idle connections are checked first.
    redis_socket_timeout_s: float = Field(default=5.0, gt=0.0)
    redis_connect_timeout_s: float = Field(default=2.0, gt=0.0)
    redis_health_check_interval_s: int = Field(default=10, ge=0)
    # During a Redis outage the workers hold their work and retry, backing off up to this.
    redis_retry_max_backoff_s: float = Field(default=2.0, gt=0.0)
    # CA bundle to verify a rediss:// server (passed to every client; refused with redis://).
    redis_ssl_cafile: Path | None = None

    # Models and routing
    edge_model_path: Path = Field(default_factory=lambda: _zoo_model_path("edge"))
    cloud_model_path: Path = Field(default_factory=lambda: _zoo_model_path("cloud"))
    switcher_model_path: Path = Field(default_factory=lambda: _zoo_model_path("switcher"))
    # sha256 of each model FILE (`sha256sum`); when set, a worker refuses any other file.
    edge_model_sha256: str | None = None
    cloud_model_sha256: str | None = None
    switcher_model_sha256: str | None = None
    switcher_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    fall_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    audit_rate: float = Field(default=0.02, ge=0.0, le=1.0)

    # Batching and deadlines
    # 4: since a window decodes in ~4 ms, a batch of 16 made each window wait for up to 15
    # others (p99 0.8 s at 80 % load); 4 keeps the throughput and cut p99 to ~0.17 s on
    # the 2-core bench (load_tests/README.md). 2 saturates the worker earlier.
    edge_batch_max: int = Field(default=4, ge=1)
    edge_batch_wait_s: float = Field(default=0.02, ge=0.0)
    cloud_batch_max: int = Field(default=8, ge=1)
    cloud_batch_wait_s: float = Field(default=0.05, ge=0.0)
    cloud_deadline_s: float = Field(default=5.0, gt=0.0)
    fallback_poll_s: float = Field(default=0.25, gt=0.0)
    # Windows in a row on which the cloud model itself failed (not the input) before the
    # cloud worker reports not-ready and exits: a broken model is not a stream of bad input.
    cloud_max_model_failures: int = Field(default=16, ge=1)

    # Event logic
    resolve_after_windows: int = Field(default=5, ge=1)
    cooldown_windows: int = Field(default=10, ge=0)
    state_retention_windows: int = Field(default=4096, ge=1)
    state_ttl_s: int = Field(default=86400, ge=1)
    # A stream's seq numbering may restart once its top has been silent this long
    # (receive time; streams.events.tracker rule 1).
    state_restart_gap_s: float = Field(default=5.0, gt=0.0)

    # Input caps (poison-input defence)
    max_window_bytes: int = Field(default=900_000, ge=1)
    max_window_frames: int = Field(default=64, ge=1)
    max_window_pixels: int = Field(default=1920 * 1080, ge=1)
    # Decoded RGB bytes of one window (frame_count * width * height * 3), checked before any
    # frame is allocated: a few kB of H.264 can declare hundreds of MB of flat frames. 64 MiB
    # keeps an edge batch of 4 (256 MiB) and a cloud batch of 8 (512 MiB) under 1 GiB.
    max_window_decoded_bytes: int = Field(default=64 * 1024 * 1024, ge=1)

    # Runtime
    inference_threads: int = Field(default=1, ge=1)
    http_host: str = "127.0.0.1"
    edge_http_port: int = Field(default=6066, ge=1, le=65535)
    cloud_http_port: int = Field(default=6067, ge=1, le=65535)
    faust_web_enabled: bool = False
    log_level: LogLevel = "INFO"

    # TEST-ONLY crash points (streams.core.crash_points); empty = inert, the default.
    test_crash_at: str = ""
    test_crash_dir: Path | None = None

    # Reference gateway
    gateway_width: int = Field(default=160, ge=2)
    gateway_height: int = Field(default=120, ge=2)
    gateway_fps: float = Field(default=8.0, gt=0.0)
    gateway_window_s: float = Field(default=2.0, gt=0.0)
    gateway_stride_s: float = Field(default=1.0, gt=0.0)
    gateway_codec: WindowCodec = "h264"
    # Broker outage: how long the gateway holds unacknowledged windows (and waits for room
    # in its buffer) before it gives up and exits; the buffer's size in bytes.
    gateway_hold_s: float = Field(default=120.0, ge=5.0, le=3600.0)
    gateway_buffer_bytes: int = Field(default=33_554_432, ge=1_048_576)
    snapshot_max_bytes: int = Field(default=20_000, ge=0)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "kafka_bootstrap",
        "topic_frames",
        "topic_offload",
        "topic_results",
        "topic_alerts",
        "topic_deadletter",
        "edge_group",
        "cloud_group",
        "redis_prefix",
    )
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr) -> SecretStr:
        scheme = urlsplit(value.get_secret_value()).scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("edge_model_sha256", "cloud_model_sha256", "switcher_model_sha256")
    @classmethod
    def _sha256_hex(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        digest = value.strip().lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError("must be a sha256 hex digest (64 hex characters)")
        return digest

    @field_validator("test_crash_at")
    @classmethod
    def _known_crash_points(cls, value: str) -> str:
        from streams.core.crash_points import CRASH_POINTS

        names = [n.strip() for n in value.split(",") if n.strip()]
        unknown = sorted(set(names) - CRASH_POINTS)
        if unknown:
            raise ValueError(f"unknown crash points {unknown}; known: {sorted(CRASH_POINTS)}")
        return ",".join(names)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.test_crash_at and self.test_crash_dir is None:
            raise ValueError("test_crash_at needs test_crash_dir (where the once-markers go)")
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_mechanism and self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                "SASL protocols need kafka_sasl_mechanism, kafka_sasl_username "
                "and kafka_sasl_password"
            )
        topics = [
            self.topic_frames,
            self.topic_offload,
            self.topic_results,
            self.topic_alerts,
            self.topic_deadletter,
        ]
        if len(set(topics)) != len(topics):
            raise ValueError("topic names must be distinct")
        if self.edge_group == self.cloud_group:
            raise ValueError("edge_group and cloud_group must differ")
        if self.edge_http_port == self.cloud_http_port:
            raise ValueError("edge_http_port and cloud_http_port must differ")
        if self.gateway_codec == "h264" and (self.gateway_width % 2 or self.gateway_height % 2):
            raise ValueError("gateway_width and gateway_height must be even for h264")
        if self.gateway_width * self.gateway_height > self.max_window_pixels:
            raise ValueError("gateway frame size exceeds max_window_pixels")
        gateway_frames = max(1, round(self.gateway_fps * self.gateway_window_s))
        if gateway_frames * self.gateway_width * self.gateway_height * 3 > (
            self.max_window_decoded_bytes
        ):
            raise ValueError("gateway window decodes to more than max_window_decoded_bytes")
        if self.gateway_stride_s > self.gateway_window_s:
            raise ValueError("gateway_stride_s must not exceed gateway_window_s")
        if self.cooldown_windows >= self.state_retention_windows:
            raise ValueError("cooldown_windows must be below state_retention_windows")
        if self.redis_ssl_cafile is not None:
            if urlsplit(self.redis_url.get_secret_value()).scheme != "rediss":
                raise ValueError("redis_ssl_cafile needs a rediss:// redis_url (TLS)")
            if not self.redis_ssl_cafile.is_file():
                raise ValueError(f"redis_ssl_cafile {self.redis_ssl_cafile} is not a file")
        return self

    @property
    def redis_url_masked(self) -> str:
        """The Redis URL with any password hidden, for logs."""
        return _mask_url(self.redis_url.get_secret_value())

    def masked(self) -> dict[str, Any]:
        """Every setting as JSON-friendly values, secrets masked (safe to log or print)."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "redis_url":
                out[name] = self.redis_url_masked
            elif isinstance(value, SecretStr):
                out[name] = _MASK
            elif isinstance(value, Path):
                out[name] = str(value)
            else:
                out[name] = value
        return out

    def log_summary(self, log: logging.Logger | None = None) -> None:
        """Log one structured `settings` event carrying every (masked) value."""
        (log or logger).info("settings", extra={"settings": self.masked()})


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Build the process-wide `Settings` from the environment once and cache it.

    Raises `SettingsError` (with pydantic's message, which names each bad variable)
    when the environment is invalid.
    """
    try:
        return Settings()
    except ValidationError as exc:
        # Built from loc+msg only: pydantic's default text echoes raw inputs (secrets).
        problems = "; ".join(
            f"FALLWATCH_{'.'.join(str(p) for p in err['loc']).upper() or '*'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
        raise SettingsError(f"invalid configuration: {problems}") from None
