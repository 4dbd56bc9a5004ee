"""Tiny hand-built ONNX models (onnx.helper, no torch) for models/ unit tests.

- edge: p_fall = sigmoid(gain * (mean grey pixel - 0.5)); embedding = [mean, mean^2]
  (optional); input spec 4 grey frames 8x8.
- cloud: p_fall = sigmoid(gain * (mean of the RED channel - 0.5)); input 4 RGB 8x8.
  So on uniformly coloured windows the two disagree exactly when luma and red
  fall on different sides of 0.5 — a controllable DMD pool.
- switcher: p_wrong = sigmoid(sum of features * w) with given feature names.
All are stamped with the fallwatch metadata convention.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from models.runtime.metadata import InputSpec, ModelMeta, stamp_metadata

EDGE_SPEC = InputSpec(frames=4, height=8, width=8, color="gray", fps=2.0, resample="box")
CLOUD_SPEC = InputSpec(frames=4, height=8, width=8, color="rgb", fps=2.0, resample="box")


def _finish(nodes: list[onnx.NodeProto], name: str, inputs: list[onnx.ValueInfoProto],
            outputs: list[onnx.ValueInfoProto], inits: list[onnx.TensorProto]) -> onnx.ModelProto:  # fmt: skip
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _prob_nodes(mean_name: str, gain: float) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    nodes = [
        helper.make_node("Reshape", [mean_name, "shape"], ["m"]),
        helper.make_node("Sub", ["m", "half"], ["c"]),
        helper.make_node("Mul", ["c", "gain"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p"]),
        helper.make_node("Sub", ["one", "p"], ["q"]),
        helper.make_node("Concat", ["q", "p"], ["probs"], axis=1),
    ]
    inits = [
        helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1]),
        helper.make_tensor("half", TensorProto.FLOAT, [1], [0.5]),
        helper.make_tensor("gain", TensorProto.FLOAT, [1], [gain]),
        helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]),
    ]
    return nodes, inits


def edge_model(
    *, with_embedding: bool = True, gain: float = 8.0, version: str = "t1"
) -> onnx.ModelProto:
    s = EDGE_SPEC
    x = helper.make_tensor_value_info(
        "frames", TensorProto.FLOAT, ["N", 1, s.frames, s.height, s.width]
    )
    nodes = [helper.make_node("ReduceMean", ["frames"], ["mean"], axes=[1, 2, 3, 4], keepdims=1)]
    more, inits = _prob_nodes("mean", gain)
    nodes += more
    outputs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 2])]
    if with_embedding:
        nodes += [
            helper.make_node("Mul", ["m", "m"], ["m2"]),
            helper.make_node("Concat", ["m", "m2"], ["embedding"], axis=1),
        ]
        outputs.append(helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 2]))
    model = _finish(nodes, "edge", [x], outputs, inits)
    stamp_metadata(model, ModelMeta(role="edge", name="test-edge", version=version, input=s,
                                    seed=1, flops=10))  # fmt: skip
    return model


def cloud_model(*, gain: float = 8.0) -> onnx.ModelProto:
    s = CLOUD_SPEC
    x = helper.make_tensor_value_info(
        "frames", TensorProto.FLOAT, ["N", 3, s.frames, s.height, s.width]
    )
    nodes = [
        helper.make_node("Slice", ["frames", "starts", "ends", "axes"], ["red"]),
        helper.make_node("ReduceMean", ["red"], ["mean"], axes=[1, 2, 3, 4], keepdims=1),
    ]
    more, inits = _prob_nodes("mean", gain)
    nodes += more
    inits += [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [1]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
    ]
    outputs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 2])]
    model = _finish(nodes, "cloud", [x], outputs, inits)
    stamp_metadata(model, ModelMeta(role="cloud", name="test-cloud", version="t1", input=s,
                                    seed=1, flops=1000))  # fmt: skip
    return model


def switcher_model(features: tuple[str, ...], *, threshold: float = 0.5,
                   calibration: str | None = None,
                   pair: str | None = None) -> onnx.ModelProto:  # fmt: skip
    n = len(features)
    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", n])
    y = helper.make_tensor_value_info("p_wrong", TensorProto.FLOAT, ["N", 1])
    w = np.linspace(-1.0, 1.0, n).astype(np.float32).reshape(n, 1)
    nodes = [
        helper.make_node("MatMul", ["features", "w"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p_wrong"]),
    ]
    inits = [helper.make_tensor("w", TensorProto.FLOAT, [n, 1], w.ravel().tolist())]
    model = _finish(nodes, "switcher", [x], [y], inits)
    extra = {"fallwatch.calibration": calibration} if calibration else {}
    if pair is not None:
        extra["fallwatch.pair"] = pair
    stamp_metadata(model, ModelMeta(role="switcher", name="test-switcher", version="t1",
                                    features=features, threshold=threshold,
                                    target_offload_rate=0.2, extra=extra))  # fmt: skip
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def colour_windows(
    n: int, seed: int, *, frames: int = 16, h: int = 12, w: int = 16
) -> list[np.ndarray]:
    """Uniformly coloured windows with random RGB (uint8 [T,H,W,3])."""
    rng = np.random.default_rng(seed)
    out = []
    for rgb in rng.integers(0, 256, size=(n, 3)):
        out.append(np.broadcast_to(rgb.astype(np.uint8), (frames, h, w, 3)).copy())
    return out
