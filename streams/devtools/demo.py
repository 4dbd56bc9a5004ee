"""`fallwatch demo`: the whole pipeline on the local stack with synthetic cameras.

Inputs: `Settings` (Kafka/Redis addresses, models, thresholds) and `DemoOptions`
(cameras, seconds per camera, falls per camera, seed, JSON path).
What it does, in order:
1. Fails fast (`DemoError`) when Kafka or Redis is unreachable ("run `make up`").
2. Isolates the run: topic names, consumer groups and the Redis prefix all carry a
   unique run id, so repeated demos never see each other's data; free HTTP ports.
3. Creates the topics, starts `fallwatch edge` and `fallwatch cloud` as subprocesses
   (environment overrides; logs in the run directory), renders the synthetic scenes
   meanwhile, and waits for both workers' /readyz.
4. Runs one in-process gateway thread per camera (`streams.gateway.gateway.Gateway`, paced in
   real time unless `paced=False`, starts staggered over one stride), while a
   collector thread reads the alerts, results, offload and dead-letter topics and
   prints each alert as it arrives.
5. Waits (bounded) until every published window has a result and alerts are quiet,
   stops workers with SIGTERM (SIGKILL after a grace period), deletes the run's topics
   and Redis keys (unless `keep_data`), and prints/writes the summary
   (`streams.devtools.report.build_summary`).

Outputs: the summary dict (also printed as a table and written as JSON when asked), with
`ok` false when a worker died or windows were left without a result.
Failure modes: `DemoError` for an unreachable stack, a worker that exits or never gets
ready (its log path is in the message); everything started is stopped in all cases.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from streams.core.errors import FallwatchError
from streams.core.settings import Settings
from streams.devtools.collector import PipelineCollector
from streams.devtools.report import (
    PublishedWindow,
    StagedFall,
    WindowGeometry,
    build_summary,
    format_summary,
)
from streams.devtools.workers import (
    REPO_ROOT,
    WorkerProcess,
    WorkerStartError,
    cleanup_run,
    isolated_run,
    wait_all_ready,
)

__all__ = ["DemoError", "DemoOptions", "preflight", "run_demo"]

log = logging.getLogger(__name__)

_QUIET_S = 4.0


class DemoError(FallwatchError):
    """Raised by `run_demo` when the local stack is unreachable or a worker fails to start
    or dies. Operator: run `make up` (and `make status`); read the worker log named in
    the message."""


@dataclass(frozen=True)
class DemoOptions:
    """One demo run."""

    cameras: int = 4
    duration_s: float = 90.0
    falls_per_camera: int = 2
    seed: int = 0
    json_path: Path | None = None
    paced: bool = True
    run_dir: Path | None = None
    startup_timeout_s: float = 120.0
    drain_timeout_s: float = 40.0
    keep_data: bool = False
    print_alerts: bool = True
    out: TextIO | None = None


@dataclass
class _Camera:
    stream_id: str
    frames: Any
    fps: float
    falls: list[Any]
    thread: threading.Thread | None = None
    stats: Any = None
    error: BaseException | None = None
    published: list[PublishedWindow] = field(default_factory=list)


def _check_tcp(hostport: str, what: str) -> None:
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=3):
            return
    except (OSError, ValueError) as exc:
        raise DemoError(
            f"{what} is not reachable at {hostport} ({exc}); start the local stack with "
            "`make up` (or `make demo`, which does it) and check `make status`"
        ) from exc


def preflight(settings: Settings) -> None:
    """Fail fast with a clear message when Kafka or Redis is down."""
    import redis

    from streams.events.client import sync_redis

    first_broker = settings.kafka_bootstrap.split(",")[0].strip()
    _check_tcp(first_broker, "Kafka")
    client = sync_redis(settings)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise DemoError(
            f"Redis is not reachable at {settings.redis_url_masked} ({exc}); start the local "
            "stack with `make up`"
        ) from exc
    finally:
        client.close()


def _render_cameras(settings: Settings, options: DemoOptions) -> list[_Camera]:
    from streams.gateway.gateway import synthetic_source

    cameras = []
    for i in range(options.cameras):
        frames, fps, falls = synthetic_source(
            options.seed + i,
            options.duration_s,
            options.falls_per_camera,
            settings.gateway_width,
            settings.gateway_height,
            settings.gateway_fps,
        )
        cameras.append(_Camera(f"cam{i:02d}", frames, fps, falls))
    return cameras


def _run_camera(
    camera: _Camera,
    settings: Settings,
    options: DemoOptions,
    stop: threading.Event,
    collector: PipelineCollector,
    start_delay_s: float,
) -> None:
    from streams.gateway.gateway import Gateway, GatewayOptions, KafkaWindowSink, array_source

    gw_options = GatewayOptions.from_settings(
        settings, stream_id=camera.stream_id, paced=options.paced, synthetic=True
    )

    def on_window(seq: int, capture_end_ns: int) -> None:
        window = PublishedWindow(camera.stream_id, seq, capture_end_ns, time.time_ns())
        camera.published.append(window)
        collector.note_window(window)

    sink = KafkaWindowSink(
        settings, settings.topic_frames, client_id=f"fallwatch-demo-{camera.stream_id}"
    )
    try:
        # Real cameras are not phase-locked: staggering their starts spreads the encodes.
        if stop.wait(start_delay_s):
            return
        camera.stats = Gateway(gw_options, sink, on_window=on_window).run(
            array_source(camera.frames, camera.fps),
            falls=camera.falls,
            stop=stop,
            end_s=len(camera.frames) / camera.fps,
        )
    except BaseException as exc:  # reported in the summary; the other cameras go on
        camera.error = exc
        log.error("camera_failed", extra={"stream_id": camera.stream_id, "error": repr(exc)})
    finally:
        sink.close()


def _drain(
    collector: PipelineCollector,
    windows: list[PublishedWindow],
    workers: list[WorkerProcess],
    timeout_s: float,
) -> None:
    """Wait until every window has a result and nothing new arrived for a few seconds."""
    deadline = time.monotonic() + timeout_s
    wanted = {(w.stream_id, w.window_seq) for w in windows}
    while time.monotonic() < deadline:
        if any(w.exited() is not None for w in workers):
            return
        complete = wanted <= collector.decided_windows()
        if complete and collector.seconds_since_last_record() >= _QUIET_S:
            return
        time.sleep(0.5)
    log.warning("demo_drain_timeout", extra={"timeout_s": timeout_s})


def run_demo(settings: Settings, options: DemoOptions) -> dict[str, Any]:
    """Run the demo end to end (see the module docstring); returns the summary."""
    from streams.kafka.topics import ensure_topics

    out = options.out or sys.stdout
    preflight(settings)
    run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(3)}"
    run_dir = options.run_dir or (REPO_ROOT / ".stack" / "demo" / run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    demo_settings = isolated_run(settings, run_id, http_host=settings.http_host)
    print(
        f"fallwatch demo {run_id}: {options.cameras} cameras x {options.duration_s:.0f} s, "
        f"logs in {run_dir}",
        file=out,
        flush=True,
    )
    ensure_topics(demo_settings)
    workers = [WorkerProcess.for_settings(r, demo_settings, run_dir) for r in ("edge", "cloud")]
    geometry = WindowGeometry(demo_settings.gateway_window_s, demo_settings.gateway_stride_s)
    collector = PipelineCollector(demo_settings, out=out if options.print_alerts else None)
    stop = threading.Event()
    cameras: list[_Camera] = []
    worker_codes: dict[str, int | None] = {}
    try:
        for worker in workers:
            worker.start()
        t_render = time.monotonic()
        cameras = _render_cameras(demo_settings, options)
        print(
            f"rendered {len(cameras)} scenes in {time.monotonic() - t_render:.1f} s; "
            "waiting for the workers",
            file=out,
            flush=True,
        )
        try:
            wait_all_ready(workers, options.startup_timeout_s)
        except WorkerStartError as exc:
            raise DemoError(str(exc)) from exc
        collector.start()
        print("workers ready; cameras live (alerts below)", file=out, flush=True)
        _start_cameras(cameras, demo_settings, options, stop, collector)
        _wait_for_cameras(cameras, workers, stop)
        windows = [w for cam in cameras for w in cam.published]
        _drain(collector, windows, workers, options.drain_timeout_s)
    finally:
        stop.set()
        for camera in cameras:
            if camera.thread is not None:
                camera.thread.join(timeout=10)
        for worker in workers:
            worker_codes[worker.role] = worker.stop()
        collector.stop()
        if not options.keep_data:
            cleanup_run(demo_settings, run_id)

    summary = _summary(cameras, collector, geometry, worker_codes)
    summary["run_id"] = run_id
    summary["run_dir"] = str(run_dir)
    _report(summary, options.json_path, out)
    return summary


def _start_cameras(
    cameras: list[_Camera],
    settings: Settings,
    options: DemoOptions,
    stop: threading.Event,
    collector: PipelineCollector,
) -> None:
    """One gateway thread per camera, starts staggered over one stride."""
    stagger_s = settings.gateway_stride_s / max(1, len(cameras))
    for i, camera in enumerate(cameras):
        camera.thread = threading.Thread(
            target=_run_camera,
            args=(camera, settings, options, stop, collector, i * stagger_s),
            name=f"gateway-{camera.stream_id}",
            daemon=True,
        )
        camera.thread.start()


def _wait_for_cameras(
    cameras: list[_Camera], workers: list[WorkerProcess], stop: threading.Event
) -> None:
    """Join the camera threads; `DemoError` (and `stop` set) as soon as a worker dies."""
    for camera in cameras:
        assert camera.thread is not None
        while camera.thread.is_alive():
            camera.thread.join(timeout=0.5)
            dead = [w for w in workers if w.exited() is not None]
            if dead:
                stop.set()
                raise DemoError(
                    f"{dead[0].role} worker died (status {dead[0].exited()}); "
                    f"log {dead[0].log_path}:\n{dead[0].tail()}"
                )


def _summary(
    cameras: list[_Camera],
    collector: PipelineCollector,
    geometry: WindowGeometry,
    worker_codes: dict[str, int | None],
) -> dict[str, Any]:
    """The run's summary (`build_summary`) with the workers' and cameras' fates and `ok`."""
    windows = [w for cam in cameras for w in cam.published]
    falls = [
        StagedFall.from_json(doc)
        for cam in cameras
        if cam.stats is not None
        for doc in cam.stats.truth
    ]
    snapshot = collector.snapshot()
    summary = build_summary(
        falls=falls,
        alerts=snapshot.alerts,
        windows=windows,
        results=snapshot.results,
        offload_reasons=snapshot.offload_reasons,
        dead_letters=snapshot.dead_letters,
        geometry=geometry,
        malformed_alerts=snapshot.malformed,
    )
    summary["worker_exit_codes"] = worker_codes
    summary["camera_errors"] = {c.stream_id: repr(c.error) for c in cameras if c.error}
    summary["ok"] = (
        summary["results"]["windows_without_result"] == 0
        and summary["duplicate_alert_ids"] == 0
        and not summary["camera_errors"]
        and all(code in (0, None) for code in worker_codes.values())
    )
    return summary


def _report(summary: dict[str, Any], json_path: Path | None, out: TextIO) -> None:
    """Print the summary table; write it as JSON when asked."""
    print(format_summary(summary), file=out, flush=True)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        print(f"summary written to {json_path}", file=out, flush=True)
