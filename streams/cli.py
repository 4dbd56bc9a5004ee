"""The `fallwatch` command line: workers, gateway, demo, topic setup and model commands.

Inputs: argv; settings from the environment (`FALLWATCH_*`, see streams.core.settings), with
a few flags overriding them where a per-run value makes sense (ports, stream options).
Outputs: runs the chosen subcommand; exit status 0 on success, 1 when the command failed
(a `FallwatchError` or a model error, logged), 2 for usage or configuration errors.

Logging is configured once here (`streams.core.logs`), before any subcommand runs. Heavy
imports (faust, aiokafka, onnxruntime, PyAV) happen inside the subcommand handlers, so
`fallwatch --help` is instant and no client is created at import.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]

log = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace], int]

_DESCRIPTION = """\
fallwatch: fall detection on live camera video, routing each window to the cheapest
model that can be trusted with it (edge model + learned switcher, cloud model on demand).
Settings come from FALLWATCH_* environment variables; flags override some of them."""


def _settings(overrides: dict[str, Any] | None = None) -> Any:
    """Settings from the environment with non-None `overrides` applied and re-validated."""
    from pydantic import ValidationError

    from streams.core.errors import SettingsError
    from streams.core.settings import get_settings

    settings = get_settings()
    updates = {k: v for k, v in (overrides or {}).items() if v is not None}
    if not updates:
        return settings
    try:
        # Re-validate: model_copy(update=...) alone would skip the validators.
        return type(settings).model_validate({**settings.model_dump(), **updates})
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'-'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
        raise SettingsError(f"invalid option: {problems}") from None


def _setup_logging(level: str, *, json_logs: bool) -> None:
    from streams.core.logs import configure_logging

    configure_logging(level, json=json_logs)


# -- handlers ---------------------------------------------------------------------------


def _cmd_edge(args: argparse.Namespace) -> int:
    from streams.edge.app import run_edge_worker

    settings = _settings({"edge_http_port": args.http_port})
    settings.log_summary()
    run_edge_worker(settings)
    return 0


def _cmd_cloud(args: argparse.Namespace) -> int:
    from streams.cloud.service import run_cloud_worker

    settings = _settings({"cloud_http_port": args.http_port, "cloud_batch_max": args.batch_max})
    settings.log_summary()
    run_cloud_worker(settings)
    return 0


def _cmd_topics(args: argparse.Namespace) -> int:
    from streams.kafka.topics import ensure_topics, service_topics

    settings = _settings({"topic_partitions": args.partitions})
    created = ensure_topics(settings)
    for name in service_topics(settings):
        print(f"{name}\t{'created' if name in created else 'exists'}")
    return 0


def _install_stop_handlers(stop: threading.Event) -> None:
    """First SIGTERM/SIGINT: stop after the current window; a second one exits at once
    (e.g. while still waiting for the broker)."""

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise SystemExit(128 + signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _cmd_gateway(args: argparse.Namespace) -> int:
    from streams.gateway.gateway import GatewayOptions, run_gateway

    if not args.synthetic and not args.source:
        raise SystemExit("fallwatch gateway: give --source FILE_OR_URL or --synthetic")
    settings = _settings()
    options = GatewayOptions.from_settings(
        settings,
        stream_id=args.stream_id,
        source=args.source,
        fps=args.fps,
        window_s=args.window_s,
        stride_s=args.stride_s,
        paced=not args.as_fast_as_possible,
        loop=args.loop,
        start_seq=args.start_seq,
        synthetic=args.synthetic,
        seed=args.seed,
        duration_s=args.duration,
        falls=args.falls,
        truth_path=args.truth,
    )
    stop = threading.Event()
    _install_stop_handlers(stop)
    stats = run_gateway(settings, options, stop=stop)
    log.info(
        "gateway_done",
        extra={
            "stream_id": options.stream_id,
            "windows": stats.windows,
            "bytes": stats.bytes,
            "oversize": stats.windows_oversize,
            "falls_staged": len(stats.truth),
        },
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from streams.devtools.demo import DemoOptions, run_demo

    options = DemoOptions(
        cameras=args.cameras,
        duration_s=args.duration,
        falls_per_camera=args.falls,
        seed=args.seed,
        json_path=args.json,
        paced=not args.as_fast_as_possible,
        run_dir=args.run_dir,
        startup_timeout_s=args.startup_timeout,
    )
    summary = run_demo(_settings(), options)
    return 0 if summary.get("ok", True) else 1


# -- parser -----------------------------------------------------------------------------


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _stream_id(text: str) -> str:
    """A stream id by the rule of `schemas.records` (the gateway refuses to start otherwise)."""
    from schemas.records import RecordValueError, check_stream_id

    try:
        return check_stream_id(text)
    except RecordValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _add_gateway(sub: Any) -> None:
    p = sub.add_parser(
        "gateway",
        help="Publish a video file, RTSP stream or synthetic scene to Kafka as frame windows.",
        description="Read video with PyAV, cut 2 s windows every 1 s, encode and publish them "
        "keyed by stream id (acks=all, idempotent). Files are paced in real time by default.",
    )
    p.add_argument("--source", help="video file path or rtsp:// (http://, ...) URL")
    p.add_argument(
        "--stream-id",
        required=True,
        type=_stream_id,
        help="camera stream id (the Kafka key): 1-128 characters of [A-Za-z0-9._:-]",
    )
    p.add_argument("--fps", type=_positive_float, help="window frame rate (default: settings)")
    p.add_argument("--window-s", type=_positive_float, help="window length in seconds")
    p.add_argument("--stride-s", type=_positive_float, help="seconds between window starts")
    p.add_argument("--loop", action="store_true", help="replay the file/scene forever")
    p.add_argument(
        "--as-fast-as-possible",
        action="store_true",
        help="do not pace file/synthetic sources in real time (capture time = publish time)",
    )
    p.add_argument("--start-seq", type=int, default=0, help="first window seq (default 0)")
    p.add_argument("--synthetic", action="store_true", help="render a synthetic demo scene")
    p.add_argument("--seed", type=int, default=0, help="synthetic scene seed")
    p.add_argument("--duration", type=_positive_float, default=60.0, help="synthetic seconds")
    p.add_argument("--falls", type=int, default=1, help="falls staged in the synthetic scene")
    p.add_argument("--truth", type=Path, help="append staged falls as JSON lines to this file")
    p.set_defaults(handler=_cmd_gateway)


def _add_demo(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="Run the whole pipeline locally with synthetic cameras and print a summary.",
        description="Needs the local stack (`make up`). Creates fresh topics and a fresh Redis "
        "prefix, starts an edge and a cloud worker, runs N synthetic cameras that fall at "
        "random moments, prints each alert, then a summary (and JSON with --json).",
    )
    p.add_argument("--cameras", type=_positive_int, default=4)
    p.add_argument("--duration", type=_positive_float, default=90.0, help="seconds per camera")
    p.add_argument("--falls", type=int, default=2, help="falls staged per camera")
    p.add_argument("--seed", type=int, default=0, help="base seed (camera i uses seed+i)")
    p.add_argument("--json", type=Path, help="write the summary JSON here")
    p.add_argument("--as-fast-as-possible", action="store_true", help="do not pace cameras")
    p.add_argument("--run-dir", type=Path, help="where worker logs go (default .stack/demo/RUN)")
    p.add_argument("--startup-timeout", type=_positive_float, default=120.0)
    p.set_defaults(handler=_cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (model commands included when `models.cli` is present)."""
    parser = argparse.ArgumentParser(
        prog="fallwatch",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", help="override FALLWATCH_LOG_LEVEL (DEBUG, INFO, ...)")
    parser.add_argument(
        "--log-format",
        choices=("json", "text"),
        help="log line format (default: json; text for `demo`, which prints its own lines)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "edge",
        help="Run the edge worker: frames → edge model + switcher → results/offloads; "
        "results → alerts.",
    )
    p.add_argument("--http-port", type=int, help="health/metrics port (FALLWATCH_EDGE_HTTP_PORT)")
    p.set_defaults(handler=_cmd_edge)

    p = sub.add_parser(
        "cloud",
        help="Run the cloud worker: offload requests → cloud model (batched) → results.",
    )
    p.add_argument("--http-port", type=int, help="health/metrics port (FALLWATCH_CLOUD_HTTP_PORT)")
    p.add_argument("--batch-max", type=_positive_int, help="largest inference batch")
    p.set_defaults(handler=_cmd_cloud)

    _add_gateway(sub)
    _add_demo(sub)

    p = sub.add_parser("topics", help="Create the service's Kafka topics (idempotent).")
    p.add_argument("--partitions", type=_positive_int, help="partitions for new topics")
    p.set_defaults(handler=_cmd_topics)

    try:
        from models.cli import add_model_commands
    except ImportError:
        log.debug("models.cli not available; model commands not registered")
    else:
        add_model_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `fallwatch` script."""
    from models.runtime.errors import ModelsError
    from streams.core.errors import FallwatchError, SettingsError

    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None) or getattr(args, "func", None)
    if handler is None:
        parser.error(f"no handler for command {args.command!r}")
    demo = args.command == "demo"
    try:
        # The demo prints its own lines; its logs stay quiet unless asked for.
        level = args.log_level or ("WARNING" if demo else _settings().log_level)
    except SettingsError as exc:
        print(f"fallwatch: {exc}", file=sys.stderr)
        return 2
    _setup_logging(level, json_logs=(args.log_format or ("text" if demo else "json")) == "json")
    try:
        result = handler(args)
    except SettingsError as exc:
        print(f"fallwatch: {exc}", file=sys.stderr)
        return 2
    except (FallwatchError, ModelsError) as exc:
        log.error("command_failed", extra={"command": args.command, "error": str(exc)})
        print(f"fallwatch {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
