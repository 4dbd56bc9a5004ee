"""Avro wire formats: round trips, framing, hostile bytes, schema evolution."""

from __future__ import annotations

import itertools
import json
import struct
from importlib import resources
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas
from schemas.registry import (
    KINDS,
    SCHEMA_VERSIONS,
    SchemaRegistry,
    SchemaVersion,
    compatibility_problems,
    default_registry,
)


def frame_window_record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "stream_id": "cam-1",
        "window_seq": 42,
        "capture_start_ns": 1_700_000_000_000_000_000,
        "capture_end_ns": 1_700_000_002_000_000_000,
        "fps": 8.0,
        "width": 160,
        "height": 120,
        "frame_count": 16,
        "codec": "h264",
        "payload": bytes(range(256)) * 4,
    }
    record.update(overrides)
    return record


def offload_request_record() -> dict[str, Any]:
    return {
        "window": frame_window_record(),
        "edge": {"p_fall": 0.4, "switcher_score": 0.8, "threshold": 0.5, "embedding": [0.5, -1.0]},
        "reason": "uncertain",
        "model_versions": {"edge": "1.0", "switcher": "1.0"},
        "offloaded_at_ns": 1_700_000_002_100_000_000,
        "deadline_ns": 1_700_000_007_100_000_000,
    }


def result_record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "stream_id": "cam-1",
        "window_seq": 42,
        "capture_start_ns": 1,
        "capture_end_ns": 2,
        "p_fall": 0.75,
        "label": 1,
        "decided_by": "cloud",
        "switcher_score": 0.9,
        "model_versions": {"cloud": "2.1"},
        "latencies_s": {"cloud": 0.031, "decode": 0.004},
        "produced_at_ns": 3,
        "snapshot_jpeg": b"\xff\xd8\xff\xd9",
    }
    record.update(overrides)
    return record


SAMPLES = {
    "frame_window": frame_window_record,
    "offload_request": offload_request_record,
    "result": result_record,
}


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_every_kind(kind: str) -> None:
    record = SAMPLES[kind]()
    data = schemas.encode(kind, record)
    assert schemas.decode(kind, data) == record


@pytest.mark.parametrize("kind", KINDS)
def test_framing_is_magic_byte_and_registered_id(kind: str) -> None:
    data = schemas.encode(kind, SAMPLES[kind]())
    magic, schema_id = struct.unpack(">bI", data[:5])
    assert magic == 0
    assert default_registry().entry(schema_id).kind == kind
    assert schemas.peek_schema_id(data) == schema_id


def test_optional_fields_default_when_omitted() -> None:
    record = result_record()
    del record["snapshot_jpeg"], record["switcher_score"]
    decoded = schemas.decode("result", schemas.encode("result", record))
    assert decoded["snapshot_jpeg"] is None
    assert decoded["switcher_score"] is None


@pytest.mark.parametrize(
    "record",
    [
        frame_window_record(window_seq="7"),
        frame_window_record(extra_field=1),
        {k: v for k, v in frame_window_record().items() if k != "payload"},
        frame_window_record(width=2**40),
    ],
    ids=["wrong-type", "extra-field", "missing-field", "int-overflow"],
)
def test_encode_rejects_records_not_matching_schema(record: dict[str, Any]) -> None:
    with pytest.raises(schemas.SchemaError):
        schemas.encode("frame_window", record)


def test_encode_refuses_windows_above_cap() -> None:
    record = frame_window_record(payload=b"\x00" * schemas.MAX_WINDOW_BYTES)
    with pytest.raises(schemas.RecordTooLargeError):
        schemas.encode("frame_window", record)


def test_decode_enforces_callers_size_cap_before_parsing() -> None:
    data = schemas.encode("frame_window", frame_window_record())
    with pytest.raises(schemas.RecordTooLargeError):
        schemas.decode("frame_window", data, max_bytes=len(data) - 1)
    assert schemas.decode("frame_window", data, max_bytes=len(data))["window_seq"] == 42


def test_decode_rejects_unknown_magic_unknown_id_and_other_kind() -> None:
    data = schemas.encode("frame_window", frame_window_record())
    with pytest.raises(schemas.SchemaError, match="magic"):
        schemas.decode("frame_window", b"\x01" + data[1:])
    with pytest.raises(schemas.SchemaError, match="unknown schema id"):
        schemas.decode("frame_window", b"\x00\x00\x00\xff\xff" + data[5:])
    with pytest.raises(schemas.SchemaError, match="expected result"):
        schemas.decode("result", data)


@pytest.mark.parametrize("kind", KINDS)
def test_decode_rejects_every_truncation_and_trailing_bytes(kind: str) -> None:
    data = schemas.encode(kind, SAMPLES[kind]())
    for cut in range(len(data)):
        with pytest.raises(schemas.SchemaError):
            schemas.decode(kind, data[:cut])
    with pytest.raises(schemas.SchemaError, match="trailing"):
        schemas.decode(kind, data + b"\x00")


