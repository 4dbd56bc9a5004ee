"""The event rules' Lua is a package file beside its loader, shipped in the wheel."""

from __future__ import annotations

import tomllib
from pathlib import Path

from streams.events import tracker
from streams.events.tracker import tracker_lua

REPO = Path(__file__).resolve().parents[4]


def test_tracker_lua_is_loaded_from_the_file_beside_the_tracker() -> None:
    beside = Path(tracker.__file__).with_name("tracker.lua")
    assert tracker_lua() == beside.read_text()
    # The script's contract: six keys and the reply it returns (see the header of the file).
    assert "KEYS[6]" in tracker_lua() and "return result" in tracker_lua()


def test_tracker_lua_is_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["streams"]
    assert "events/*.lua" in patterns
