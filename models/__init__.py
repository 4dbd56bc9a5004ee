"""fallwatch ML package: runtime wrappers, preprocessing, training, DMD, evaluation.

Importing `models` does no work and needs only numpy/onnxruntime at run time;
torch is imported only by training code (`models.nets`, `models.silhouette`,
`models.export`, switcher training in `models.dmd`). `models` never imports
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
