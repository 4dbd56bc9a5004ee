"""Typed wire records (schemas.records): the rules a parsed record obeys, one result builder."""

from __future__ import annotations

import math
from typing import Any

import pytest

import schemas
from schemas.records import (
    MAX_SEQ,
    EdgeOutput,
    FrameWindow,
    OffloadRequest,
    RecordValueError,
    build_result,
    check_stream_id,
    parse_frame_window,
    parse_offload_request,
    parse_result,
)


def window_record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "stream_id": "cam-01",
        "window_seq": 7,
        "capture_start_ns": 1_000,
        "capture_end_ns": 2_000,
        "fps": 8.0,
        "width": 4,
        "height": 2,
        "frame_count": 1,
        "codec": "raw-gray8",
        "payload": b"\x01" * 8,
    }
    return record | changes


def framed(**changes: Any) -> bytes:
    return schemas.encode("frame_window", window_record(**changes), max_bytes=10**7)


def test_a_valid_window_round_trips_unchanged() -> None:
    window = parse_frame_window(framed())
    assert window == FrameWindow(**window_record())
    assert window.encode() == framed()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"stream_id": ""}, "stream_id"),
        ({"stream_id": "x" * 129}, "stream_id"),
        ({"stream_id": "cam 1"}, "stream_id"),
        ({"stream_id": "cam/1"}, "stream_id"),
        ({"stream_id": "kamera-\u00e9"}, "stream_id"),
        ({"stream_id": "x" * 600_000}, "stream_id"),
        ({"window_seq": -1}, "window_seq"),
        ({"window_seq": 2**53}, "window_seq"),
        ({"window_seq": 2**60}, "window_seq"),
        ({"capture_start_ns": -1}, "capture_start_ns"),
        ({"capture_end_ns": 999}, "capture_end_ns"),
        ({"fps": math.nan}, "fps"),
        ({"fps": math.inf}, "fps"),
        ({"fps": 0.0}, "fps"),
        ({"fps": -8.0}, "fps"),
        ({"fps": 121.0}, "fps"),
        ({"width": 0}, "width"),
        ({"height": -2}, "height"),
        ({"width": 8194}, "width"),
        ({"frame_count": 0}, "frame_count"),
        ({"frame_count": 2**31 - 1}, "frame_count"),
        ({"codec": "vp9"}, "codec"),
    ],
)
def test_values_outside_the_contract_are_refused_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(RecordValueError, match=field):
        parse_frame_window(framed(**changes))


def test_edge_values_of_the_ranges_are_accepted() -> None:
    window = parse_frame_window(
        framed(
            stream_id="A.b_c:d-" + "9" * 120,
            window_seq=MAX_SEQ,
            capture_start_ns=0,
            capture_end_ns=2**63 - 1,
            fps=120.0,
        )
    )
    assert window.window_seq == 2**53 - 1 and len(window.stream_id) == 128


def test_stream_id_rule() -> None:
    assert check_stream_id("cam-01.a:b_c") == "cam-01.a:b_c"
    for bad in ("", " ", "a\nb", "x" * 129, "\u0430bc", 5):
        with pytest.raises(RecordValueError, match="1-128 characters"):
            check_stream_id(bad)


def test_offload_request_round_trips_and_validates_reason_and_times() -> None:
    request = OffloadRequest(
        window=FrameWindow(**window_record()),
        edge=EdgeOutput(p_fall=0.6, switcher_score=0.7, threshold=0.5, embedding=(0.25,)),
        reason="uncertain",
        model_versions={"edge": "e@1"},
        offloaded_at_ns=5,
        deadline_ns=10,
    )
    assert parse_offload_request(request.encode()) == request
    bad = request.to_avro() | {"reason": "because"}
    with pytest.raises(RecordValueError, match="reason"):
        parse_offload_request(schemas.encode("offload_request", bad))
    bad = request.to_avro() | {"deadline_ns": -1}
    with pytest.raises(RecordValueError, match="deadline_ns"):
        parse_offload_request(schemas.encode("offload_request", bad))
    bad = request.to_avro()
    bad["window"]["window_seq"] = 2**60
    with pytest.raises(RecordValueError, match="window_seq"):
        parse_offload_request(schemas.encode("offload_request", bad))


def test_build_result_is_the_window_identity_plus_the_answer() -> None:
    window = FrameWindow(**window_record())
    common: dict[str, Any] = {
        "decided_by": "cloud",
        "switcher_score": 0.9,
        "model_versions": {"cloud": "c@1"},
        "latencies_s": {"cloud": 0.01},
        "produced_at_ns": 3_000,
        "snapshot_jpeg": b"\xff\xd8jpeg",
    }
    fall = build_result(window, p_fall=0.9, label=1, **common)
    no_fall = build_result(window, p_fall=0.1, label=0, **common)
    assert (fall.stream_id, fall.window_seq, fall.capture_start_ns, fall.capture_end_ns) == (
        "cam-01",
        7,
        1_000,
        2_000,
    )
    assert fall.snapshot_jpeg == b"\xff\xd8jpeg" and no_fall.snapshot_jpeg is None
    assert parse_result(fall.encode()) == fall
    assert fall.key == b"cam-01"
    with pytest.raises(RecordValueError, match="decided_by"):
        build_result(window, p_fall=0.5, label=1, **(common | {"decided_by": "oracle"}))


def test_parsers_raise_only_schema_errors_for_garbage() -> None:
    for data in (b"", b"\x00\x00\x00\x00\x01", b"\xff" * 40, framed()[:-3]):
        with pytest.raises(schemas.SchemaError):
            parse_frame_window(data)
