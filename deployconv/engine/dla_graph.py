"""Graph facts for the DLA placement rules: shapes (onnx's shape inference), element types, constants and
consumers of every tensor of an ONNX graph, and the limits every DLA layer shares. Pure and torch-free; onnx
is imported when a graph is read. See deployconv.engine.dla for the sources ([table], [header], ...)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DLA_PRECISIONS = ("fp16", "int8")
MAX_BATCH = 4096  # [table] general restrictions
MAX_DIM = 8192  # [table] every non-batch dimension
STANDARD_DOMAINS = ("", "ai.onnx")
PLUGIN_DOMAIN = "deployconv"
# Nodes that do not become TensorRT layers: weights, no-ops, and Q/DQ scales that set the int8 precision of
# their neighbours (explicit quantization fuses them away).
NOT_LAYERS = ("Constant", "Identity", "Dropout", "QuantizeLinear", "DequantizeLinear")
DLA_FLOAT_TYPES = ("FLOAT", "FLOAT16", "INT8")  # fp32 tensors of an fp32-typed ONNX run as fp16 under the flag

Dims = tuple[Any, ...]  # int for a static dim, str/None for a dynamic one


@dataclass
class _Graph:
    """Shapes, element types, constants and consumers of every tensor, from onnx's shape inference."""

    shapes: dict[str, Dims | None]
    types: dict[str, str]
    constants: dict[str, Any]  # name -> numpy array
    consumers: dict[str, list[Any]]
    precision: str = "fp16"  # the target's: some DLA limits differ for int8

    def shape(self, name: str) -> Dims | None:
        return self.shapes.get(name)

    def const(self, name: str) -> Any:
        return self.constants.get(name)


def _graph_facts(proto: Any, precision: str) -> _Graph:
    import onnx
    from onnx import numpy_helper

    try:  # plugin schemas let shape inference pass through our nodes (their outputs stay unknown)
        from deployconv.plugins.onnx_schemas import register_plugin_schemas

        register_plugin_schemas()
    except Exception:  # the schemas only improve inference; without them it stops at plugin nodes
        pass
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=False, strict_mode=False, data_prop=True)
    except Exception:  # an uninferable graph still has its declared inputs and outputs
        inferred = proto
    g = inferred.graph
    shapes: dict[str, Dims | None] = {}
    types: dict[str, str] = {}
    for v in (*g.input, *g.value_info, *g.output):
        t = v.type.tensor_type
        types[v.name] = onnx.TensorProto.DataType.Name(t.elem_type) if t.elem_type else ""
        shapes[v.name] = (tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim)
                          if t.HasField("shape") else None)
    constants: dict[str, Any] = {}
    for init in g.initializer:
        constants[init.name] = numpy_helper.to_array(init)
    for node in g.node:
        if node.op_type == "Constant" and node.domain in STANDARD_DOMAINS:
            for a in node.attribute:
                if a.name == "value":
                    constants[node.output[0]] = numpy_helper.to_array(a.t)
    for name, arr in constants.items():
        shapes[name] = tuple(int(d) for d in arr.shape)
    consumers: dict[str, list[Any]] = {}
    for node in g.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    return _Graph(shapes, types, constants, consumers, precision)


def _attr(node: Any, name: str, default: Any = None) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _static(shape: Dims | None) -> bool:
    return shape is not None and all(isinstance(d, int) and d > 0 for d in shape)
