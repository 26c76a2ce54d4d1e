"""Small, pure helpers over ONNX graphs that the int8 modules share: who produces and who reads a tensor,
which input of a weighted op is its weight and along which axis its output channels lie, and the few
rewrites the Q/DQ passes need (restore a node's float inputs, drop Q/DQ pairs nobody reads, keep graph
outputs float). No runtime here: onnx protos in, onnx protos out.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import onnx
from onnx import NodeProto, TensorProto

WEIGHTED = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})
QUANTIZE, DEQUANTIZE = "QuantizeLinear", "DequantizeLinear"
QDQ = frozenset({QUANTIZE, DEQUANTIZE})


@dataclass
class GraphIndex:
    """Producer and consumers of every tensor, the initializers and the graph outputs of one graph."""

    producer: dict[str, NodeProto]
    consumers: dict[str, list[tuple[NodeProto, int]]]
    initializers: dict[str, TensorProto]
    constants: set[str]  # initializers and outputs of Constant nodes
    graph_outputs: set[str]
    nodes: dict[str, NodeProto]

    @classmethod
    def of(cls, proto: onnx.ModelProto) -> GraphIndex:
        g = proto.graph
        producer: dict[str, NodeProto] = {}
        consumers: dict[str, list[tuple[NodeProto, int]]] = {}
        for node in g.node:
            for out in node.output:
                producer[out] = node
            for i, name in enumerate(node.input):
                if name:
                    consumers.setdefault(name, []).append((node, i))
        inits = {t.name: t for t in g.initializer}
        constants = set(inits) | {n.output[0] for n in g.node if n.op_type == "Constant"}
        return cls(producer, consumers, inits, constants, {o.name for o in g.output},
                   {n.name: n for n in g.node})

    def is_constant(self, name: str) -> bool:
        return name in self.constants

    def readers(self, name: str) -> list[tuple[NodeProto, int]]:
        return self.consumers.get(name, [])


def weight_input(node: NodeProto, idx: GraphIndex) -> int | None:
    """Index of the weight input of a weighted op (a constant operand), or None when it has none (a MatMul
    of two activations, a Conv with a computed kernel)."""
    if node.op_type in ("Conv", "ConvTranspose", "Gemm"):
        return 1 if len(node.input) > 1 and idx.is_constant(node.input[1]) else None
    if node.op_type == "MatMul":
        for i in (1, 0):
            if idx.is_constant(node.input[i]):
                return i
    return None


def activation_inputs(node: NodeProto, idx: GraphIndex) -> list[int]:
    """Indices of the non-constant inputs a weighted op multiplies (the bias of Conv/Gemm is not one)."""
    operands = (0, 1) if node.op_type in ("MatMul", "Gemm", "Conv", "ConvTranspose") else (0,)
    return [i for i in operands if i < len(node.input) and node.input[i] and not idx.is_constant(node.input[i])]


def _attr(node: NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default


def output_channel_axis(node: NodeProto, weight_index: int, weight_rank: int) -> int:
    """The axis of the weight that indexes output channels, i.e. the per-channel quantization axis:
    Conv (O, I/g, kh, kw) -> 0; ConvTranspose (I, O/g, kh, kw) -> 1; Gemm B (K, N) -> 1, transposed
    (N, K) -> 0; MatMul constant B (.., K, N) -> last; constant A (M, K) of A@X -> 0 (its rows)."""
    op = node.op_type
    if op == "Conv":
        return 0
    if op == "ConvTranspose":
        return 1
    if op == "Gemm":
        return 0 if _attr(node, "transB", 0) else 1
    if op == "MatMul":
        return weight_rank - 1 if weight_index == 1 else max(weight_rank - 2, 0)
    raise ValueError(f"{op} is not a weighted op")


def name_nodes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose nodes all have unique names (ONNX Runtime's quantizer selects nodes by name)."""
    out = copy.deepcopy(proto)
    seen: set[str] = set()
    for i, node in enumerate(out.graph.node):
        if not node.name or node.name in seen:
            base = node.name or f"{node.op_type}_{i}"
            name, k = base, 0
            while name in seen:
                k += 1
                name = f"{base}_{k}"
            node.name = name
        seen.add(node.name)
    return out


