"""Which nodes of an fp32 graph run in fp16 and which stay fp32, and why. Pure: no ONNX, no runtime.

The rule, in order (the first that matches decides):
1. named in `keep_fp32_nodes` -> fp32 ("requested").
2. numerically sensitive op types -> fp32:
   - normalisations (Batch/Instance/Group/Layer/RMS/Lp/MeanVariance normalization, LRN): the variance is a
     sum of squares that overflows or loses its small terms in fp16;
   - Softmax/LogSoftmax: exp of logits and a normalising sum;
   - accumulating reductions (ReduceMean/Sum/SumSquare/L1/L2/LogSum/LogSumExp/Prod, GlobalAveragePool,
     GlobalLpPool, LpPool, CumSum): a long fp16 sum loses low bits (ReduceMax/Min, MaxPool do not accumulate
     and stay fp16);
   - Exp, Pow, Log, Erf: range (exp overflows above ~11, x^2 above 256) or slope-sensitive;
   - sampling (DeformConv, GridSample, RoiAlign): sampling coordinates need fp32 — TensorRT's built-in
     ModulatedDeformConv2d plugin computes them in half precision (see facts/ops.md), and ONNX Runtime CPU
     has no fp16 kernel for them either (it casts to fp32 and back). The elementwise/data-movement nodes
     that compute their coordinate input stay fp32 as well, back to the GEMM or Conv that predicts the
     offsets (which stays fp16);
   - custom-domain ops without a declared fp16 kernel (fp16.py: no schema, or no float16 in it): nothing
     is known about their numerics. deployconv's own plugins declare their dtypes in plugins/table.py and
     follow them (they compute coordinates and accumulate in fp32 internally).
3. statistics arithmetic -> fp32: Sub and Div with an operand that is an fp32 statistic (a reduction's
   output, or what follows it in fp32): `x - mean` cancels, `x / norm` divides by a small number — the
   decomposed LayerNorm and GRN's `Gx / mean(Gx)`.
4. follows fp32 -> fp32: an op that is not a compute op (Conv, ConvTranspose, MatMul, Gemm, Einsum, a
   custom-domain op) whose non-constant float inputs all come from fp32 nodes stays fp32: it is cheap, and casting
   down for it would only move the boundary (GroupNorm's affine after InstanceNormalization, `mean + eps`,
   `sqrt(var)`) — unless it is read only by fp16 nodes through more outputs than it has inputs (a Split):
   then one Cast in front of it is cheaper than one per output, and it runs in fp16.
5. otherwise fp16: Conv/ConvTranspose/MatMul/Gemm, elementwise ops, activations, pooling, data movement.

Einsum is treated as the GEMM it is (TensorRT maps it onto matrix multiplies with fp32 accumulation; on ORT
CPU it runs in fp32 after ORT's own casts): its output range, the fp16 risk, is what the guard measures.
No standard lowering in the zoo emits Einsum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FP16, FP32 = "fp16", "fp32"

NORMALISATION = frozenset({
    "BatchNormalization", "InstanceNormalization", "GroupNormalization", "LayerNormalization",
    "RMSNormalization", "LpNormalization", "MeanVarianceNormalization", "LRN"})
SOFTMAX = frozenset({"Softmax", "LogSoftmax"})
REDUCTION = frozenset({
    "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
    "ReduceProd", "GlobalAveragePool", "GlobalLpPool", "LpPool", "CumSum"})
RANGE = frozenset({"Exp", "Pow", "Log", "Erf"})
SAMPLING = frozenset({"DeformConv", "GridSample", "RoiAlign"})
# which input of a sampling op holds coordinates (grid, offsets, boxes)
COORDINATE_INPUTS = {"GridSample": 1, "DeformConv": 2, "RoiAlign": 1}
COORDINATES = "rule: computes sampling coordinates"

COMPUTE = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm", "Einsum"})
STAT_ARITHMETIC = frozenset({"Sub", "Div"})
FOLLOWS = "rule: follows fp32 inputs (no cast)"

_RULES: tuple[tuple[frozenset[str], str], ...] = (
    (NORMALISATION, "rule: normalisation"),
    (SOFTMAX, "rule: softmax"),
    (REDUCTION, "rule: accumulating reduction"),
    (RANGE, "rule: exp/pow/log/erf (range)"),
    (SAMPLING, "rule: sampling coordinates need fp32"),
)


@dataclass(frozen=True)
class NodeView:
    """What the rules need to know about one node (built from the graph by fp16.py)."""

    name: str
    op_type: str
    domain: str = ""
    # producers of the node's non-constant float inputs, as indices into the node list; None = a graph input
    producers: tuple[int | None, ...] = ()
    # why the node cannot hold fp16 tensors at all (no float16 in its schema, custom op without fp16); None = it can
    no_fp16: str | None = None
    float_outputs: int = 1  # float outputs that something reads
    graph_output: bool = False  # one of its outputs is a graph output
    coordinates_from: int | None = None  # producer of its coordinate input (sampling ops only)


@dataclass(frozen=True)
class Decision:
    precision: str  # "fp16" | "fp32"
    reason: str
    statistic: bool = False  # fp32 output that is a reduction's statistic (feeds rule 3)


def decide(nodes: Sequence[NodeView], keep_fp32_nodes: frozenset[str] = frozenset(),
           measure_ops: frozenset[str] = frozenset()) -> list[Decision]:
    """One decision per node, in graph (topological) order; see the module docstring for the rule.
    `measure_ops`: op types rule 2 leaves to measurement (e.g. the reductions, now that the emulation twin
    accumulates them in fp16): they start in fp16 and the guard keeps those whose precision matters."""
    coordinates = _coordinate_nodes(nodes)
    out: list[Decision] = []
    for i, node in enumerate(nodes):
        out.append(_decide_one(node, out, keep_fp32_nodes, i in coordinates, measure_ops))
    # a follower read only by fp16 nodes through more outputs than it has inputs (a Split after GroupNorm's
    # affine) is cheaper in fp16: one Cast in front of it instead of one per output
    readers: list[list[int]] = [[] for _ in nodes]
    for j, node in enumerate(nodes):
        for p in set(node.producers):
            if p is not None:
                readers[p].append(j)
    for i in reversed(range(len(nodes))):
        node, d = nodes[i], out[i]
        if d.reason == FOLLOWS and not node.graph_output and readers[i] \
                and all(out[j].precision == FP16 for j in readers[i]) and node.float_outputs > len(node.producers):
            out[i] = Decision(FP16, "fp16")
    return out


def _coordinate_nodes(nodes: Sequence[NodeView]) -> set[int]:
    """The nodes that compute a sampling op's coordinates, back to the GEMM/Conv that predicts the offsets:
    DCNv4's lowering adds offsets to a base grid in [-1, 1] — in fp16 (steps of 2^-10 near 1) that moves
    every sample by ~W/2000 pixels, 3.6% of the output's scale on dcnv4_tiny (measured). The predicted
    offsets themselves are small numbers and keep fp16's relative precision."""
    todo = [n.coordinates_from for n in nodes if n.coordinates_from is not None]
    seen: set[int] = set()
    while todo:
        i = todo.pop()
        node = nodes[i]
        if i in seen or node.domain or node.op_type in COMPUTE:
            continue
        seen.add(i)
        todo.extend(p for p in node.producers if p is not None)
    return seen


