"""The run-time room (models/runtime/) stays a run-time room: loading and running the shipped
models imports no training, evaluation or renderer code, no torch, no TensorFlow or TFLite
runtime and no Kafka/Faust/Redis client; no module of the room names them even lazily; the
evaluation room never imports training; no module of models/ outgrows its brief."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
MODELS = ROOT / "models"
# Top-level packages the run-time room must never load.
FORBIDDEN_TOP = ("torch", "tensorflow", "tf2onnx", "ai_edge_litert", "tflite_runtime",
                 "kafka", "aiokafka", "faust", "redis")  # fmt: skip
# Rooms of models/ the run-time room must never load.
FORBIDDEN_ROOMS = ("models.training", "models.evaluation", "models.synth")
MAX_LINES = 500  # the house limit on a module (issue 18 item 6)


def _forbidden(name: str, rooms: tuple[str, ...]) -> bool:
    return name.split(".")[0] in FORBIDDEN_TOP or any(
        name == room or name.startswith(room + ".") for room in rooms
    )


def _imported_names(path: Path) -> list[str]:
    """Every module an `import` or `from ... import` anywhere in the file names (function
    bodies included: lazy imports count)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_loading_and_running_every_runtime_model_imports_nothing_from_other_rooms() -> None:
    code = (
        "import pkgutil, sys, numpy as np\n"
        "import models.runtime\n"
        "for m in pkgutil.walk_packages(models.runtime.__path__, 'models.runtime.'):\n"
        "    __import__(m.name)\n"
        "from models import zoo_path\n"
        "from models.runtime.onnx_models import CloudModel, EdgeModel, Switcher\n"
        "from models.runtime.pose import MultiPoseModel, track_window, zoo_pose_path\n"
        "w = [np.zeros((16, 120, 160, 3), np.uint8)]\n"
        "Switcher.load(zoo_path('switcher')).offload(EdgeModel.load(zoo_path('edge')).predict(w))\n"
        "CloudModel.load(zoo_path('cloud')).predict(w)\n"
        "m = MultiPoseModel.load(zoo_pose_path())\n"
        "track_window(m.detect(np.zeros((2, 120, 160, 3), np.uint8)))\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)  # fmt: skip
    loaded = out.stdout.split()
    assert "models.runtime.onnx_models" in loaded and "models.runtime.pose.tracker" in loaded
    assert [n for n in loaded if _forbidden(n, FORBIDDEN_ROOMS)] == []


@pytest.mark.parametrize(
    ("room", "rooms"),
    [("runtime", FORBIDDEN_ROOMS), ("evaluation", ("models.training",))],
)
def test_no_module_of_a_room_names_a_forbidden_import(room: str, rooms: tuple[str, ...]) -> None:
    files = sorted((MODELS / room).rglob("*.py"))
    assert files
    found = {str(p.relative_to(MODELS)): [n for n in _imported_names(p) if _forbidden(n, rooms)]
             for p in files}  # fmt: skip
    assert {k: v for k, v in found.items() if v} == {}


def test_the_forbidden_import_check_sees_lazy_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from models.training.dmd import distill\n    import torch\n")
    names = _imported_names(probe)
    assert [n for n in names if _forbidden(n, FORBIDDEN_ROOMS)] == [
        "models.training.dmd",
        "models.training.dmd.distill",
        "torch",
    ]


def test_no_module_of_models_is_over_the_line_limit() -> None:
    sizes = {str(p.relative_to(MODELS)): len(p.read_text().splitlines())
             for p in MODELS.rglob("*.py")}  # fmt: skip
    assert len(sizes) > 50
    assert {k: n for k, n in sizes.items() if n > MAX_LINES} == {}