def float_source(name: str, idx: GraphIndex) -> str:
    """The float tensor behind `name`: through DequantizeLinear <- QuantizeLinear to what was quantized."""
    dq = idx.producer.get(name)
    if dq is not None and dq.op_type == DEQUANTIZE:
        q = idx.producer.get(dq.input[0])
        if q is not None and q.op_type == QUANTIZE:
            return q.input[0]
    return name


def prune_dead_qdq(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Drop Q/DQ nodes whose outputs nobody reads (repeat until none is left) and initializers nobody
    reads. In place; returns `proto`."""
    g = proto.graph
    while True:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        dead = [n for n in g.node if n.op_type in QDQ and not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    for t in [t for t in g.initializer if t.name not in used]:
        g.initializer.remove(t)
    return proto


def restore_float_inputs(qproto: onnx.ModelProto, fp32: onnx.ModelProto, names: Iterable[str]) -> onnx.ModelProto:
    """A copy of the quantized graph in which the named nodes read the same inputs as in the fp32 graph
    again (their Q/DQ and quantized weights are bypassed; original fp32 weights come back), i.e. those
    nodes run in float. Nodes the quantizer renamed or removed are skipped."""
    out = copy.deepcopy(qproto)
    f_nodes = {n.name: n for n in fp32.graph.node}
    f_inits = {t.name: t for t in fp32.graph.initializer}
    q_nodes = {n.name: n for n in out.graph.node}
    have = {t.name for t in out.graph.initializer}
    graph_inputs = {i.name for i in out.graph.input}
    # who makes each tensor, in both graphs: a tensor name is restored only where the same node still makes
    # it (ONNX Runtime folds a Relu into the Q before it by giving the Relu's output name to the conv: the
    # float tensor of that name would then lack the Relu)
    f_maker = {o: n.name for n in fp32.graph.node for o in n.output}
    q_maker = {o: n.name for n in out.graph.node for o in n.output}
    for name in names:
        qn, fn = q_nodes.get(name), f_nodes.get(name)
        if qn is None or fn is None or len(qn.input) != len(fn.input):
            continue
        for i, src in enumerate(fn.input):
            if not src:
                continue
            if src in f_inits:
                # ORT names a quantized bias's DQ output after the float bias: restore under another name
                target = src if src not in q_maker else f"{src}_float"
                if target not in have:
                    t = copy.deepcopy(f_inits[src])
                    t.name = target
                    out.graph.initializer.append(t)
                    have.add(target)
                qn.input[i] = target
            elif src in graph_inputs or (src in q_maker and q_maker[src] == f_maker.get(src)):
                qn.input[i] = src
    return prune_dead_qdq(out)


def keep_outputs_float(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Remove a Q -> DQ pair that sits right before a graph output, so the model's outputs are the float
    values its last op computed, not a rounding of them. In place; returns `proto`."""
    g = proto.graph
    idx = GraphIndex.of(proto)
    for out in list(idx.graph_outputs):
        dq = idx.producer.get(out)
        if dq is None or dq.op_type != DEQUANTIZE:
            continue
        q = idx.producer.get(dq.input[0])
        if q is None or q.op_type != QUANTIZE or len(idx.readers(q.output[0])) != 1:
            continue
        src = q.input[0]
        maker = idx.producer.get(src)
        if maker is None or src in idx.graph_outputs:
            continue
        for node in g.node:  # the float tensor takes the output's name; its other readers follow
            for i, name in enumerate(node.input):
                if name == src:
                    node.input[i] = out
        maker.output[list(maker.output).index(src)] = out
        g.node.remove(dq)
        g.node.remove(q)
    return prune_dead_qdq(proto)
