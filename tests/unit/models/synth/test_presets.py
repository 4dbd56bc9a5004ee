"""Preset files: an ML engineer's own camera ranges for the generator (models/synth/presets.py)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.synth import render_clip
from models.synth.cli import run_synth_cli
from models.synth.clip import simulate_clip
from models.synth.presets import (
    FLOOR_TEXTURES,
    PALETTES,
    PRESETS,
    WALL_TEXTURES,
    PresetError,
    get_preset,
    load_preset_file,
    preset_json,
)
from models.synth.scene import build_scene
from models.training.frames_cache import train_cache_key
from models.training.recipe import FULL

EXAMPLE = Path(__file__).resolve().parents[4] / "models" / "synth" / "example-preset.json"


def _write(path: Path, content: dict[str, Any]) -> str:
    path.write_text(json.dumps(content))
    return str(path)


def test_a_file_changes_the_fields_it_names_and_keeps_the_base_for_the_rest(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path / "mine.json", {"name": "mine", "base": "heldout",
                                           "cam_height": [[0.9, 1.2], [3.0, 3.4]],
                                           "grey_prob": 0.5, "palettes": ["pastel"],
                                           "extra_furniture": [0, 2]})  # fmt: skip
    p = get_preset(path)
    assert p.name == "mine"
    assert p.cam_height == ((0.9, 1.2), (3.0, 3.4))
    assert p.grey_prob == 0.5 and p.palettes == ("pastel",) and p.extra_furniture == (0, 2)
    changed = {"name", "cam_height", "grey_prob", "palettes", "extra_furniture"}
    held = PRESETS["heldout"]
    for field, value in preset_json(p).items():
        if field not in changed:
            assert value == preset_json(held)[field], field
    # base defaults to train
    q = get_preset(_write(tmp_path / "q.json", {"name": "q", "crf": [[20, 30]]}))
    assert q.crf == ((20.0, 30.0),) and q.hfov_deg == PRESETS["train"].hfov_deg


def test_a_built_in_preset_written_out_under_another_name_loads_back_equal(tmp_path: Path) -> None:
    for name, preset in PRESETS.items():
        content = {**preset_json(preset), "name": f"copy-of-{name}"}
        loaded = load_preset_file(_write(tmp_path / f"{name}.json", content))
        assert loaded == replace(preset, name=f"copy-of-{name}")


def test_built_in_presets_and_the_example_use_only_names_the_renderer_knows() -> None:
    for preset in [*PRESETS.values(), load_preset_file(EXAMPLE)]:
        assert set(preset.palettes) <= set(PALETTES), preset.name
        assert set(preset.wall_textures) <= set(WALL_TEXTURES), preset.name
        assert set(preset.floor_textures) <= set(FLOOR_TEXTURES), preset.name
    assert load_preset_file(EXAMPLE).name not in PRESETS


def test_rendered_scenes_follow_the_file_and_its_name_not_its_path(tmp_path: Path) -> None:
    content = {"name": "fixed-mount", "cam_height": [[3.0, 3.0]], "hfov_deg": [[90.0, 90.0]],
               "cam_roll_deg": 0.0}  # fmt: skip
    a = _write(tmp_path / "a.json", content)
    (tmp_path / "elsewhere").mkdir()
    b = _write(tmp_path / "elsewhere" / "b.json", content)
    for seed in (3, 4):
        motion, rng = simulate_clip(seed, preset=a, duration_s=2.0)
        path = motion.joints[:, 0, :2]
        scene = build_scene(rng, get_preset(a), motion.plan.props, path, 64, 48)
        assert scene.camera.pos[2] == 3.0
        assert math.isclose(scene.camera.focal, 32.0)  # (width / 2) / tan(90 deg / 2)
    frames_a, meta_a = render_clip(5, preset=a, duration_s=2.0, width=64, height=48)
    frames_b, meta_b = render_clip(5, preset=b, duration_s=2.0, width=64, height=48)
    assert np.array_equal(frames_a, frames_b) and meta_a == meta_b
    assert meta_a.preset == "fixed-mount"
    train, _ = render_clip(5, preset="train", duration_s=2.0, width=64, height=48)
    assert not np.array_equal(frames_a, train)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ({"cam_height": [[1.0, 2.0]]}, ["'name'"]),
        ({"name": "train"}, ["built-in"]),
        ({"name": "x", "base": "nope"}, ["'base'", "nope"]),
        ({"name": "x", "cam_hieght": [[1.0, 2.0]]}, ["unknown field", "cam_hieght"]),
        ({"name": "x", "cam_height": [[2.0, 1.0]]}, ["'cam_height'", "lo < hi"]),
        ({"name": "x", "cam_height": [[1.0, 1.0], [2.0, 3.0]]}, ["'cam_height'", "lo < hi"]),
        ({"name": "x", "cam_height": [[1.0, 40.0]]}, ["'cam_height'", "within"]),
        ({"name": "x", "cam_height": []}, ["'cam_height'", "non-empty"]),
        ({"name": "x", "hfov_deg": [[60, "wide"]]}, ["'hfov_deg'", "finite numbers"]),
        ({"name": "x", "hfov_deg": [60, 80]}, ["'hfov_deg'", "intervals"]),
        ({"name": "x", "grey_prob": 1.5}, ["'grey_prob'", "within [0, 1]"]),
        ({"name": "x", "blur_prob": True}, ["'blur_prob'", "finite numbers"]),
        ({"name": "x", "cam_roll_deg": -1}, ["'cam_roll_deg'"]),
        ({"name": "x", "wall_textures": ["marble"]}, ["'wall_textures'", "marble"]),
        ({"name": "x", "palettes": []}, ["'palettes'", "non-empty"]),
        ({"name": "x", "extra_furniture": [3, 1]}, ["'extra_furniture'"]),
        ({"name": "x", "extra_furniture": [0.5, 1]}, ["'extra_furniture'"]),
        ([1, 2], ["JSON object"]),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_the_field(
    tmp_path: Path, content: Any, words: list[str]
) -> None:
    path = _write(tmp_path / "bad.json", content)
    with pytest.raises(PresetError) as err:
        get_preset(path)
    assert str(tmp_path / "bad.json") in str(err.value)
    for word in words:
        assert word in str(err.value)
    assert isinstance(err.value, ValueError)


def test_unreadable_files_and_unknown_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{ not json")
    with pytest.raises(PresetError, match="not JSON"):
        get_preset(str(tmp_path / "broken.json"))
    with pytest.raises(PresetError, match="cannot read"):
        get_preset(str(tmp_path / "missing.json"))
    with pytest.raises(KeyError, match="preset file"):
        get_preset("trian")


def test_synth_cli_renders_a_preset_file_and_refuses_a_bad_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _write(tmp_path / "good.json", {"name": "good", "cam_height": [[2.8, 3.2]]})
    assert run_synth_cli(["--out", str(tmp_path / "ds"), "--n", "1", "--preset", good]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["clips"] == 1
    bad = _write(tmp_path / "bad.json", {"name": "bad", "grey_prob": 2})
    with pytest.raises(SystemExit) as exit_:
        run_synth_cli(["--out", str(tmp_path / "ds2"), "--n", "1", "--preset", bad])
    assert exit_.value.code == 2
    assert "'grey_prob'" in capsys.readouterr().err
    assert not (tmp_path / "ds2").exists()


def test_the_training_cache_key_follows_the_train_preset(tmp_path: Path) -> None:
    key, src = train_cache_key(FULL)
    assert key == train_cache_key(replace(FULL))[0]
    assert json.loads(src)["preset"] == preset_json(PRESETS["train"])
    same_ranges = _write(tmp_path / "same.json", {"name": "same"})  # train's ranges, new name
    wider = _write(tmp_path / "wider.json", {"name": "same", "cam_height": [[1.2, 3.0]]})
    keys = {train_cache_key(replace(FULL, train_preset=p))[0] for p in (same_ranges, wider)}
    assert len(keys | {key}) == 3


def test_far_night_is_far_from_training_in_size_light_and_colour() -> None:
    far, train = PRESETS["far_night"], PRESETS["train"]
    assert max(hi for _, hi in far.subject_frac) < min(lo for lo, _ in train.subject_frac)
    assert max(hi for _, hi in far.light_gain) < min(lo for lo, _ in train.light_gain)
    assert min(lo for lo, _ in far.noise_sigma) > max(hi for _, hi in train.noise_sigma)
    assert far.grey_prob == 1.0 and far.tint_strength == 0.0
