"""Dead-letter headers (schemas/dead_letter.v1.json): where a rejected message came from and why.

Inputs: the source topic/partition/offset of a consumed message and the exception that
rejected it. Outputs: Kafka headers `[(name, utf-8 bytes)]` to publish with the ORIGINAL
key and value bytes (never re-encoded) on the dead-letter topic.

Guarantees:
- Always the five required headers `fallwatch.dlq.source_topic`, `.partition`,
  `.offset`, `.error_class`, `.error`, plus `.reason` (bounded slug, the metrics label),
  `.failed_at_ns` and, when given, `.worker`.
- `.error` is truncated to `MAX_ERROR_CHARS` characters, so a huge exception message can
  never push the dead letter over the broker's size limit.
- `merge_headers` drops any `fallwatch.dlq.*` headers already on the message (a
  dead letter replayed into the pipeline and rejected again says where it failed LAST)
  and keeps the producer's other headers.
Building headers cannot fail for any exception object.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

__all__ = [
    "DLQ_HEADER_PREFIX",
    "MAX_ERROR_CHARS",
    "REQUIRED_HEADERS",
    "dead_letter_headers",
    "merge_headers",
    "parse_headers",
    "poison_reason",
]

DLQ_HEADER_PREFIX = "fallwatch.dlq."
MAX_ERROR_CHARS = 1024
REQUIRED_HEADERS: tuple[str, ...] = tuple(
    DLQ_HEADER_PREFIX + name
    for name in ("source_topic", "partition", "offset", "error_class", "error")
)

Headers = list[tuple[str, bytes]]


def poison_reason(exc: BaseException) -> str:
    """The bounded `reason` slug of an error: its class attribute `reason`, else "poison"."""
    reason = getattr(type(exc), "reason", None)
    return reason if isinstance(reason, str) and reason else "poison"


def _error_text(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # a broken __str__ must not stop dead-lettering
        text = f"<unprintable {type(exc).__name__}>"
    return text[:MAX_ERROR_CHARS]


def dead_letter_headers(
    *,
    source_topic: str,
    partition: int,
    offset: int,
    error: BaseException,
    worker: str | None = None,
    now_ns: int | None = None,
) -> Headers:
    """The `fallwatch.dlq.*` headers for a message rejected with `error`."""
    values = {
        "source_topic": source_topic,
        "partition": str(int(partition)),
        "offset": str(int(offset)),
        "error_class": type(error).__name__,
        "error": _error_text(error),
        "reason": poison_reason(error),
        "failed_at_ns": str(time.time_ns() if now_ns is None else int(now_ns)),
    }
    if worker:
        values["worker"] = worker
    return [
        (DLQ_HEADER_PREFIX + name, value.encode("utf-8", errors="replace"))
        for name, value in values.items()
    ]


def merge_headers(
    original: Iterable[tuple[str, bytes | None]], dlq: Sequence[tuple[str, bytes]]
) -> Headers:
    """The message's own headers without stale `fallwatch.dlq.*` ones, then `dlq`."""
    kept = [(k, v or b"") for k, v in original if not k.startswith(DLQ_HEADER_PREFIX)]
    return kept + list(dlq)


def parse_headers(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    """The `fallwatch.dlq.*` headers of a dead letter as a dict of strings (for tools/tests)."""
    return {
        k: (v or b"").decode("utf-8", errors="replace")
        for k, v in headers
        if k.startswith(DLQ_HEADER_PREFIX)
    }
