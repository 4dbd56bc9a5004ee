"""`fallwatch` argument parsing and dispatch (no workers started, no network)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams import cli
from streams.core.errors import FallwatchError
from streams.core.settings import get_settings

SUBCOMMANDS = ("edge", "cloud", "gateway", "demo", "topics")


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("FALLWATCH_TOPIC_PARTITIONS", "FALLWATCH_EDGE_HTTP_PORT", "FALLWATCH_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_help_explains_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name in SUBCOMMANDS:
        line = next(line for line in text.splitlines() if line.strip().startswith(name))
        assert len(line.split()) > 3, f"{name} has no one-line explanation"


def test_gateway_flags_parse() -> None:
    args = cli.build_parser().parse_args(
        [
            "gateway",
            "--synthetic",
            "--stream-id",
            "cam1",
            "--seed",
            "7",
            "--duration",
            "30",
            "--falls",
            "2",
            "--truth",
            "t.jsonl",
            "--as-fast-as-possible",
            "--fps",
            "10",
        ]
    )
    assert args.handler is cli._cmd_gateway
    assert (args.stream_id, args.seed, args.duration, args.falls) == ("cam1", 7, 30.0, 2)
    assert args.truth == Path("t.jsonl") and args.as_fast_as_possible and args.fps == 10.0
    assert args.loop is False and args.start_seq == 0 and args.source is None


@pytest.mark.parametrize(
    "argv",
    [
        ["gateway", "--source", "x.mp4"],  # --stream-id is required
        ["gateway", "--stream-id", "c", "--fps", "0"],
        # The stream id rule (schemas.records): the gateway refuses to start.
        ["gateway", "--synthetic", "--stream-id", ""],
        ["gateway", "--synthetic", "--stream-id", "cam 1"],
        ["gateway", "--synthetic", "--stream-id", "x" * 129],
        ["gateway", "--synthetic", "--stream-id", "kam\u00e9ra"],
        ["demo", "--cameras", "0"],
        ["nosuchcommand"],
        [],
    ],
)
def test_bad_usage_exits_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(argv)
    assert exit_info.value.code == 2


def test_demo_defaults() -> None:
    args = cli.build_parser().parse_args(["demo", "--json", "s.json"])
    assert (args.cameras, args.duration, args.json) == (4, 90.0, Path("s.json"))
    assert args.handler is cli._cmd_demo


def test_flag_overrides_settings_and_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FALLWATCH_EDGE_HTTP_PORT", "7001")
    get_settings.cache_clear()
    assert cli._settings({"cloud_http_port": 7002, "cloud_batch_max": None}).cloud_http_port == 7002
    assert cli._settings().cloud_http_port == get_settings().cloud_http_port
    with pytest.raises(FallwatchError, match="must differ"):
        cli._settings({"cloud_http_port": 7001})


def test_main_dispatches_and_maps_errors_to_exit_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[argparse.Namespace] = []

    def ok(args: argparse.Namespace) -> int:
        calls.append(args)
        return 0

    def boom(_args: argparse.Namespace) -> int:
        raise FallwatchError("broker on fire")

    monkeypatch.setattr(cli, "_setup_logging", lambda level, json_logs: None)
    monkeypatch.setattr(cli, "_cmd_topics", ok)
    assert cli.main(["topics", "--partitions", "3"]) == 0
    assert calls[0].partitions == 3
    monkeypatch.setattr(cli, "_cmd_topics", boom)
    assert cli.main(["topics"]) == 1


def test_invalid_environment_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_setup_logging", lambda level, json_logs: None)
    monkeypatch.setenv("FALLWATCH_TOPIC_PARTITIONS", "0")
    get_settings.cache_clear()
    assert cli.main(["topics"]) == 2
    assert "TOPIC_PARTITIONS" in capsys.readouterr().err


def test_model_commands_from_models_cli_are_wired() -> None:
    args = cli.build_parser().parse_args(["train", "--role", "edge", "--out", "m.onnx"])
    assert callable(args.handler)
    assert args.out == Path("m.onnx")
