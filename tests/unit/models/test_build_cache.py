"""The training-window cache key follows the code that renders the windows (models/build_zoo.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from models.build_zoo import _data_code_version

MODELS = Path(__file__).resolve().parents[3] / "models"


def test_cache_key_changes_with_generator_or_preprocessing_code(tmp_path: Path) -> None:
    root = tmp_path / "models"
    shutil.copytree(MODELS / "synth", root / "synth", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("windows.py", "clips.py", "preprocess.py", "dataset.py"):
        shutil.copy(MODELS / name, root / name)
    base = _data_code_version(root)
    assert base == _data_code_version(MODELS)  # same code, same key
    (root / "train.py").write_text("# training code does not change the cached windows\n")
    assert _data_code_version(root) == base
    motion = root / "synth" / "motion.py"
    motion.write_text(motion.read_text() + "\n# a changed generator\n")
    changed = _data_code_version(root)
    assert changed != base
    preprocess = root / "preprocess.py"
    preprocess.write_text(preprocess.read_text() + "\n# a changed resize\n")
    assert _data_code_version(root) not in (base, changed)
