"""fp16 arithmetic inside the ops where it matters, for the emulation twin: an fp32-graph subgraph that
computes what a reduction marked fp16 computes with an fp16 accumulator.

Why: rounding only op outputs (fp16_emulate's Cast pairs) treats an fp16 ReduceMean like an fp32 one whose
result is stored in fp16; on a long axis (a 56x56 GlobalAveragePool sums 3,136 values) an fp16 accumulator
loses the low bits of every partial sum, which is the error that decides whether the op may be fp16.

How: the reduced axes are moved last and flattened (length L), zero-padded to a power of two, and summed
pairwise, level by level — Reshape (..., P/2, 2) -> ReduceSum over the pair -> Cast fp16 -> Cast fp32 — so
every addition is one fp16 addition, correctly rounded (the fp32 sum of two fp16 values rounded again to
fp16 equals the fp16 sum: fp32's 24 bits >= 2 x 11 + 2, no double-rounding error). Pairwise is the order a
GPU's tree reduction uses; it is kinder than a sequential sum, so the emulation errs on the optimistic side of
a naive fp16 loop and on the pessimistic side of a kernel that accumulates in fp32 internally.

Modelled (input fp16 in the mixed graph): ReduceSum, ReduceMean, ReduceSumSquare, ReduceL2,
GlobalAveragePool, Softmax (max-subtracted exp, fp16 sum, fp16 divide), LayerNormalization (fp16 mean,
variance, normalisation). Not modelled, and reported as such: reductions whose reduced extent is not static,
graphs below opset 13, and the accumulation inside Conv/MatMul/Gemm (large kernels included): TensorRT's fp16
GEMM and convolution kernels accumulate in fp32 on tensor cores, which the output rounding already models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16
REDUCTIONS = frozenset({"ReduceSum", "ReduceMean", "ReduceSumSquare", "ReduceL2", "GlobalAveragePool"})
MODELLED = REDUCTIONS | {"Softmax", "LayerNormalization"}
NOT_MODELLED_GEMM = ("Conv/ConvTranspose/MatMul/Gemm accumulate in fp32 in TensorRT's fp16 kernels: only their "
                     "output is rounded (large-kernel accumulation not modelled)")


@dataclass
class Builder:
    """Collects nodes and constants for one rewritten op."""

    fresh: Callable[[str], str]
    nodes: list[onnx.NodeProto]
    inits: list[onnx.TensorProto]

    def const(self, base: str, value: np.ndarray) -> str:
        name = self.fresh(base)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], base: str, out: str | None = None, **attrs) -> str:
        out = out or self.fresh(base)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=self.fresh(f"{base}__{op_type}"),
                                           **attrs))
        return out

    def round16(self, x: str, base: str, out: str | None = None) -> str:
        half = self.op("Cast", [x], f"{base}__h", to=FLOAT16)
        return self.op("Cast", [half], f"{base}__r", out=out, to=FLOAT)


def tree_sum(b: Builder, x: str, shape: Sequence[int | None], axes: Sequence[int], keepdims: bool,
             base: str) -> str:
    """Sum of `x` over `axes` with one fp16 rounding per pairwise addition; the result keeps fp16 values."""
    rank = len(shape)
    keep = [a for a in range(rank) if a not in axes]
    length = math.prod(int(shape[a]) for a in axes)  # type: ignore[arg-type]
    perm = keep + list(axes)
    if perm != list(range(rank)):
        x = b.op("Transpose", [x], f"{base}__t", perm=perm)
    nk = len(keep)
    x = b.op("Reshape", [x, b.const(f"{base}__flat", np.array([0] * nk + [-1], np.int64))], f"{base}__flat")
    width = 1 << max(0, (length - 1).bit_length())
    if width > length:
        pads = np.array([0] * (nk + 1) + [0] * nk + [width - length], np.int64)
        x = b.op("Pad", [x, b.const(f"{base}__pads", pads)], f"{base}__pad")
    last = b.const(f"{base}__last", np.array([-1], np.int64))
    while width > 1:
        width //= 2
        pairs = b.op("Reshape", [x, b.const(f"{base}__pairs", np.array([0] * nk + [width, 2], np.int64))],
                     f"{base}__pairs")
        x = b.round16(b.op("ReduceSum", [pairs, last], f"{base}__add", keepdims=0), f"{base}__add")
    x = b.op("Squeeze", [x, last], f"{base}__sq")
    if keepdims:
        x = b.op("Unsqueeze", [x, b.const(f"{base}__ax", np.array(sorted(axes), np.int64))], f"{base}__unsq")
    return x


def _axes(node: onnx.NodeProto, rank: int, consts: dict[str, np.ndarray]) -> list[int] | None:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "GlobalAveragePool":
        return list(range(2, rank))
    if "axes" in attrs:
        raw = list(attrs["axes"])
    elif len(node.input) > 1 and node.input[1]:
        if node.input[1] not in consts:
            return None
        raw = [int(v) for v in np.asarray(consts[node.input[1]]).ravel()]
    else:
        raw = [] if attrs.get("noop_with_empty_axes", 0) else list(range(rank))
    if not raw:
        return None
    return sorted({a % rank for a in raw})


def rewrite(node: onnx.NodeProto, shape: Sequence[int | None] | None, consts: dict[str, np.ndarray],
            fresh: Callable[[str], str], opset: int) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]] | str:
    """Nodes computing `node`'s output with fp16 arithmetic inside, or the reason it cannot be modelled."""
    if opset < 13:
        return f"opset {opset} < 13"
    if shape is None:
        return "input shape unknown"
    b = Builder(fresh, [], [])
    rank = len(shape)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    out, x, base = node.output[0], node.input[0], node.output[0]
    if node.op_type in REDUCTIONS:
        axes = _axes(node, rank, consts)
        if axes is None:
            return "reduced axes not constant"
        if any(shape[a] is None for a in axes):
            return "reduced extent not static"
        keepdims = bool(attrs.get("keepdims", 1)) or node.op_type == "GlobalAveragePool"
        if node.op_type in ("ReduceSumSquare", "ReduceL2"):
            x = b.round16(b.op("Mul", [x, x], f"{base}__sq2"), f"{base}__sq2")
        s = tree_sum(b, x, shape, axes, keepdims, base)
        length = math.prod(int(shape[a]) for a in axes)  # type: ignore[arg-type]
        if node.op_type in ("ReduceMean", "GlobalAveragePool"):
            s = b.op("Div", [s, b.const(f"{base}__n", np.array(length, np.float32))], f"{base}__mean")
        elif node.op_type == "ReduceL2":
            s = b.op("Sqrt", [s], f"{base}__l2")
        else:
            b.op("Identity", [s], base, out=out)
            return b.nodes, b.inits
        b.round16(s, base, out=out)
        return b.nodes, b.inits
    if node.op_type == "Softmax":
        axis = int(attrs.get("axis", -1)) % rank
        if shape[axis] is None:
            return "softmax extent not static"
        ax = b.const(f"{base}__axis", np.array([axis], np.int64))
        m = b.op("ReduceMax", [x, ax], f"{base}__max", keepdims=1)
        e = b.round16(b.op("Exp", [b.round16(b.op("Sub", [x, m], f"{base}__d"), f"{base}__d")], f"{base}__e"),
                      f"{base}__e")
        s = tree_sum(b, e, shape, [axis], True, base)
        b.round16(b.op("Div", [e, s], f"{base}__div"), base, out=out)
        return b.nodes, b.inits
    if node.op_type == "LayerNormalization":
        if len([o for o in node.output if o]) > 1:
            return "LayerNormalization's mean/inv-std outputs are read"
        first = int(attrs.get("axis", -1)) % rank
        axes = list(range(first, rank))
        if any(shape[a] is None for a in axes):
            return "normalised extent not static"
        n = b.const(f"{base}__n", np.array(math.prod(int(shape[a]) for a in axes), np.float32))  # type: ignore[arg-type]
        mean = b.round16(b.op("Div", [tree_sum(b, x, shape, axes, True, f"{base}__m"), n], f"{base}__mean"),
                         f"{base}__mean")
        d = b.round16(b.op("Sub", [x, mean], f"{base}__d"), f"{base}__d")
        sq = b.round16(b.op("Mul", [d, d], f"{base}__sq"), f"{base}__sq")
        var = b.round16(b.op("Div", [tree_sum(b, sq, shape, axes, True, f"{base}__v"), n], f"{base}__var"),
                        f"{base}__var")
        eps = b.const(f"{base}__eps", np.array(attrs.get("epsilon", 1e-5), np.float32))
        std = b.round16(b.op("Sqrt", [b.round16(b.op("Add", [var, eps], f"{base}__ve"), f"{base}__ve")],
                             f"{base}__std"), f"{base}__std")
        y = b.round16(b.op("Div", [d, std], f"{base}__norm"), f"{base}__norm")
        y = b.round16(b.op("Mul", [y, node.input[1]], f"{base}__scale"), f"{base}__scale")
        if len(node.input) > 2 and node.input[2]:
            y = b.op("Add", [y, node.input[2]], f"{base}__bias")
        b.round16(y, base, out=out)
        return b.nodes, b.inits
    return f"{node.op_type} is not modelled"
