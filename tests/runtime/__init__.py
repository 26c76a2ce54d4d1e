"""Tiny ONNX graphs built with onnx.helper (no torch), shared by the runtime, latency, CLI and torch-free tests.

IR version 10: onnx 1.23's default IR (14) is newer than onnxruntime 1.31 loads (13).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 10
OPSET = 17
CLASSES = 10


def classifier_weight() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((3, CLASSES)).astype(np.float32)


def classifier_reference(x: np.ndarray) -> np.ndarray:
    """What tiny_classifier computes: global average pool over H, W, then a 3 -> 10 linear layer."""
    return x.mean(axis=(2, 3)) @ classifier_weight()


def tiny_classifier(batch: int | str | None = "N", hw: tuple[int | str | None, int | str | None] = (8, 8),
                    ir_version: int = IR_VERSION) -> onnx.ModelProto:
    """x: float32[batch, 3, H, W] -> logits: float32[batch, 10]."""
    nodes = [helper.make_node("ReduceMean", ["x"], ["pooled"], axes=[2, 3], keepdims=0),
             helper.make_node("MatMul", ["pooled", "W"], ["logits"])]
    graph = helper.make_graph(
        nodes, "tiny_classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, *hw])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, CLASSES])],
        initializer=[numpy_helper.from_array(classifier_weight(), "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=ir_version)
    if ir_version <= onnx.IR_VERSION:
        onnx.checker.check_model(model)
    return model


def two_inputs() -> onnx.ModelProto:
    """a: float32[N, 4] and idx: int64[N] -> y = a * 2 (float32[N, 4]), idx_out = idx + 1."""
    nodes = [helper.make_node("Add", ["a", "a"], ["y"]),
             helper.make_node("Add", ["idx", "one"], ["idx_out"])]
    graph = helper.make_graph(
        nodes, "two_inputs",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("idx", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("idx_out", TensorProto.INT64, ["N"])],
        initializer=[numpy_helper.from_array(np.array(1, dtype=np.int64), "one")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    return model


def plugin_node_graph() -> onnx.ModelProto:
    """One deployconv plugin node: what the `plugin` lowering emits, which ONNX Runtime cannot run."""
    node = helper.make_node("DeployconvSKA", ["x", "w"], ["y"], domain="deployconv")
    graph = helper.make_graph(
        [node], "plugin",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8]),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, 1, 9, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("deployconv", 1)],
                             ir_version=IR_VERSION)


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
