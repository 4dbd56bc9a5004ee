"""fallwatch ML package, one room per job (each subpackage's docstring is its map):

- `models.runtime`: what `streams` imports at run time (ONNX wrappers, metadata,
  preprocessing, windows and clips, errors, the pose pipeline and the pose-cloud
  composite's runtime); numpy, PIL, PyAV, onnx and onnxruntime only;
- `models.training`: the recipe, datasets, the nets and their training, export, DMD, the
  zoo build (`python -m models.training.build_zoo`) and the pose models' build
  (`python -m models.training.pose.convert`); PyTorch (the `train` extra);
- `models.evaluation`: policies side by side, metrics, the model card, pose measurement;
- `models.synth`: the procedural renderer of fall videos;
- `models.cli`: `fallwatch train | distill | evaluate | synth`;
- `models/zoo/`: the shipped model files; `zoo_path(role)` below names them.
Dependencies point one way: training → evaluation → runtime; the renderer uses only the
runtime's windows and clips. Importing `models` does no work; `models` never imports
Kafka, Faust or Redis.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ZOO_DIR", "ZOO_ROLES", "zoo_path"]

ZOO_DIR = Path(__file__).resolve().parent / "zoo"
ZOO_ROLES = ("edge", "cloud", "switcher")


def zoo_path(role: str, zoo_dir: Path | None = None) -> Path:
    """Path of the shipped model for `role` (edge, cloud or switcher).

    Does not check that the file exists (the loader raises ModelLoadError).
    Raises ValueError for an unknown role.
    """
    if role not in ZOO_ROLES:
        raise ValueError(f"unknown model role {role!r}; expected one of {ZOO_ROLES}")
    return (zoo_dir if zoo_dir is not None else ZOO_DIR) / f"{role}.onnx"
