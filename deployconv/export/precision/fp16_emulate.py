"""The fp16 emulation twin: an fp32 graph that computes what a mixed fp16 graph computes on an fp16 device,
so ONNX Runtime CPU can measure it.

Why not run the mixed graph itself: ORT CPU (x86) has no fp16 kernel for Conv, MatMul, the elementwise ops,
pooling...; its InsertCastTransformer runs each fp16 island in fp32 and casts only at the island's edges, so
the rounding of every intermediate tensor to fp16 — the error an fp16 engine actually makes — vanishes
(measured with ORT 1.31: (1 + 0.0003) - 1 in an fp16 island gives 0.0003, not fp16's 0). Explicit
Cast(fp16) -> Cast(fp32) pairs in an fp32 graph are kept, so the twin writes one after every node output that
is fp16 in the mixed graph. The twin models fp16 storage with fp32 arithmetic inside each op (what tensor-core
GEMMs with fp32 accumulation do); overflow beyond 65504 becomes inf, as on the device. Where arithmetic inside
an op matters — reductions, GlobalAveragePool, Softmax, LayerNormalization — an op whose input is fp16 is
rewritten to accumulate in fp16 (fp16_accumulate.py), so an fp16 reduction and one kept fp32 between fp16
neighbours give different results; `emulation_report` lists what was and was not modelled.

Tensor names of the mixed graph are kept: a tensor holds the rounded value under its own name, so the twin's
intermediates compare with the fp32 graph's by name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from deployconv.export.precision import fp16_accumulate
from deployconv.export.precision.fp16 import typing_view, unique_namer

FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16
# ops whose fp16 output only selects, moves or compares fp16 inputs: it is exactly representable, no rounding
EXACT_OPS = frozenset({
    "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Slice", "Split", "Concat", "Gather",
    "GatherElements", "GatherND", "Expand", "Identity", "Tile", "Pad", "MaxPool", "GlobalMaxPool", "ReduceMax",
    "ReduceMin", "Relu", "Max", "Min", "Neg", "Abs", "Clip", "Where", "DepthToSpace", "SpaceToDepth"})


@dataclass
class EmulationReport:
    """Which ops got fp16 arithmetic inside (accumulation), and which fp16 ops could not be modelled."""

    accumulation_modelled: list[str] = field(default_factory=list)
    not_modelled: list[dict] = field(default_factory=list)  # {node, op_type, why}
    note: str = fp16_accumulate.NOT_MODELLED_GEMM

    def to_dict(self) -> dict:
        return asdict(self)


def emulation_twin(mixed: onnx.ModelProto) -> onnx.ModelProto:
    """fp32 graph with fp16 rounding after every fp16 tensor of `mixed`, and fp16 accumulation inside its fp16
    reductions; takes and returns fp32 tensors."""
    return emulation_report(mixed)[0]


def _int_constants(g: onnx.GraphProto) -> dict[str, np.ndarray]:
    out = {t.name: numpy_helper.to_array(t) for t in g.initializer
           if t.data_type in (TensorProto.INT64, TensorProto.INT32)}
    for n in g.node:
        if n.op_type == "Constant" and not n.domain:
            for a in n.attribute:
                if a.name == "value" and a.t.data_type in (TensorProto.INT64, TensorProto.INT32):
                    out[n.output[0]] = numpy_helper.to_array(a.t)
    return out


def emulation_report(mixed: onnx.ModelProto) -> tuple[onnx.ModelProto, EmulationReport]:
    """emulation_twin, and what it modelled inside ops."""
    inferred = onnx.shape_inference.infer_shapes(typing_view(mixed))
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.output, *g.value_info)}
    types.update({t.name: t.data_type for t in mixed.graph.initializer})
    shapes = {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
              for v in (*g.input, *g.output, *g.value_info) if v.type.tensor_type.HasField("shape")}
    consts = _int_constants(mixed.graph)
    opset = next((o.version for o in mixed.opset_import if o.domain in ("", "ai.onnx")), 0)
    report = EmulationReport()

    twin = onnx.ModelProto()
    twin.CopyFrom(mixed)
    tg = twin.graph
    del tg.value_info[:]
    for t in tg.initializer:
        if t.data_type == FLOAT16:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype("float32"), t.name))
    taken = {t for n in tg.node for t in (*n.input, *n.output)} | {i.name for i in tg.input}

    fresh = unique_namer(taken)

    def rounding(src: str, dst: str) -> list[onnx.NodeProto]:
        half = fresh(f"{dst}__as_fp16")
        return [helper.make_node("Cast", [src], [half], name=fresh(f"{dst}__round16"), to=FLOAT16),
                helper.make_node("Cast", [half], [dst], name=fresh(f"{dst}__round32"), to=FLOAT)]

    nodes: list[onnx.NodeProto] = []
    renamed_inputs: dict[str, str] = {}
    for v in tg.input:
        if v.type.tensor_type.elem_type == FLOAT16:
            v.type.tensor_type.elem_type = FLOAT
            rounded = fresh(f"{v.name}__rounded")
            renamed_inputs[v.name] = rounded
            nodes += rounding(v.name, rounded)
    for v in tg.output:
        if v.type.tensor_type.elem_type == FLOAT16:
            v.type.tensor_type.elem_type = FLOAT
    for node in tg.node:
        for i, t in enumerate(node.input):
            if t in renamed_inputs:
                node.input[i] = renamed_inputs[t]
        _attrs_to_fp32(node)
        if node.op_type == "Cast" and not node.domain:
            to = next(a.i for a in node.attribute if a.name == "to")
            if to == FLOAT16:
                nodes += rounding(node.input[0], node.output[0])
                continue
            if to == FLOAT and types.get(node.input[0]) == FLOAT16:
                nodes.append(helper.make_node("Identity", [node.input[0]], [node.output[0]], name=node.name))
                continue
            nodes.append(node)
            continue
        if node.op_type in fp16_accumulate.MODELLED and not node.domain and types.get(node.input[0]) == FLOAT16 \
                and types.get(node.output[0]) == FLOAT16:
            done = fp16_accumulate.rewrite(node, shapes.get(node.input[0]), consts, fresh, opset)
            if isinstance(done, str):
                report.not_modelled.append({"node": node.name, "op_type": node.op_type, "why": done})
            else:
                nodes += done[0]
                tg.initializer.extend(done[1])
                report.accumulation_modelled.append(node.name)
                continue
        tail = []
        if node.op_type not in EXACT_OPS or node.domain:
            for j, o in enumerate(node.output):
                if o and types.get(o) == FLOAT16:
                    raw = fresh(f"{o}__fp32")
                    node.output[j] = raw
                    tail += rounding(raw, o)
        nodes.append(node)
        nodes += tail
    del tg.node[:]
    tg.node.extend(nodes)
    return twin, report


def _attrs_to_fp32(node: onnx.NodeProto) -> None:
    """fp16 tensors inside attributes (Constant, ConstantOfShape values) become fp32 (exactly)."""
    for a in node.attribute:
        if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == FLOAT16:
            a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype("float32"), a.t.name))
        if a.type == onnx.AttributeProto.INT and a.name in ("dtype", "to") and a.i == FLOAT16 and node.op_type != "Cast":
            a.i = FLOAT
