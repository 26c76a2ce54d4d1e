"""fp32 ONNX -> mixed-precision fp16 ONNX: the precision lives in the graph, as TensorRT 11 needs.

Which nodes run in fp16 is decided by `fp16_rules` (normalisations, softmax, reductions, exp/pow/log/erf and
sampling stay fp32). This file carries the decision out:
- a node's float tensors are switched to fp16 where its ONNX schema lets them (a type variable that admits
  float16); inputs fixed to tensor(float), like Resize's scales, stay fp32;
- Casts only where a tensor crosses between fp32 and fp16: one Cast per (tensor, dtype) however many
  consumers it has; a tensor made by a Cast is re-cast from that Cast's input, never chained (Cast->Cast);
  an existing Cast-to-float whose readers all want fp16 is retargeted instead;
- constants (initializers, Constant nodes) are converted offline, never cast at run time: values beyond the
  fp16 range are clamped to +-65504 (counted), non-zero values that fall below fp16's smallest subnormal
  become 0 (counted); a constant read in both precisions gets an fp16 twin;
- graph inputs/outputs keep fp32 unless io_dtype="fp16".
The result passes onnx.checker and strict shape inference (checked here).

ONNX Runtime CPU (x86) has fp16 kernels for little more than data movement (measured with ORT 1.31: Conv,
MatMul, Gemm, the elementwise ops, pooling, Resize, DeformConv, GridSample have none): its
InsertCastTransformer runs those nodes in fp32 between casts it adds, so these graphs run there, but the
rounding between consecutive fp16 nodes disappears. fp16_emulate.py builds the graph that measures fp16 storage
faithfully on ORT CPU. The graph typing and naming helpers this uses are fp16_graph.py.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from deployconv.core.errors import BadInputError
from deployconv.export.precision.fp16_graph import (
    FLOAT,
    FLOAT16,
    FP16_MAX,
    _lift_float_constants,
    _opsets,
    _refuse_unsupported,
    _slots,
    _validate,
    elem_types,
    ensure_node_names,
    fp16_array,
    typing_view,
    unique_namer,
)
from deployconv.export.precision.fp16_rules import COORDINATE_INPUTS, FP16, NodeView, decide

__all__ = ["FLOAT", "FLOAT16", "FP16_MAX", "IO_DTYPES", "CastInfo", "ClampInfo", "Fp16Conversion", "KeptNode",
           "convert_fp16", "elem_types", "ensure_node_names", "fp16_array", "to_fp16", "typing_view", "unique_namer"]

IO_DTYPES = {"fp32": FLOAT, "fp16": FLOAT16}
_DTYPE_NAME = {FLOAT: "fp32", FLOAT16: "fp16"}
# nodes whose float input is read whatever its type: they never need a Cast in front
_ANY_TYPE_INPUT = frozenset({"Cast", "Shape", "Size"})


@dataclass
class KeptNode:
    name: str
    op_type: str
    reason: str


@dataclass
class CastInfo:
    tensor: str  # the tensor crossing the boundary
    to: str  # "fp16" | "fp32"
    output: str
    consumers: int  # nodes (and graph outputs) reading the cast


@dataclass
class ClampInfo:
    constant: str
    clamped: int  # |value| > 65504, set to +-65504
    underflowed: int  # non-zero values that became 0
    max_abs: float


@dataclass
class Fp16Conversion:
    """What `convert_fp16` did: every node kept in fp32 and why, the casts, the clamped constants."""

    io_dtype: str
    nodes: int
    fp16_nodes: int
    kept_fp32: list[KeptNode] = field(default_factory=list)
    casts: list[CastInfo] = field(default_factory=list)
    retargeted_casts: list[str] = field(default_factory=list)  # existing Cast nodes now casting to fp16
    clamped_values: int = 0
    underflowed_values: int = 0
    clamped: list[ClampInfo] = field(default_factory=list)
    seconds: float = 0.0
    fp16_node_names: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def to_fp16(proto: onnx.ModelProto, *, io_dtype: str = "fp32",
            keep_fp32_nodes: frozenset[str] = frozenset()) -> onnx.ModelProto:
    """Mixed-precision fp16 copy of an fp32 graph (the input is not modified). See the module docstring."""
    return convert_fp16(proto, io_dtype=io_dtype, keep_fp32_nodes=keep_fp32_nodes)[0]


def convert_fp16(proto: onnx.ModelProto, *, io_dtype: str = "fp32",
                 keep_fp32_nodes: frozenset[str] = frozenset(),
                 measure_ops: frozenset[str] = frozenset()) -> tuple[onnx.ModelProto, Fp16Conversion]:
    """`to_fp16` plus what it did (kept nodes with reasons, casts, clamped constants). `measure_ops`: op types
    the rules leave in fp16 for the guard to measure (fp16_rules.decide)."""
    t0 = time.perf_counter()
    if io_dtype not in IO_DTYPES:
        raise BadInputError(f"io_dtype {io_dtype!r}", fix="use 'fp32' or 'fp16'")
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    ensure_node_names(model)
    unknown = sorted(set(keep_fp32_nodes) - {n.name for n in model.graph.node})
    if unknown:
        raise BadInputError(f"keep_fp32_nodes names nodes the graph does not have: {', '.join(unknown[:5])}",
                            fix="use node names from the ONNX graph (e.g. from the fp16 report or Netron)")
    _refuse_unsupported(model)
    _lift_float_constants(model)
    rewrite = _Rewrite(model, IO_DTYPES[io_dtype], frozenset(keep_fp32_nodes), frozenset(measure_ops))
    info = rewrite.apply(io_dtype)
    _validate(model)
    info.seconds = round(time.perf_counter() - t0, 3)
    return model, info


class _Rewrite:
    """The decision for one graph and its execution: types, homes, requirements, casts, constants."""

    def __init__(self, model: onnx.ModelProto, io: int, keep: frozenset[str],
                 measure_ops: frozenset[str] = frozenset()):
        self.model, self.io, self.g = model, io, model.graph
        self.types = elem_types(model)
        opsets = _opsets(model)
        init_names = {t.name for t in self.g.initializer}
        self.graph_inputs = {i.name for i in self.g.input}
        self.constants = {n for n in init_names - self.graph_inputs if self.types.get(n) == FLOAT}
        self.producer: dict[str, int] = {o: k for k, n in enumerate(self.g.node) for o in n.output if o}
        self.slots = [_slots(n, self.types, opsets) for n in self.g.node]
        # float nodes (with convertible slots, or float nodes that cannot be fp16) get a decision
        self.float_nodes = [k for k, (n, s) in enumerate(zip(self.g.node, self.slots))
                            if n.op_type not in _ANY_TYPE_INPUT and (s.convertible or s.no_fp16)]
        view_of = {k: v for v, k in enumerate(self.float_nodes)}
        read = {t for n in self.g.node for t in n.input} | {o.name for o in self.g.output}
        outputs = {o.name for o in self.g.output}
        views = []
        for k in self.float_nodes:
            n, s = self.g.node[k], self.slots[k]
            prods = tuple(view_of.get(self.producer[t]) if t in self.producer else None
                          for t, conv in zip(n.input, s.inputs) if conv and t not in self.constants)
            float_outs = sum(1 for t, conv in zip(n.output, s.outputs) if conv and t in read)
            domain = "" if n.domain == "ai.onnx" else n.domain
            c = COORDINATE_INPUTS.get(n.op_type) if not domain else None
            coords = view_of.get(self.producer.get(n.input[c], -1)) if c is not None and c < len(n.input) else None
            views.append(NodeView(n.name, n.op_type, domain, prods, s.no_fp16, float_outs,
                                  any(t in outputs for t in n.output), coords))
        decisions = decide(views, keep, measure_ops)
        self.fp16 = {k for k, d in zip(self.float_nodes, decisions) if d.precision == FP16}
        self.kept = [KeptNode(self.g.node[k].name, self.g.node[k].op_type, d.reason)
                     for k, d in zip(self.float_nodes, decisions) if d.precision != FP16]

    def _home(self, tensor: str) -> int:
        """The dtype a non-constant float tensor is produced in."""
        if tensor in self.producer:
            k = self.producer[tensor]
            if k in self.fp16:
                n = self.g.node[k]
                return FLOAT16 if self.slots[k].outputs[list(n.output).index(tensor)] else FLOAT
            return FLOAT
        return self.io if tensor in self.graph_inputs else FLOAT

    def _need(self, k: int, i: int) -> int | None:
        """The dtype node k wants on input i; None where it reads any type."""
        n, s = self.g.node[k], self.slots[k]
        if n.op_type in _ANY_TYPE_INPUT:
            return None
        return FLOAT16 if (k in self.fp16 and s.inputs[i]) else FLOAT

    def apply(self, io_dtype: str) -> Fp16Conversion:
        g = self.g
        is_float = {t for t, ty in self.types.items() if ty == FLOAT}
        # every (tensor, dtype) read: (node index or -1 for a graph output, input index)
        reads: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
        for k, n in enumerate(g.node):
            for i, t in enumerate(n.input):
                if t in is_float:
                    need = self._need(k, i)
                    reads[(t, need if need is not None else self._home_or_const(t))].append((k, i))
        for j, o in enumerate(g.output):
            if o.name in is_float:
                reads[(o.name, self.io)].append((-1, j))
        home = {t: self._home(t) for t in is_float if t not in self.constants}
        info = Fp16Conversion(io_dtype, len(g.node), len(self.fp16), self.kept,
                              fp16_node_names=[g.node[k].name for k in sorted(self.fp16)])
        info.retargeted_casts = self._retarget_casts(reads, home)
        const_ref = self._convert_constants(reads, info)
        after: dict[int, list[onnx.NodeProto]] = defaultdict(list)  # casts placed after node k (-1: first)
        renamed: dict[str, str] = {}
        ref: dict[tuple[str, int], str] = {}
        taken = {t for n in g.node for t in (*n.input, *n.output)} | self.graph_inputs | {t.name for t in g.initializer}

        fresh = unique_namer(taken)

        output_names = {o.name for o in g.output}
        # (source, dtype) -> a tensor that already holds that cast (retargeted Casts, Casts made here)
        cast_of = {(n.input[0], a.i): n.output[0] for n in g.node if n.op_type == "Cast" and not n.domain
                   for a in n.attribute if a.name == "to" and a.i in (FLOAT, FLOAT16)}
        for (t, need), users in reads.items():
            if t in self.constants:
                ref[(t, need)] = const_ref[(t, need)]
                continue
            if need == home[t]:
                continue
            src, place = t, self.producer.get(t, -1)
            graph_out = t in output_names and any(k == -1 for k, _ in users)
            if place >= 0 and g.node[place].op_type == "Cast" and not g.node[place].domain:
                src = g.node[place].input[0]  # re-cast the Cast's input: no Cast->Cast chain
                if not graph_out and src not in self.constants and self.types.get(src) == FLOAT \
                        and self._home(src) == need:
                    ref[(t, need)] = src  # the Cast's input already has the wanted dtype
                    continue
            if not graph_out and src != t and (src, need) in cast_of:
                ref[(t, need)] = cast_of[(src, need)]  # that Cast exists already
                continue
            if graph_out:  # the graph output keeps its name: the producer's tensor gets a new one
                inner = fresh(f"{t}__{_DTYPE_NAME[home[t]]}")
                renamed[t] = inner
                out_name = t
                if src == t:
                    src = inner
            else:
                out_name = fresh(f"{t}__{_DTYPE_NAME[need]}")
            after[place].append(helper.make_node("Cast", [src], [out_name], name=fresh(f"{out_name}_cast"), to=need))
            ref[(t, need)] = out_name
            cast_of.setdefault((src, need), out_name)
            consumers = sum(1 for k, _ in users if k >= 0) + int(graph_out)
            info.casts.append(CastInfo(t, _DTYPE_NAME[need], out_name, consumers))
        self._rewire(reads, ref, renamed)
        nodes = list(after[-1])
        for k, n in enumerate(g.node):
            nodes.append(n)
            nodes.extend(after[k])
        del g.node[:]
        g.node.extend(nodes)
        self._set_io_types()
        self._retype_value_info(home, renamed)
        return info

    def _retype_value_info(self, home: dict[str, int], renamed: dict[str, str]) -> None:
        """Declared tensor types follow the conversion (kept, not dropped: a plugin node's outputs are typed
        only by them, its schema has no inference function)."""
        inits = {t.name: t.data_type for t in self.g.initializer}
        for v in self.g.value_info:
            tt = v.type.tensor_type
            if tt.elem_type != FLOAT:
                continue
            if v.name in inits:
                tt.elem_type = inits[v.name]
            elif v.name in home:
                tt.elem_type = home[v.name]
                v.name = renamed.get(v.name, v.name)

    def _home_or_const(self, t: str) -> int:
        return FLOAT if t in self.constants else self._home(t)

    def _retarget_casts(self, reads: dict, home: dict[str, int]) -> list[str]:
        """An existing Cast-to-float read only in fp16 casts to fp16 instead (no extra Cast after it)."""
        retargeted: list[str] = []
        wants: dict[str, set[int]] = defaultdict(set)
        for (t, need) in reads:
            wants[t].add(need)
        for k, n in enumerate(self.g.node):
            if n.op_type != "Cast" or n.domain or not n.output or n.output[0] not in home:
                continue
            t = n.output[0]
            if wants.get(t) == {FLOAT16}:
                for a in n.attribute:
                    if a.name == "to":
                        a.i = FLOAT16
                home[t] = FLOAT16
                self.fp16.add(k)
                self.slots[k].outputs[0] = True
                retargeted.append(n.name)
        return retargeted

    def _convert_constants(self, reads: dict, info: Fp16Conversion) -> dict[tuple[str, int], str]:
        """fp16 constants, converted offline: in place when nobody reads the fp32 one, else an fp16 twin."""
        wants: dict[str, set[int]] = defaultdict(set)
        for (t, need) in reads:
            if t in self.constants:
                wants[t].add(need)
        by_name = {t.name: t for t in self.g.initializer}
        out: dict[tuple[str, int], str] = {}
        taken = {t.name for t in self.g.initializer} | {o for n in self.g.node for o in n.output}
        for name, needs in wants.items():
            out[(name, FLOAT)] = name
            if FLOAT16 not in needs:
                continue
            arr = numpy_helper.to_array(by_name[name], base_dir="")
            a16, clamped, under = fp16_array(arr)
            if clamped or under:
                info.clamped.append(ClampInfo(name, clamped, under, float(np.abs(arr[np.isfinite(arr)]).max())))
                info.clamped_values += clamped
                info.underflowed_values += under
            if needs == {FLOAT16}:
                by_name[name].CopyFrom(numpy_helper.from_array(a16, name))
                out[(name, FLOAT16)] = name
            else:
                twin = f"{name}__fp16"
                while twin in taken:
                    twin += "_"
                taken.add(twin)
                self.g.initializer.append(numpy_helper.from_array(a16, twin))
                out[(name, FLOAT16)] = twin
        return out

    def _rewire(self, reads: dict, ref: dict, renamed: dict[str, str]) -> None:
        g = self.g
        for n in g.node:
            for j, o in enumerate(n.output):
                if o in renamed:
                    n.output[j] = renamed[o]
        for (t, need), users in reads.items():
            name = ref.get((t, need))
            if name is None:  # read in its home dtype
                name = renamed.get(t, t)
            for k, i in users:
                if k >= 0:
                    g.node[k].input[i] = name

    def _set_io_types(self) -> None:
        for v in self.g.input:
            if v.type.tensor_type.elem_type == FLOAT and v.name not in self.constants:
                v.type.tensor_type.elem_type = self.io
        for v in self.g.output:
            if v.type.tensor_type.elem_type == FLOAT:
                v.type.tensor_type.elem_type = self.io


