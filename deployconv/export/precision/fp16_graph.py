"""The graph side of fp16 conversion: element types from strict shape inference (on a weight-free view),
which float slots of a node its ONNX schema lets become float16, node naming, constant lifting, fp16 rounding
of constants (clamp counts), and the final onnx.checker / shape-inference check. Pure functions over
onnx.ModelProto, used by fp16.py (the rewrite) and fp16_emulate.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from deployconv.core.errors import BadInputError, CheckFailedError
from deployconv.plugins.onnx_schemas import register_plugin_schemas

FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16
FP16_MAX = 65504.0
_TENSOR16 = "tensor(float16)"


def unique_namer(taken: set[str]) -> Callable[[str], str]:
    """A function giving names not in `taken` (a `_` appended until free), each added to `taken`."""

    def fresh(base: str) -> str:
        name = base
        while name in taken:
            name += "_"
        taken.add(name)
        return name

    return fresh


def ensure_node_names(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Give every unnamed node a unique name (`<op_type>_<index>`), in place: node names are how decisions,
    `keep_fp32_nodes` and reports refer to nodes."""
    taken = {n.name for n in proto.graph.node if n.name}
    for i, node in enumerate(proto.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)
    return proto


def _refuse_unsupported(model: onnx.ModelProto) -> None:
    g = model.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in g.node for a in n.attribute):
        raise BadInputError("fp16 conversion does not handle control flow (If/Loop/Scan subgraphs)",
                            fix="export without data-dependent control flow, or keep this model fp32")
    has16 = [t.name for t in g.initializer if t.data_type == FLOAT16]
    has16 += [v.name for v in (*g.input, *g.output, *g.value_info) if v.type.tensor_type.elem_type == FLOAT16]
    if has16:
        raise BadInputError(f"the graph already holds float16 tensors ({', '.join(has16[:3])}...)",
                            why="to_fp16 converts an fp32 graph; converting twice would stack casts",
                            fix="pass the fp32 export (model.onnx of an fp32 target)")


def _lift_float_constants(model: onnx.ModelProto) -> None:
    """Float Constant nodes become initializers, so every constant is converted offline the same way."""
    g = model.graph
    keep = []
    for node in g.node:
        if node.op_type == "Constant" and not node.domain and len(node.attribute) == 1:
            value = helper.get_attribute_value(node.attribute[0])
            name = node.attribute[0].name
            arr = None
            if name == "value" and value.data_type == FLOAT:
                arr = numpy_helper.to_array(value)
            elif name in ("value_float", "value_floats"):
                arr = np.array(value, np.float32)
            if arr is not None:
                g.initializer.append(numpy_helper.from_array(arr.astype(np.float32), node.output[0]))
                continue
        keep.append(node)
    if len(keep) != len(g.node):
        del g.node[:]
        g.node.extend(keep)


