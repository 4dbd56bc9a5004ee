"""Build-time helper run *inside the throwaway build venv*: the original TFLite runtime.

Never imported by fallwatch: `models.pose.convert` runs this file by path with the build
venv's Python (`ai-edge-litert` installed there, not in .venv), so the runtime and CI
stay free of TensorFlow and the TFLite interpreter. It imports only numpy and
ai_edge_litert, never `models`.

    python tflite_reference.py run MODEL.tflite IN.npz OUT.npz
        runs MODEL on every array of IN.npz (keys kept; each one input batch of 1,
        its spatial size applied with resize_tensor_input) and writes each output as
        `<key>/<output index>` into OUT.npz.

Failure modes: exits non-zero with the interpreter's message (the caller fails the build).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np


def _interpreter(model: Path) -> Any:
    # Installed only in the build venv, so mypy in .venv cannot see it.
    from ai_edge_litert.interpreter import (  # type: ignore[import-not-found,unused-ignore]
        Interpreter,
        OpResolverType,
    )

    # XNNPACK off: the reference is the plain builtin kernels (and DENSIFY reads back
    # as zeros under XNNPACK, see docs/POSE_MODELS.md).
    return Interpreter(
        model_path=str(model),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        num_threads=1,
    )


def run(model: Path, inputs: Path, outputs: Path) -> None:
    """Run `model` on each array in `inputs`; write the outputs to `outputs`."""
    results: dict[str, np.ndarray] = {}
    with np.load(inputs) as feed:
        for key in feed.files:
            x = feed[key]
            it = _interpreter(model)
            detail = it.get_input_details()[0]
            it.resize_tensor_input(detail["index"], list(x.shape))
            it.allocate_tensors()
            it.set_tensor(detail["index"], x.astype(detail["dtype"]))
            it.invoke()
            for k, out in enumerate(it.get_output_details()):
                results[f"{key}/{k}"] = np.array(it.get_tensor(out["index"]))
    np.savez(outputs, allow_pickle=False, **results)


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "run":
        run(Path(argv[1]), Path(argv[2]), Path(argv[3]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
