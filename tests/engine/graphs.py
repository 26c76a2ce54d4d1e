"""Tiny ONNX graphs for the engine planner, built with onnx.helper (no torch): the same small conv net in the
forms an export produces — plain fp32, fp16 inside with fp32 I/O, bf16 inside, explicit Q/DQ int8 — plus
graphs with plugin nodes, custom-domain nodes, dynamic H/W, a static batch and an If subgraph."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 10
OPSET = 20
C_OUT = 4


def _weights() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((C_OUT, 3, 3, 3)).astype(np.float32), rng.standard_normal(C_OUT).astype(np.float32)


def _model(nodes, inputs, outputs, inits, extra_opsets=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    opsets = [helper.make_opsetid("", OPSET), *[helper.make_opsetid(d, v) for d, v in extra_opsets]]
    return helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION)


def conv_net(precision: str = "fp32", batch: int | str | None = "batch",
             hw: tuple[int | str | None, int | str | None] = (8, 8), input_name: str = "x") -> onnx.ModelProto:
    """x: float32[batch, 3, H, W] -> Conv 3x3 -> Relu -> GlobalAveragePool -> y: float32[batch, 4, 1, 1].

    precision: "fp32" (plain), "fp16"/"bf16" (weights and compute in that type, Casts at the fp32 I/O, as a
    mixed-precision export does), "int8" (QuantizeLinear/DequantizeLinear on the activation and the weight).
    """
    w, b = _weights()
    x_info = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, 3, *hw])
    y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, C_OUT, 1, 1])
    tail = [helper.make_node("Relu", ["conv"], ["relu"]), helper.make_node("GlobalAveragePool", ["relu"], ["pooled"])]
    if precision == "fp32":
        nodes = [helper.make_node("Conv", [input_name, "W", "B"], ["conv"], pads=[1, 1, 1, 1]), *tail,
                 helper.make_node("Identity", ["pooled"], ["y"])]
        inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")]
    elif precision in ("fp16", "bf16"):
        low = TensorProto.FLOAT16 if precision == "fp16" else TensorProto.BFLOAT16
        inits = [helper.make_tensor("W", low, w.shape, w.ravel().tolist()),
                 helper.make_tensor("B", low, b.shape, b.tolist())]
        nodes = [helper.make_node("Cast", [input_name], ["x_low"], to=low),
                 helper.make_node("Conv", ["x_low", "W", "B"], ["conv"], pads=[1, 1, 1, 1]), *tail,
                 helper.make_node("Cast", ["pooled"], ["y"], to=TensorProto.FLOAT)]
    elif precision == "int8":
        inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B"),
                 numpy_helper.from_array(np.array(0.05, np.float32), "x_scale"),
                 numpy_helper.from_array(np.array(0, np.int8), "x_zero"),
                 numpy_helper.from_array(np.full(C_OUT, 0.02, np.float32), "w_scale"),
                 numpy_helper.from_array(np.zeros(C_OUT, np.int8), "w_zero")]
        nodes = [helper.make_node("QuantizeLinear", [input_name, "x_scale", "x_zero"], ["xq"]),
                 helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xdq"]),
                 helper.make_node("QuantizeLinear", ["W", "w_scale", "w_zero"], ["wq"], axis=0),
                 helper.make_node("DequantizeLinear", ["wq", "w_scale", "w_zero"], ["wdq"], axis=0),
                 helper.make_node("Conv", ["xdq", "wdq", "B"], ["conv"], pads=[1, 1, 1, 1]), *tail,
                 helper.make_node("Identity", ["pooled"], ["y"])]
    else:
        raise ValueError(precision)
    model = _model(nodes, [x_info], [y_info], inits)
    onnx.checker.check_model(model)
    return model


def plugin_net(batch: int | str = "batch", count: int = 2) -> onnx.ModelProto:
    """`count` DeployconvSKA plugin nodes in a chain (what the `plugin` lowering emits)."""
    nodes, prev = [], "x"
    for k in range(count):
        nodes.append(helper.make_node("DeployconvSKA", [prev, "w"], [f"s{k}"], domain="deployconv", name=f"ska_{k}"))
        prev = f"s{k}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    return _model(nodes,
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4, 8, 8]),
                   helper.make_tensor_value_info("w", TensorProto.FLOAT, [batch, 1, 9, 8, 8])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4, 8, 8])], [],
                  extra_opsets=[("deployconv", 1)])


def custom_domain_net() -> onnx.ModelProto:
    """One node in a foreign domain (not a deployconv plugin): TensorRT imports it only via a plugin."""
    node = helper.make_node("FancyOp", ["x"], ["y"], domain="com.example")
    return _model([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])], [],
                  extra_opsets=[("com.example", 1)])


def if_subgraph_net() -> onnx.ModelProto:
    """An If whose branches cast to fp16 and back: the fp16 is only visible inside the subgraphs."""
    def branch(name: str) -> onnx.GraphProto:
        return helper.make_graph(
            [helper.make_node("Cast", ["x"], [f"{name}_h"], to=TensorProto.FLOAT16),
             helper.make_node("Cast", [f"{name}_h"], [f"{name}_out"], to=TensorProto.FLOAT)],
            name, [], [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, ["batch", 3])])

    node = helper.make_node("If", ["cond"], ["y"], then_branch=branch("then"), else_branch=branch("else"))
    model = _model([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3]),
                            helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])], [])
    onnx.checker.check_model(model)
    return model


def two_batched_inputs() -> onnx.ModelProto:
    """a: float32[N, 4], idx: int64[N] (one batch symbol), table: float32[5, 4] (static dim 0: not a batch)."""
    nodes = [helper.make_node("Add", ["a", "a"], ["y"]),
             helper.make_node("Add", ["idx", "idx"], ["idx_out"]),
             helper.make_node("Identity", ["table"], ["table_out"])]
    model = _model(nodes,
                   [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 4]),
                    helper.make_tensor_value_info("idx", TensorProto.INT64, ["N"]),
                    helper.make_tensor_value_info("table", TensorProto.FLOAT, [5, 4])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4]),
                    helper.make_tensor_value_info("idx_out", TensorProto.INT64, ["N"]),
                    helper.make_tensor_value_info("table_out", TensorProto.FLOAT, [5, 4])], [])
    onnx.checker.check_model(model)
    return model
