"""load_tests.harness bookkeeping (no network): the tally, the drain's exits, the clean exit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from load_tests.chaos import main as chaos_main
from load_tests.collector import SeenResult
from load_tests.fleet import FleetStats, PublishedWindow
from load_tests.harness import RunHarness, RunTally
from streams.core.settings import Settings


def result(stream: str, seq: int, decided_by: str) -> SeenResult:
    return SeenResult(stream, seq, decided_by, 0, 0, 0, 0)


def test_tally_counts_lost_repeated_and_deciders() -> None:
    published = [PublishedWindow("a", seq, 0, 0) for seq in range(4)]
    results = [result("a", 0, "edge"), result("a", 1, "cloud"), result("a", 1, "edge-fallback")]
    tally = RunTally(published, results)
    assert tally.lost == ["a:2", "a:3"]
    assert tally.repeated == 1
    assert tally.decided_by == {"edge": 1, "cloud": 1, "edge-fallback": 1}


class FakeWorker:
    def __init__(self, code: int | None) -> None:
        self.code = code
        self.stopped = False

    def exited(self) -> int | None:
        return self.code

    def stop(self) -> int | None:
        self.stopped = True
        return 0


class FakeCollector:
    def __init__(self, results: list[SeenResult]) -> None:
        self._results = results
        self.stopped = False

    def results(self) -> list[SeenResult]:
        return list(self._results)

    def seconds_since_last_record(self) -> float:
        return 60.0

    def stop(self) -> None:
        self.stopped = True


class BrokenSink:
    def close(self) -> None:
        raise RuntimeError("close failed")


def harness(workers: dict[str, Any], results: list[SeenResult], tmp_path: Path) -> RunHarness:
    run = RunHarness(
        Settings(),
        "r",
        tmp_path,
        sink_factory=lambda s, c: BrokenSink(),
        keep=True,  # type: ignore[arg-type,return-value]
    )
    run.workers = workers
    run.collector = FakeCollector(results)  # type: ignore[assignment]
    run.stats = FleetStats(target_rate=None)
    run.stats.published = [PublishedWindow("a", 0, 0, 0)]
    return run


def test_drain_ends_when_every_window_is_decided_or_a_worker_exited(tmp_path: Path) -> None:
    done = harness({"edge": FakeWorker(None)}, [result("a", 0, "edge")], tmp_path)
    assert done.drain(timeout_s=30.0, quiet_s=5.0)[0] is True
    crashed = harness({"edge": FakeWorker(1)}, [], tmp_path)
    assert crashed.drain(timeout_s=30.0, quiet_s=5.0)[0] is False


def test_exit_stops_workers_and_collector_even_when_the_sink_close_fails(tmp_path: Path) -> None:
    workers = {"edge": FakeWorker(None), "cloud": FakeWorker(None)}
    run = harness(workers, [], tmp_path)
    run.sink = BrokenSink()  # type: ignore[assignment]
    run.__exit__(RuntimeError, RuntimeError("body failed"), None)
    assert all(w.stopped for w in workers.values())
    assert run.exit_codes == {"edge": 0, "cloud": 0}
    assert run.collector.stopped  # type: ignore[attr-defined]


def test_chaos_refuses_an_unknown_fault() -> None:
    with pytest.raises(SystemExit):
        chaos_main(["--faults", "worker-kill9,nope"])
