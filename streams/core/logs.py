"""Structured logging for the entry points: JSON lines on stdout, configured once.

Inputs: a level name and whether to emit JSON (default) or plain text (for a terminal).
Output: the root logger writes one JSON object per record to `stream` (stdout by
default) with `time` (RFC 3339 UTC), `level`, `logger`, `message` (the event name, e.g.
"dead_letter") and every `extra={...}` field of the call.

Guarantees:
- Idempotent: calling `configure_logging` again replaces the handler it installed
  earlier (never duplicates lines) and leaves handlers installed by others (pytest).
- Noisy third-party loggers (`NOISY_LIBRARIES`: kafka, aiokafka, faust's transports)
  are capped at WARNING, even at DEBUG, unless `verbose_libraries=True`.
- Library modules never call this; they only use `logging.getLogger(__name__)`.
Failure modes: `ValueError` for an unknown level name.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

__all__ = ["NOISY_LIBRARIES", "configure_logging"]

NOISY_LIBRARIES: tuple[str, ...] = ("kafka", "aiokafka", "faust.transport", "mode", "urllib3")
_HANDLER_NAME = "fallwatch"


class _UtcJsonFormatter(JsonFormatter):
    """JSON lines with an RFC 3339 UTC `time` in milliseconds."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def _formatter(json: bool) -> logging.Formatter:
    if not json:
        return logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    fmt: Any = _UtcJsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        json_ensure_ascii=False,
    )
    return fmt  # type: ignore[no-any-return]


def configure_logging(
    level: str = "INFO",
    *,
    json: bool = True,
    stream: IO[str] | None = None,
    verbose_libraries: bool = False,
) -> logging.Handler:
    """Install the fallwatch handler on the root logger; returns it (tests inspect it)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
            existing.close()
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(_formatter(json))
    root.addHandler(handler)
    root.setLevel(numeric)
    library_level = numeric if verbose_libraries else max(numeric, logging.WARNING)
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(library_level)
    logging.captureWarnings(True)
    return handler
