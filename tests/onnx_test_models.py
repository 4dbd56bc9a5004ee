"""Tiny deterministic ONNX models and windows for worker tests (test-only, no training).

The edge model's P(fall) is the mean pixel value of the window (grey 0..1 after the model's
own preprocessing), so a uniform grey window of level v gives p = v/255 whatever the
resize; the switcher's P(edge wrong) is ``1 - margin`` with ``margin = |2p - 1|`` and a
calibrated threshold of 0.5 in its metadata. So levels 242/13 are confident fall/no-fall
and 153 is an uncertain fall (offloaded). The mean-pixel cloud model gives the same
p = v/255 (so 153 is a fall for the cloud too); the failing cloud model loads and warms up
(all-zero input) but raises in onnxruntime on every window with a non-zero pixel. Built with ``onnx.helper`` and stamped with the fallwatch
metadata convention, so ``EdgeModel.load``/``Switcher.load`` accept them like zoo models.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper

from models.runtime.metadata import InputSpec, ModelMeta, stamp_metadata

__all__ = [
    "CONFIDENT_FALL",
    "CONFIDENT_NO_FALL",
    "FRAMES",
    "SIDE",
    "UNCERTAIN_FALL",
    "build_failing_cloud",
    "build_margin_switcher",
    "build_mean_pixel_cloud",
    "build_mean_pixel_edge",
    "grey_window_record",
]

FRAMES, SIDE = 16, 16
CONFIDENT_FALL, CONFIDENT_NO_FALL, UNCERTAIN_FALL = 242, 13, 153  # grey levels → p_fall


def _save(model: onnx.ModelProto, meta: ModelMeta, path: Path) -> Path:
    stamp_metadata(model, meta)
    path.write_bytes(model.SerializeToString())
    return path


def build_mean_pixel_edge(path: Path) -> Path:
    """Edge model: p_fall = mean of the (grey, 0..1) input; embedding = [p_fall]."""
    x = helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["N", 1, 2, 8, 8])
    probs = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 2])
    emb = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 1])
    nodes = [
        helper.make_node("ReduceMean", ["frames"], ["m"], axes=[1, 2, 3, 4], keepdims=1),
        helper.make_node("Reshape", ["m", "shape"], ["p"]),
        helper.make_node("Sub", ["one", "p"], ["q"]),
        helper.make_node("Concat", ["q", "p"], ["probs"], axis=1),
        helper.make_node("Identity", ["p"], ["embedding"]),
    ]
    inits = [
        helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1]),
        helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]),
    ]
    graph = helper.make_graph(nodes, "mean_pixel_edge", [x], [probs, emb], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    meta = ModelMeta(
        role="edge",
        name="test-mean-pixel",
        version="1",
        input=InputSpec(frames=2, height=8, width=8, color="gray"),
    )
    return _save(model, meta, path)


def _mean_pixel_probs_nodes() -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    nodes = [
        helper.make_node("ReduceMean", ["frames"], ["m"], axes=[1, 2, 3, 4], keepdims=1),
        helper.make_node("Reshape", ["m", "shape"], ["p"]),
        helper.make_node("Sub", ["one", "p"], ["q"]),
        helper.make_node("Concat", ["q", "p"], ["probs"], axis=1),
    ]
    inits = [
        helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1]),
        helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]),
    ]
    return nodes, inits


def _cloud(graph: onnx.GraphProto, name: str, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    meta = ModelMeta(
        role="cloud",
        name=name,
        version="1",
        input=InputSpec(frames=2, height=8, width=8, color="gray"),
    )
    return _save(model, meta, path)


def build_mean_pixel_cloud(path: Path) -> Path:
    """Cloud model: p_fall = mean of the (grey, 0..1) input, as the edge test model."""
    x = helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["N", 1, 2, 8, 8])
    probs = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 2])
    nodes, inits = _mean_pixel_probs_nodes()
    graph = helper.make_graph(nodes, "mean_pixel_cloud", [x], [probs], inits)
    return _cloud(graph, "test-mean-pixel-cloud", path)


def build_failing_cloud(path: Path) -> Path:
    """Cloud model that passes load and warm-up (all zeros) and fails on any real window:
    a Gather whose index is 1000 x the brightest pixel is out of bounds unless all are 0."""
    x = helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["N", 1, 2, 8, 8])
    probs = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 2])
    nodes, inits = _mean_pixel_probs_nodes()
    nodes[-1] = helper.make_node("Concat", ["q", "p"], ["probs_raw"], axis=1)
    nodes += [
        helper.make_node("ReduceMax", ["frames"], ["peak"], keepdims=0),
        helper.make_node("Mul", ["peak", "thousand"], ["scaled"]),
        helper.make_node("Cast", ["scaled"], ["index"], to=TensorProto.INT64),
        helper.make_node("Gather", ["table", "index"], ["picked"], axis=0),
        helper.make_node("Mul", ["picked", "zero"], ["nothing"]),
        helper.make_node("Add", ["probs_raw", "nothing"], ["probs"]),
    ]
    inits += [
        helper.make_tensor("thousand", TensorProto.FLOAT, [], [1000.0]),
        helper.make_tensor("table", TensorProto.FLOAT, [2], [0.0, 0.0]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
    ]
    graph = helper.make_graph(nodes, "failing_cloud", [x], [probs], inits)
    return _cloud(graph, "test-failing-cloud", path)


def build_margin_switcher(
    path: Path, threshold: float = 0.5, features: tuple[str, ...] = ("margin",)
) -> Path:
    """Switcher: P(edge wrong) = 1 - margin, calibrated threshold ``threshold``."""
    f = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 1])
    out = helper.make_tensor_value_info("p_wrong", TensorProto.FLOAT, ["N", 1])
    nodes = [helper.make_node("Sub", ["one", "features"], ["p_wrong"])]
    inits = [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])]
    graph = helper.make_graph(nodes, "margin_switcher", [f], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    meta = ModelMeta(
        role="switcher",
        name="test-margin",
        version="1",
        features=features,
        threshold=threshold,
        target_offload_rate=0.2,
    )
    return _save(model, meta, path)


def grey_window_record(stream_id: str, seq: int, level: int) -> dict[str, Any]:
    """A raw-gray8 frame_window whose every pixel is ``level``."""
    start_ns = time.time_ns() - 2_000_000_000
    return {
        "stream_id": stream_id,
        "window_seq": seq,
        "capture_start_ns": start_ns,
        "capture_end_ns": start_ns + 2_000_000_000,
        "fps": 8.0,
        "width": SIDE,
        "height": SIDE,
        "frame_count": FRAMES,
        "codec": "raw-gray8",
        "payload": bytes([level]) * (FRAMES * SIDE * SIDE),
    }