def test_decode_rejects_invalid_utf8() -> None:
    data = schemas.encode("result", result_record(stream_id="ab"))
    # Body starts with the string length (zig-zag 4) then "ab".
    corrupted = data[:6] + b"\xff\xfe" + data[8:]
    with pytest.raises(schemas.SchemaError):
        schemas.decode("result", corrupted)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), body=st.binary(max_size=300), schema_id=st.integers(0, 5))
def test_random_bodies_only_raise_schema_error(kind: str, body: bytes, schema_id: int) -> None:
    data = struct.pack(">bI", 0, schema_id) + body
    try:
        record = schemas.decode(kind, data)
    except schemas.SchemaError:
        return
    assert isinstance(record, dict)  # a random body can be a valid (tiny) record


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=64))
def test_random_bytes_only_raise_schema_error(data: bytes) -> None:
    try:
        schemas.decode("frame_window", data)
    except schemas.SchemaError:
        return
    assert data[0] == 0


# --- schema evolution -----------------------------------------------------------------

V2_ID = 1_000_003


def result_v2_document() -> dict[str, Any]:
    """A throwaway result v2: one added field with a default (the only allowed change)."""
    document = default_registry().document(3)
    document["fields"].append(
        {"name": "zone", "type": "string", "default": "unknown", "doc": "test-only field"}
    )
    return document


def test_new_reader_reads_old_records_filling_defaults() -> None:
    v2 = SchemaVersion(V2_ID, "result", 2, document=result_v2_document())
    v2_registry = default_registry().with_version(v2)
    old_bytes = schemas.encode("result", result_record())  # written by a v1 writer
    decoded = schemas.decode("result", old_bytes, registry=v2_registry)
    assert decoded["zone"] == "unknown"
    assert {k: v for k, v in decoded.items() if k != "zone"} == result_record()


def test_old_reader_reads_records_written_with_added_field() -> None:
    v2 = SchemaVersion(V2_ID, "result", 2, document=result_v2_document())
    writer = default_registry().with_version(v2)
    new_bytes = schemas.encode("result", {**result_record(), "zone": "kitchen"}, registry=writer)
    assert schemas.peek_schema_id(new_bytes) == V2_ID
    # A v1 reader that knows the new id (readers are rolled out first) but reads as v1.
    v1_reader = default_registry().with_version(v2, reader_versions={"result": 1})
    decoded = schemas.decode("result", new_bytes, registry=v1_reader)
    assert decoded == result_record()
    # A reader that was never told about the new id cannot guess: it rejects cleanly.
    with pytest.raises(schemas.SchemaError, match="unknown schema id"):
        schemas.decode("result", new_bytes)


def test_compatibility_rules_accept_added_default_and_reject_breaking_changes() -> None:
    v1 = default_registry().document(3)
    assert compatibility_problems(v1, result_v2_document()) == []

    no_default = result_v2_document()
    del no_default["fields"][-1]["default"]
    removed = default_registry().document(3)
    removed["fields"] = [f for f in removed["fields"] if f["name"] != "p_fall"]
    retyped = default_registry().document(3)
    next(f for f in retyped["fields"] if f["name"] == "label")["type"] = "string"
    renamed = default_registry().document(3)
    renamed["name"] = "Outcome"
    for broken, needle in [
        (no_default, "without a default"),
        (removed, "removed"),
        (retyped, "retyped"),
        (renamed, "name changed"),
    ]:
        problems = compatibility_problems(v1, broken)
        assert any(needle in p for p in problems), problems


def test_every_registered_version_is_compatible_with_its_predecessor() -> None:
    registry = default_registry()
    for kind in KINDS:
        versions = sorted((v for v in SCHEMA_VERSIONS if v.kind == kind), key=lambda v: v.version)
        assert versions, kind
        for old, new in itertools.pairwise(versions):
            old_doc, new_doc = registry.document(old.schema_id), registry.document(new.schema_id)
            assert compatibility_problems(old_doc, new_doc) == [], (kind, new.version)


def test_schema_ids_are_unique_and_files_are_package_data() -> None:
    ids = [v.schema_id for v in SCHEMA_VERSIONS]
    assert len(ids) == len(set(ids))
    for version in SCHEMA_VERSIONS:
        assert version.resource is not None
        text = resources.files("schemas").joinpath(version.resource).read_text()
        assert json.loads(text)["type"] == "record"


def test_registry_parses_lazily_and_once() -> None:
    registry = SchemaRegistry()
    assert registry._parsed == {}
    first = registry.parsed(1)
    assert registry.parsed(1) is first
    assert set(registry._parsed) == {1}
