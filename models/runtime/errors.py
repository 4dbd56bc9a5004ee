"""Exceptions raised by the `models` package, one root class.

Each class says who raises it and what an operator does about it. Callers in
`streams` treat `WindowError` as poison input (dead-letter and continue) and
`ModelLoadError` as fatal at start-up (fail readiness, fix the model file).
"""

from __future__ import annotations

__all__ = [
    "CalibrationError",
    "InferenceError",
    "ModelLoadError",
    "ModelMetadataError",
    "ModelsError",
    "TrainingError",
    "WindowError",
]


class ModelsError(Exception):
    """Root of every error raised by `models`; catch this to catch them all."""


class ModelLoadError(ModelsError):
    """Raised by `*.load()` when an .onnx file is missing, unreadable, corrupt or
    fails its sha256 check. Operator: rebuild or re-download the model file
    (`make models`), check the path in the settings."""


class ModelMetadataError(ModelLoadError):
    """Raised by `models.runtime.metadata` when a model's `fallwatch.*` metadata is
    missing or malformed (e.g. not JSON, wrong role). Operator: the file was not
    produced by `models.training.export`; re-export it with metadata."""


class WindowError(ModelsError):
    """Raised by `models.runtime.preprocess` when a window is not a uint8 `[T,H,W,3]`
    array (wrong dtype, rank, channel count or empty). Callers treat the window
    as poison input: dead-letter it and continue."""


class InferenceError(ModelsError):
    """Raised by the runtime wrappers when onnxruntime fails on a well-formed
    input, or a switcher receives features of the wrong width. Operator: the
    edge/switcher pair does not match (re-run `fallwatch distill`) or the
    runtime is broken."""


class TrainingError(ModelsError):
    """Raised by training, distillation and export when the data cannot train a
    model (e.g. a single class, empty pool) or the exported ONNX disagrees with
    PyTorch. Operator: check the data folder / generator settings."""


class CalibrationError(ModelsError):
    """Raised by threshold calibration for an offload rate outside (0, 1) or an
    empty score set. Operator: pass a rate such as 0.2."""