def _decide_one(node: NodeView, earlier: list[Decision], keep: frozenset[str], coordinates: bool,
                measure_ops: frozenset[str] = frozenset()) -> Decision:
    is_reduction = node.op_type in REDUCTION and not node.domain
    if node.name in keep:
        return Decision(FP32, "requested: keep_fp32_nodes", is_reduction)
    if not node.domain and node.op_type not in measure_ops:
        for ops, reason in _RULES:
            if node.op_type in ops:
                return Decision(FP32, reason, is_reduction)
    if node.no_fp16:
        return Decision(FP32, f"rule: {node.no_fp16}")
    if coordinates:
        return Decision(FP32, COORDINATES)
    inputs = [earlier[p] for p in node.producers if p is not None]
    stats = [d for d in inputs if d.precision == FP32 and d.statistic]
    if node.op_type in STAT_ARITHMETIC and not node.domain and stats:
        return Decision(FP32, "rule: statistics arithmetic (x - mean, x / norm)", True)
    all_fp32 = bool(node.producers) and len(inputs) == len(node.producers) and \
        all(d.precision == FP32 for d in inputs)
    is_compute = bool(node.domain) or node.op_type in COMPUTE
    if all_fp32 and not is_compute:
        return Decision(FP32, FOLLOWS, bool(stats))
    return Decision(FP16, "fp16")
