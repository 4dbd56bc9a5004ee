"""TEST-ONLY crash points: a worker SIGKILLs itself at a named dangerous point, once.

What for: the kill -9 test (tests/e2e/test_kill9.py) must kill workers exactly where a crash
hurts most, which a kill from outside hits only by luck. Never set these in production.

Inputs: ``Settings.test_crash_at`` (``FALLWATCH_TEST_CRASH_AT``: comma-separated names
from ``CRASH_POINTS``) and ``Settings.test_crash_dir`` (``FALLWATCH_TEST_CRASH_DIR``: a
folder for the once-markers). Both unset by default: ``reach`` is then a no-op (one set
lookup), so the hooks are inert in every deployment.
Outputs: at an armed point reached for the first time (no marker yet), the marker
``<dir>/<point>.crashed`` is created (O_EXCL, holding the pid, fsynced), one
``test_crash_point`` log line is written, and the process sends itself SIGKILL: no
clean-up, no flush, no commit runs, as with an operator's ``kill -9``. A restarted worker
with the same settings finds the marker and goes on, so each point fires once per folder.

Points (where the call sits):
- ``edge_after_pending``: edge agent, the pending-offload entry written to Redis, the offload
  request not yet published.
- ``events_after_commit``: events agent, the tracker committed new alerts (state + outbox)
  to Redis, the alerts not yet published.
- ``cloud_after_publish``: cloud worker, the batch's results acknowledged by Kafka, the
  pending entries not yet removed and the offsets not yet committed.
Failure modes: an unwritable marker folder raises ``OSError`` at the point (the test's
set-up is wrong; nothing else is affected).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.core.settings import Settings

__all__ = ["CRASH_POINTS", "CrashPoints"]

log = logging.getLogger(__name__)

CRASH_POINTS = frozenset({"edge_after_pending", "events_after_commit", "cloud_after_publish"})


class CrashPoints:
    """The armed crash points of one process (inert when none are armed)."""

    def __init__(self, points: Iterable[str] = (), directory: Path | None = None) -> None:
        self._armed = set(points)
        unknown = self._armed - CRASH_POINTS
        if unknown:
            raise ValueError(f"unknown crash points {sorted(unknown)}")
        if self._armed and directory is None:
            raise ValueError("armed crash points need a marker directory")
        self._dir = directory

    @classmethod
    def from_settings(cls, settings: Settings) -> CrashPoints:
        names = [n for n in settings.test_crash_at.split(",") if n]
        return cls(names, settings.test_crash_dir)

    @property
    def armed(self) -> frozenset[str]:
        return frozenset(self._armed)

    def marker(self, point: str) -> Path:
        """The file that says ``point`` has fired (its content: the pid that fired it)."""
        if self._dir is None:
            raise ValueError("no marker directory")
        return self._dir / f"{point}.crashed"

    def reach(self, point: str) -> None:
        """SIGKILL this process if ``point`` is armed and has not fired yet; else return."""
        if point not in self._armed:
            return
        self._armed.discard(point)  # one check per point and process, fired or not
        try:
            fd = os.open(self.marker(point), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return  # fired before (an earlier run of this worker)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        log.critical("test_crash_point", extra={"point": point, "pid": os.getpid()})
        os.kill(os.getpid(), signal.SIGKILL)
