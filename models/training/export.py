"""PyTorch → ONNX export with fallwatch metadata, plus the PyTorch/onnxruntime agreement check.

Inputs: a trained `EdgeNet`/`CloudNet`/`SwitcherNet`, its `ModelMeta` (without
sha256) and an output path. Output: the .onnx file (opset 17, TorchScript-based
exporter `dynamo=False`, dynamic batch axis) with `fallwatch.*` metadata and
sha256 stamped; returns the stamped metadata.
Guarantees: before writing, the serialized model is run in onnxruntime (1 thread)
on random inputs of batch 3 and compared with PyTorch; the file is written only
if every output agrees within `atol` (default 1e-4). The write is atomic (temp
file + rename), so a reader never sees a half-written model.
Failure modes: `TrainingError` when outputs disagree or export fails.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from models.runtime.errors import TrainingError
from models.runtime.metadata import ModelMeta, read_metadata, stamp_metadata
from models.runtime.onnx_models import make_session
from models.training.nets import ExportWrapper, SwitcherNet

__all__ = ["check_agreement", "export_switcher", "export_video_model", "write_model_atomic"]

log = logging.getLogger(__name__)
OPSET = 17


def _export_bytes(
    module: nn.Module, example: torch.Tensor, input_name: str, output_names: list[str]
) -> bytes:
    module.eval()
    buf = io.BytesIO()
    axes = {name: {0: "N"} for name in [input_name, *output_names]}
    try:
        torch.onnx.export(
            module,
            (example,),
            buf,  # type: ignore[arg-type]  # the exporter accepts file objects too
            dynamo=False,
            opset_version=OPSET,
            input_names=[input_name],
            output_names=output_names,
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    except Exception as exc:
        raise TrainingError(f"torch.onnx.export failed: {exc}") from exc
    return buf.getvalue()


def check_agreement(
    module: nn.Module,
    data: bytes,
    example_shape: tuple[int, ...],
    input_name: str,
    *,
    atol: float = 1e-4,
    seed: int = 0,
    batch: int = 3,
) -> float:
    """Max |onnxruntime - torch| over all outputs on random inputs; TrainingError if > atol."""
    rng = np.random.default_rng(seed)
    x = rng.random((batch, *example_shape[1:]), dtype=np.float32)
    module.eval()
    with torch.no_grad():
        ref = module(torch.from_numpy(x))
    refs = ref if isinstance(ref, tuple) else (ref,)
    session = make_session(data, threads=1)
    got = session.run(None, {input_name: x})
    worst = 0.0
    for r, g in zip(refs, got, strict=True):
        worst = max(worst, float(np.max(np.abs(r.numpy() - g))))
    if worst > atol:
        raise TrainingError(f"onnxruntime and PyTorch disagree by {worst:.2e} > {atol:.0e}")
    return worst


def write_model_atomic(model: onnx.ModelProto, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(model.SerializeToString())
    os.replace(tmp, path)


def _finish(
    data: bytes, meta: ModelMeta, path: Path, module: nn.Module, shape: tuple[int, ...], name: str
) -> ModelMeta:
    model = onnx.load_from_string(data)
    stamp_metadata(model, meta)
    final = model.SerializeToString()
    worst = check_agreement(module, final, shape, name)
    write_model_atomic(model, path)
    stamped = read_metadata(model)
    log.info(
        "model_exported",
        extra={"role": meta.role, "path": str(path), "max_abs_diff": worst,
               "sha256": stamped.sha256},
    )  # fmt: skip
    print(f"[export] {meta.role} -> {path}: onnxruntime vs torch max |diff| = {worst:.2e}")
    return stamped


def export_video_model(
    net: nn.Module, meta: ModelMeta, path: Path, *, with_embedding: bool, tta_flip: bool = False
) -> ModelMeta:
    """Export an edge/cloud net; `meta.input` gives the example shape."""
    if meta.input is None:
        raise TrainingError("edge/cloud metadata needs an input spec")
    s = meta.input
    shape = (1, s.channels, s.frames, s.height, s.width)
    wrapper = ExportWrapper(net, with_embedding=with_embedding, tta_flip=tta_flip).eval()
    outputs = ["probs", "embedding"] if with_embedding else ["probs"]
    data = _export_bytes(wrapper, torch.zeros(shape), "frames", outputs)
    return _finish(data, meta, path, wrapper, shape, "frames")


def export_switcher(net: SwitcherNet, meta: ModelMeta, path: Path) -> ModelMeta:
    """Export a switcher MLP; `meta.features` gives the input width."""
    if not meta.features:
        raise TrainingError("switcher metadata needs feature names")
    shape = (1, len(meta.features))
    net.eval()
    data = _export_bytes(net, torch.zeros(shape), "features", ["p_wrong"])
    return _finish(data, replace(meta, sha256=""), path, net, shape, "features")
