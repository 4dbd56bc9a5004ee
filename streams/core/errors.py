"""Error classes of the streams service, grouped by what the caller must do.

- `PoisonMessageError` and subclasses: the message itself is bad (schema, size cap,
  undecodable video, impossible dimensions). The worker dead-letters the original
  bytes with headers from `streams.kafka.deadletter` and continues. `reason` is a short,
  bounded slug used as the `reason` label of `fallwatch_dead_letters_total` and in the
  DLQ headers; `POISON_REASONS` lists every slug so metric labels stay bounded.
- `DependencyError` and subclasses: a dependency (Redis, Kafka) failed transiently.
  The caller retries with bounded backoff; past the retries the worker crashes and
  its readiness check fails.
- `SettingsError`: the configuration is unusable; the process refuses to start.

All classes share the root `FallwatchError`. Schema decoding lives in `schemas/`
(which imports nothing from `streams`) and raises `schemas.SchemaError`; workers wrap
it in `MessageSchemaError` so the DLQ path sees one class hierarchy.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "POISON_REASONS",
    "DependencyError",
    "FallwatchError",
    "MessageSchemaError",
    "MessageTooLargeError",
    "MessageValueError",
    "PoisonMessageError",
    "SettingsError",
    "StateStoreError",
    "WindowDecodeError",
    "WindowDimensionsError",
]


class FallwatchError(Exception):
    """Root of every error raised by the streams service.

    Raised only through subclasses; catch it at a worker's outermost loop to log and
    decide (dead-letter, retry or crash) by subclass.
    """


class PoisonMessageError(FallwatchError):
    """A message that can never be processed, whatever the retries.

    Raised by decoders and validators on the per-message path. Operators: look at the
    dead-letter topic (headers say source topic/partition/offset and the error); fix
    the producer. The worker itself keeps running.
    """

    reason: ClassVar[str] = "poison"


class MessageSchemaError(PoisonMessageError):
    """The bytes are not a valid record of the expected schema (wraps `schemas.SchemaError`).

    Raised by the workers when `schemas.decode` fails. Operators: check the producer's
    schema version against `schemas/registry.py`.
    """

    reason: ClassVar[str] = "schema"


class MessageValueError(MessageSchemaError):
    """A record that decodes but breaks a rule of the contract (wraps
    `schemas.records.RecordValueError`): a stream id outside the rule, a window seq outside
    [0, 2**53), negative or reversed capture times, a non-finite or absurd fps, ...

    Raised by the workers when `schemas.records.parse_*` rejects a record. Operators: the
    `error` header names the field; fix the producer (gateway) that wrote it.
    """

    reason: ClassVar[str] = "invalid"


class MessageTooLargeError(PoisonMessageError):
    """A message or its payload exceeds a configured size cap (`max_window_bytes`), a
    window would decode to more than `max_window_decoded_bytes`, or a record a worker
    makes from it would exceed the producer's message limit.

    Raised before any decoding (or before the output is sent). Operators: lower the gateway resolution/quality or raise
    the cap together with the broker and Faust message-size limits.
    """

    reason: ClassVar[str] = "too_large"


class WindowDecodeError(PoisonMessageError):
    """The window payload cannot be decoded into the declared frames.

    Raised by `streams.core.video.decode_window` for corrupt or truncated payloads, unknown
    codecs and frame-count/size mismatches. Operators: inspect the DLQ copy; usually a
    gateway encoder bug or a truncated upload.
    """

    reason: ClassVar[str] = "decode"


class WindowDimensionsError(WindowDecodeError):
    """Declared width/height/frame count are impossible or above the configured caps.

    Raised by `streams.core.video.decode_window` before decoding starts (so a hostile header
    cannot make the worker allocate or decode unbounded data). Operators: check the
    gateway's resolution against `max_window_pixels` / `max_window_frames`.
    """

    reason: ClassVar[str] = "dimensions"


#: Every `reason` slug a poison error can carry (bounded metric label set).
POISON_REASONS: tuple[str, ...] = (
    PoisonMessageError.reason,
    MessageSchemaError.reason,
    MessageValueError.reason,
    MessageTooLargeError.reason,
    WindowDecodeError.reason,
    WindowDimensionsError.reason,
)


class DependencyError(FallwatchError):
    """A dependency (Redis, Kafka) failed in a way that may succeed on retry.

    Raised by state and transport wrappers with the original exception as `__cause__`.
    Callers retry with bounded backoff, then let the worker crash. Operators: check the
    dependency's health (`make status`, readiness endpoint).
    """


class StateStoreError(DependencyError):
    """A Redis call of `streams.events.state` failed (connection, timeout, script error).

    Raised by `streams.events.state`/`streams.events.tracker`. Operators: check Redis
    reachability and memory; a script error (NOSCRIPT is handled) means a deployment mismatch.
    """


class SettingsError(FallwatchError):
    """The configuration (environment variables `FALLWATCH_*`) is invalid.

    Raised by `streams.core.settings.get_settings` at start-up. Operators: fix the variable
    named in the message; the process refuses to start until then.
    """
