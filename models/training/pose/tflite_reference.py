"""Build-time helper run *inside the throwaway build venv*: the original TFLite runtime.

Never imported by fallwatch: `models.training.pose.convert` runs this file by path with the build
venv's Python (`ai-edge-litert` installed there, not in .venv), so the runtime and CI
stay free of TensorFlow and the TFLite interpreter. It imports numpy, ai_edge_litert
and (densify only) TensorFlow's flatbuffer tools, never `models`.

    python tflite_reference.py run MODEL.tflite IN.npz OUT.npz
        runs MODEL on every array of IN.npz (keys kept; each one input batch of 1,
        its spatial size applied with resize_tensor_input) and writes each output as
        `<key>/<output name>` into OUT.npz.
    python tflite_reference.py densify MODEL.tflite OUT.tflite
        writes MODEL with its DENSIFY ops replaced by their dense results (tf2onnx cannot
        read sparse weights); needs TensorFlow's flatbuffer tools (in the build venv).

Failure modes: exits non-zero with the interpreter's message (the caller fails the build).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np


def _interpreter(model: Path, preserve: bool = False) -> Any:
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
        experimental_preserve_all_tensors=preserve,
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
            for out in it.get_output_details():
                results[f"{key}/{out['name']}"] = np.array(it.get_tensor(out["index"]))
    np.savez(outputs, allow_pickle=False, **results)


def densify(model: Path, out: Path) -> int:
    """Write `model` with every DENSIFY op replaced by its dense result as a constant.

    The interpreter computes the dense weights (XNNPACK off: with it on they read back
    as zeros); tf2onnx cannot read sparse tensors. Returns how many ops were replaced.
    """
    # TensorFlow lives only in the build venv; mypy in .venv sees neither it nor its stubs.
    from tensorflow.lite.python import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
        schema_py_generated as schema,
    )
    from tensorflow.lite.tools import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
        flatbuffer_utils,
    )

    it = _interpreter(model, preserve=True)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    it.invoke()
    fbm = flatbuffer_utils.read_model(str(model))
    graph = fbm.subgraphs[0]
    kept, replaced = [], 0
    for op in graph.operators:
        code = fbm.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) != schema.BuiltinOperator.DENSIFY:
            kept.append(op)
            continue
        dense = np.ascontiguousarray(it.get_tensor(op.outputs[0]))
        if not dense.any():
            raise RuntimeError(f"DENSIFY output {op.outputs[0]} is all zeros")
        buf = schema.BufferT()
        buf.data = np.frombuffer(dense.tobytes(), dtype=np.uint8)
        fbm.buffers.append(buf)
        graph.tensors[op.outputs[0]].buffer = len(fbm.buffers) - 1
        # The sparse input stays (tensor indices must not move) but becomes the same
        # dense constant: converters read every tensor, used or not.
        graph.tensors[op.inputs[0]].buffer = len(fbm.buffers) - 1
        graph.tensors[op.inputs[0]].sparsity = None
        replaced += 1
    graph.operators = kept
    flatbuffer_utils.write_model(fbm, str(out))
    return replaced


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "run":
        run(Path(argv[1]), Path(argv[2]), Path(argv[3]))
        return 0
    if len(argv) == 3 and argv[0] == "densify":
        print(f"densified {densify(Path(argv[1]), Path(argv[2]))} ops")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
