"""The bare inference loop, in its own process: ``python -m load_tests.bare RECORDS_FILE``.

Inputs: a file of ``frame_window`` Avro records (each prefixed by its 4-byte big-endian
length; written by ``write_records``), settings from ``FALLWATCH_*`` (model paths,
``inference_threads``, ``edge_batch_max``, ``cloud_batch_max``, caps) — the benchmark passes
the same environment the edge worker gets.
What it does: loads the edge model and switcher exactly as the edge worker does
(``inference_threads``), runs one untimed warm-up batch, then times
``streams.edge.inference.compute_batch`` (Avro + H.264 decode, edge model, switcher, routing,
snapshots) over every record in batches of ``edge_batch_max`` — the same work the edge
worker does per batch, minus Kafka, Faust and Redis. With ``--cloud-timing`` it then times
the cloud model on the decoded windows in batches of ``cloud_batch_max``.
Output: one JSON line on stdout: windows, seconds, windows/s, CPU seconds, per-stage ms per
window (decode, edge, switcher[, cloud]) and the routing paths.

Why a subprocess: the benchmark process runs a Kafka producer and an output collector
whose threads would share this loop's GIL; the edge worker is a process of its own, so the
fair baseline is one too. Failure modes: exit 1 with the error on stderr.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.core.settings import Settings

__all__ = ["main", "read_records", "run_bare", "write_records"]

_LEN = struct.Struct(">I")


def write_records(path: Path, records: Iterable[bytes]) -> int:
    """Write length-prefixed records; returns how many."""
    count = 0
    with path.open("wb") as handle:
        for record in records:
            handle.write(_LEN.pack(len(record)))
            handle.write(record)
            count += 1
    return count


def read_records(path: Path) -> Iterator[bytes]:
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
        (size,) = _LEN.unpack_from(data, offset)
        offset += _LEN.size
        yield data[offset : offset + size]
        offset += size


def run_bare(values: list[bytes], *, cloud_timing: bool) -> dict[str, Any]:
    """Time compute_batch over ``values`` (see module docstring)."""
    from streams.core.settings import get_settings

    settings = get_settings()
    out = _time_edge(values, settings)
    if cloud_timing:
        out["stage_ms"]["cloud"] = _time_cloud_ms(values, settings)
    return out


def _time_edge(values: list[bytes], settings: Settings) -> dict[str, Any]:
    """One untimed warm-up batch, then every record through ``compute_batch`` in batches of
    ``edge_batch_max``: rate, CPU, routing paths and per-stage ms per window."""
    from models.runtime.onnx_models import EdgeModel, Switcher
    from streams.edge.inference import InboundMessage, compute_batch

    threads = settings.inference_threads
    edge = EdgeModel.load(settings.edge_model_path, threads=threads)
    switcher = Switcher.load(settings.switcher_model_path, threads=threads)
    threshold = (
        switcher.threshold if settings.switcher_threshold is None else settings.switcher_threshold
    )
    messages = [
        InboundMessage(settings.topic_frames, 0, i, None, value, [])
        for i, value in enumerate(values)
    ]
    batch = settings.edge_batch_max

    def run(chunk: list[InboundMessage]) -> Any:
        return compute_batch(
            chunk, edge=edge, switcher=switcher, threshold=threshold, settings=settings
        )

    run(messages[:batch])  # warm-up: first-call allocations and code paths, not measured
    paths: Counter[str] = Counter()
    decode_s = edge_s = switcher_s = 0.0
    started, cpu0 = time.perf_counter(), time.process_time()
    for start in range(0, len(messages), batch):
        outcome = run(messages[start : start + batch])
        paths.update(w.decision.path for w in outcome.routed)
        paths["poisoned"] += len(outcome.poisoned)
        decode_s += outcome.decode_s
        edge_s += outcome.edge_s
        switcher_s += outcome.switcher_s
    seconds = time.perf_counter() - started
    cpu_s = time.process_time() - cpu0
    n = len(messages)
    return {
        "windows": n,
        "seconds": seconds,
        "windows_per_s": n / seconds,
        "cpu_s": cpu_s,
        "paths": dict(paths),
        "stage_ms": {"decode": 1000 * decode_s / n, "edge": 1000 * edge_s / n,
                     "switcher": 1000 * switcher_s / n},
    }  # fmt: skip


def _time_cloud_ms(values: list[bytes], settings: Settings) -> float:
    """The cloud model's ms per window on the decoded windows, in batches of
    ``cloud_batch_max`` (decoding not timed)."""
    import schemas
    from models.runtime.onnx_models import CloudModel
    from streams.core.video import decode_window

    cloud = CloudModel.load(settings.cloud_model_path, threads=settings.inference_threads)
    frames = []
    for value in values:
        rec = schemas.decode("frame_window", value)
        frames.append(
            decode_window(rec["payload"], rec["codec"], rec["width"], rec["height"],
                          rec["frame_count"])
        )  # fmt: skip
    t = time.perf_counter()
    for start in range(0, len(frames), settings.cloud_batch_max):
        cloud.predict(frames[start : start + settings.cloud_batch_max])
    return 1000 * (time.perf_counter() - t) / len(frames)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load_tests.bare")
    parser.add_argument("records", type=Path, help="length-prefixed frame_window records")
    parser.add_argument("--cloud-timing", action="store_true", help="also time the cloud model")
    args = parser.parse_args(argv)
    values = list(read_records(args.records))
    if not values:
        print("no records", file=sys.stderr)
        return 1
    try:
        result = run_bare(values, cloud_timing=args.cloud_timing)
    except Exception as exc:  # report, never a traceback the harness has to parse
        print(f"bare loop failed: {exc!r}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
