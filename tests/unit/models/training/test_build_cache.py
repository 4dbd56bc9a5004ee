"""What the zoo build reuses and what it leaves alone (models/training/build_zoo.py): the training-window
cache key follows the code that renders the windows; a held-out folder it did not render is
never written to."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from models.training.build_zoo import _prepare_heldout
from models.training.frames_cache import DATA_CODE, data_code_version
from models.training.recipe import QUICK

MODELS = Path(__file__).resolve().parents[4] / "models"


def test_cache_key_changes_with_generator_or_preprocessing_code(tmp_path: Path) -> None:
    root = tmp_path / "models"
    shutil.copytree(MODELS / "synth", root / "synth", ignore=shutil.ignore_patterns("__pycache__"))
    for name in DATA_CODE:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(MODELS / name, root / name)
    base = data_code_version(root)
    assert base == data_code_version(MODELS)  # same code, same key
    training = root / "training" / "build_zoo.py"
    training.write_text("# training code does not change the cached windows\n")
    assert data_code_version(root) == base
    motion = root / "synth" / "motion.py"
    motion.write_text(motion.read_text() + "\n# a changed generator\n")
    changed = data_code_version(root)
    assert changed != base
    preprocess = root / "runtime" / "preprocess.py"
    preprocess.write_text(preprocess.read_text() + "\n# a changed resize\n")
    assert data_code_version(root) not in (base, changed)


def test_a_labelled_folder_the_build_did_not_render_is_evaluated_never_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered: list[Path] = []

    def fake_write(folder: Path, n: int, seed: int, preset: str, workers: int) -> None:
        rendered.append(folder)
        (folder / "clips").mkdir(parents=True, exist_ok=True)
        (folder / "labels.csv").write_text("file,label\n")

    monkeypatch.setattr("models.synth.write_dataset", fake_write)
    cfg = replace(QUICK, heldout_clips=3)
    mine = tmp_path / "my-footage"
    mine.mkdir()
    labels = "file,label\ncam1/a.mp4,fall\ncam2/b.mp4,no_fall\n"
    (mine / "labels.csv").write_text(labels)
    assert _prepare_heldout(mine, cfg) == "folder"
    assert (mine / "labels.csv").read_text() == labels and rendered == []
    assert sorted(p.name for p in mine.iterdir()) == ["labels.csv"]

    ours = tmp_path / "heldout"
    assert _prepare_heldout(ours, cfg) == "rendered" and rendered == [ours]
    assert _prepare_heldout(ours, cfg) == "ready" and rendered == [ours]
    # Ours, but rendered at another size: rendered again, not taken for someone's folder.
    assert _prepare_heldout(ours, replace(cfg, heldout_clips=5)) == "rendered"
    assert rendered == [ours, ours]
