"""Wire formats of fallwatch: Avro records framed Confluent-style, plus JSON schemas.

Inputs/outputs: `encode(kind, record) -> bytes` and `decode(kind, data) -> dict` for
`kind` in `KINDS` ("frame_window", "offload_request", "result"). The framing is
magic byte 0x00 + 4-byte big-endian schema id (fixed in `schemas.registry`) + the
fastavro schemaless body. Alerts (`alert.v1.json`, CloudEvents JSON Schema; the typed
record is `schemas.alerts.Alert`) and dead letters (`dead_letter.v1.json`, header
documentation) are package data too.

Guarantees:
- The `.avsc` files are the only definition of the records; they are loaded lazily
  with `importlib.resources`, parsed once, never at import.
- `decode` raises only `SchemaError` for any input bytes (wrong magic, unknown or
  other-kind id, truncated or trailing bytes, invalid UTF-8, oversize), never another
  exception type, so a consumer can dead-letter on that one class.
- A record written with any registered version of a kind is resolved into the reader
  version (Avro schema resolution): added fields take their defaults.
- `encode` validates the record strictly (missing/extra fields, wrong types) and
  refuses messages above the size cap (`RecordTooLargeError`, a `SchemaError`).

This package imports only fastavro, json and the standard library.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.validation import validate

from schemas.registry import KINDS, SchemaError, SchemaRegistry, default_registry

__all__ = [
    "HEADER_BYTES",
    "KINDS",
    "MAGIC_BYTE",
    "MAX_MESSAGE_BYTES",
    "MAX_WINDOW_BYTES",
    "RecordTooLargeError",
    "SchemaError",
    "decode",
    "encode",
    "peek_schema_id",
]

#: Cap on an encoded frame_window message (below the broker's 1 MiB default).
MAX_WINDOW_BYTES = 900_000
#: Cap on any other encoded message (an offload request embeds a window plus edge output).
MAX_MESSAGE_BYTES = 1_000_000
MAGIC_BYTE = 0
HEADER_BYTES = 5
_HEADER = struct.Struct(">bI")


class RecordTooLargeError(SchemaError):
    """An encoded message is above its size cap.

    Raised by `encode` (producer: lower resolution/quality) and by `decode` when the
    caller passes `max_bytes` (consumer: dead-letter as too large).
    """


def _default_cap(kind: str) -> int:
    return MAX_WINDOW_BYTES if kind == "frame_window" else MAX_MESSAGE_BYTES


def encode(
    kind: str,
    record: Mapping[str, Any],
    *,
    max_bytes: int | None = None,
    registry: SchemaRegistry | None = None,
) -> bytes:
    """Serialize `record` with the newest schema version of `kind`, framed with its id.

    `max_bytes` defaults to `MAX_WINDOW_BYTES` for frame windows and
    `MAX_MESSAGE_BYTES` otherwise. Raises `SchemaError` if the record does not match
    the schema, `RecordTooLargeError` if the framed bytes exceed the cap.
    """
    reg = registry or default_registry()
    entry = reg.latest(kind)
    parsed = reg.parsed(entry.schema_id)
    buffer = io.BytesIO()
    buffer.write(_HEADER.pack(MAGIC_BYTE, entry.schema_id))
    try:
        validate(record, parsed, raise_errors=True)
        schemaless_writer(buffer, parsed, dict(record), strict_allow_default=True)
    except Exception as exc:  # fastavro raises ValidationError/ValueError/TypeError/...
        raise SchemaError(
            f"{kind} record does not match schema id {entry.schema_id}: {exc}"
        ) from exc
    data = buffer.getvalue()
    cap = _default_cap(kind) if max_bytes is None else max_bytes
    if len(data) > cap:
        raise RecordTooLargeError(f"{kind} message is {len(data)} bytes, cap is {cap}")
    return data


def peek_schema_id(data: bytes) -> int:
    """The schema id in the framing header of `data`; `SchemaError` if not framed."""
    if len(data) < HEADER_BYTES:
        raise SchemaError(f"message of {len(data)} bytes is shorter than the header")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise SchemaError(f"unknown magic byte {magic:#04x}")
    return int(schema_id)


def decode(
    kind: str,
    data: bytes,
    *,
    max_bytes: int | None = None,
    registry: SchemaRegistry | None = None,
) -> dict[str, Any]:
    """Deserialize a framed message of `kind` into a dict in the reader schema's shape.

    Raises `SchemaError` for anything that is not a complete, valid message of `kind`
    written with a registered schema id (and `RecordTooLargeError` above `max_bytes`,
    checked before any parsing).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SchemaError(f"expected bytes, got {type(data).__name__}")
    if max_bytes is not None and len(data) > max_bytes:
        raise RecordTooLargeError(f"{kind} message is {len(data)} bytes, cap is {max_bytes}")
    reg = registry or default_registry()
    schema_id = peek_schema_id(bytes(data[:HEADER_BYTES]))
    writer_entry = reg.entry(schema_id)
    if writer_entry.kind != kind:
        raise SchemaError(f"schema id {schema_id} is a {writer_entry.kind}, expected {kind}")
    reader_entry = reg.reader_entry(kind)
    writer = reg.parsed(schema_id)
    reader = reg.parsed(reader_entry.schema_id)
    body = io.BytesIO(memoryview(data)[HEADER_BYTES:])
    try:
        record = schemaless_reader(body, writer, reader)
    except Exception as exc:  # corrupt bodies raise EOFError, ValueError, UnicodeError, ...
        raise SchemaError(f"{kind} body does not decode with schema id {schema_id}") from exc
    if body.tell() != len(data) - HEADER_BYTES:
        raise SchemaError(
            f"{kind} message has {len(data) - HEADER_BYTES - body.tell()} trailing bytes"
        )
    if not isinstance(record, dict):
        raise SchemaError(f"{kind} body did not decode to a record")
    return record