def typing_view(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its large float initializers declared as inputs (type and shape, no data): shape
    inference serialises the whole model, and weights are most of it. Integer constants (shapes, axes) keep
    their values, so shapes still propagate."""
    view = onnx.ModelProto()
    for f in ("ir_version", "producer_name", "producer_version", "domain", "model_version"):
        setattr(view, f, getattr(model, f))
    view.opset_import.extend(model.opset_import)
    view.functions.extend(model.functions)
    src, g = model.graph, view.graph
    g.name = src.name
    g.node.extend(src.node)
    g.input.extend(src.input)
    g.output.extend(src.output)
    g.value_info.extend(src.value_info)
    inputs = {i.name for i in src.input}
    for t in src.initializer:
        if t.data_type in (FLOAT, FLOAT16) and int(np.prod(t.dims)) > 64 and t.name not in inputs:
            g.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        else:
            g.initializer.append(t)
    return view


def elem_types(model: onnx.ModelProto) -> dict[str, int]:
    try:
        inferred = onnx.shape_inference.infer_shapes(typing_view(model), strict_mode=True)
    except Exception as e:  # onnx raises InferenceError and plain RuntimeErrors
        raise BadInputError("ONNX shape inference fails on the fp32 graph", why=str(e).splitlines()[0],
                            fix="check the graph with `python -m onnx.checker`; fp16 conversion needs typed tensors") from None
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.output, *g.value_info)
             if v.type.HasField("tensor_type")}
    types.update({t.name: t.data_type for t in g.initializer})
    return types


def _opsets(model: onnx.ModelProto) -> dict[str, int]:
    return {("" if o.domain == "ai.onnx" else o.domain): o.version for o in model.opset_import}


def _schema(node: onnx.NodeProto, opsets: dict[str, int]) -> onnx.defs.OpSchema | None:
    domain = "" if node.domain == "ai.onnx" else node.domain
    if domain:
        register_plugin_schemas()
    try:
        return onnx.defs.get_schema(node.op_type, opsets.get(domain, 1), domain)
    except onnx.defs.SchemaError:
        return None


def _formal(params, i: int):
    if i < len(params):
        return params[i]
    if params and params[-1].option == onnx.defs.OpSchema.FormalParameterOption.Variadic:
        return params[-1]
    return None


@dataclass
class _Slots:
    """Which float32 inputs/outputs of a node change to fp16 when the node runs in fp16."""

    inputs: list[bool]
    outputs: list[bool]
    no_fp16: str | None = None

    @property
    def convertible(self) -> bool:
        return any(self.inputs) or any(self.outputs)


def _slots(node: onnx.NodeProto, types: dict[str, int], opsets: dict[str, int]) -> _Slots:
    ins = [bool(t) and types.get(t) == FLOAT for t in node.input]
    outs = [bool(t) and types.get(t) == FLOAT for t in node.output]
    if not any(ins):  # no float input: nothing to compute in fp16; a float output (ConstantOfShape,
        return _Slots([False] * len(ins), [False] * len(outs))  # RandomNormal) is typed by an attribute: fp32
    schema = _schema(node, opsets)
    if schema is None:
        what = f"{node.domain}::{node.op_type}" if node.domain else node.op_type
        return _Slots([False] * len(ins), [False] * len(outs), f"{what} has no ONNX schema here")
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    blocked: set[str] = set()

    def slot(params, i: int, is_float: bool) -> bool:
        p = _formal(params, i)
        if not is_float or p is None or p.type_str not in allowed:
            return False  # fixed type (tensor(float)) or unknown: stays fp32
        if _TENSOR16 not in allowed[p.type_str]:
            blocked.add(p.type_str)
            return False
        return True

    si = [slot(schema.inputs, i, f) for i, f in enumerate(ins)]
    so = [slot(schema.outputs, i, f) for i, f in enumerate(outs)]
    no = f"{node.op_type} (opset {schema.since_version}) admits no float16" if blocked else None
    if no:
        si, so = [False] * len(ins), [False] * len(outs)
    return _Slots(si, so, no)


def fp16_array(a: np.ndarray) -> tuple[np.ndarray, int, int]:
    """fp32 -> fp16 with values beyond +-65504 clamped (count), and the count of non-zero finite values that
    become 0. NaN and +-inf stay what they are."""
    a = np.asarray(a, dtype=np.float32)
    finite = np.isfinite(a)
    over = finite & (np.abs(a) > FP16_MAX)
    a16 = np.where(over, np.sign(a) * FP16_MAX, a).astype(np.float16)
    under = finite & (a != 0) & (a16 == 0)
    return a16, int(np.count_nonzero(over)), int(np.count_nonzero(under))


def _validate(model: onnx.ModelProto) -> None:
    register_plugin_schemas()
    try:
        onnx.checker.check_model(model)
        inferred = onnx.shape_inference.infer_shapes(typing_view(model), strict_mode=True)
    except Exception as e:
        raise CheckFailedError("the fp16 graph fails onnx.checker / shape inference", why=str(e).splitlines()[0],
                               fix="report this as a deployconv bug; as a workaround keep the named node in fp32 "
                                   "(keep_fp32_nodes)") from None
    del model.graph.value_info[:]
    model.graph.value_info.extend(inferred.graph.value_info)
