"""Dead-letter headers (streams.kafka.deadletter): the contract's headers, bounded, merged."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest

from streams.core.errors import (
    MessageSchemaError,
    PoisonMessageError,
    WindowDecodeError,
    WindowDimensionsError,
)
from streams.kafka.deadletter import (
    MAX_ERROR_CHARS,
    REQUIRED_HEADERS,
    dead_letter_headers,
    merge_headers,
    parse_headers,
    poison_reason,
)


def header_schema() -> jsonschema.Draft202012Validator:
    schema = json.loads(resources.files("schemas").joinpath("dead_letter.v1.json").read_text())
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (WindowDecodeError("bad h264"), "decode"),
        (WindowDimensionsError("too big"), "dimensions"),
        (MessageSchemaError("bad avro"), "schema"),
        (PoisonMessageError("?"), "poison"),
        (ValueError("not ours"), "poison"),
    ],
)
def test_headers_match_schema_and_name_the_reason(error: Exception, reason: str) -> None:
    headers = dead_letter_headers(
        source_topic="fallwatch.frames",
        partition=3,
        offset=42,
        error=error,
        worker="edge",
        now_ns=5,
    )
    parsed = parse_headers(headers)
    header_schema().validate(parsed)
    assert all(name in parsed for name in REQUIRED_HEADERS)
    assert parsed["fallwatch.dlq.partition"] == "3"
    assert parsed["fallwatch.dlq.offset"] == "42"
    assert parsed["fallwatch.dlq.error_class"] == type(error).__name__
    assert parsed["fallwatch.dlq.reason"] == reason == poison_reason(error)
    assert parsed["fallwatch.dlq.worker"] == "edge"
    assert all(isinstance(v, bytes) for _, v in headers)


def test_error_text_is_bounded_and_unprintable_errors_survive() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("boom")

    long_headers = parse_headers(
        dead_letter_headers(source_topic="t", partition=0, offset=0, error=ValueError("x" * 10_000))
    )
    assert len(long_headers["fallwatch.dlq.error"]) == MAX_ERROR_CHARS
    odd = parse_headers(
        dead_letter_headers(source_topic="t", partition=0, offset=0, error=Unprintable())
    )
    assert "Unprintable" in odd["fallwatch.dlq.error"]
    header_schema().validate(odd)


def test_merge_replaces_stale_dead_letter_headers_and_keeps_others() -> None:
    old = [("trace-id", b"abc"), ("fallwatch.dlq.offset", b"1"), ("empty", None)]
    new = dead_letter_headers(source_topic="t", partition=1, offset=9, error=ValueError("e"))
    merged = merge_headers(old, new)
    assert ("trace-id", b"abc") in merged and ("empty", b"") in merged
    assert [v for k, v in merged if k == "fallwatch.dlq.offset"] == [b"9"]
