"""The index limits our DCN kernels assume, checked against the profile's MAX shapes before any TensorRT call.

The kernels (plugins_cpp/kernels) refuse out-of-range shapes in `valid()` / at launch, which TensorRT only
reaches at enqueue: a build that succeeds and an engine that fails on the first large image. The limits,
each read from the code that assumes it:

- every plugin input dim fits an int (plugin_base.cpp `checkAll`, `firstDimOverInt`);
- DeployconvDeformConv2d: H*W of x fits an int (deform_conv.cu `valid()`: corner offsets in a plane are ints);
  its grid is ceil(N*Ho*Wo / 64) x group*ceil(Cout/group / 64) blocks, within CUDA's 2^31-1 x 65535;
- DeployconvDCNv4: ceil(N*Ho*Wo*C / vec / threads) blocks within 2^31-1 (dcnv4.cu `dcnv4_launch_config`);
  the bound uses vec = 1 (an unaligned tensor) and 256 threads (the count at any size near the limit).

The pure part (`DcnNode`, `overflows`, `refusal`) works on concrete shapes at the profile max; since every
conv/pool output grows with its input, the max input shapes give each node's largest index space.
`read_dcn_nodes` gets those shapes from the ONNX file (onnx shape inference with the inputs pinned to the
max, our plugins' output shapes filled in between passes). Only our plugins are checked: a standard ONNX
DeformConv runs TensorRT's own layer, whose limits are TensorRT's.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployconv.core.errors import BadInputError
from deployconv.engine.onnx_facts import OnnxFacts
from deployconv.engine.profiles import Profile

INT_MAX = 2**31 - 1
GRID_X_MAX = 2**31 - 1
GRID_YZ_MAX = 65535
DEFORM_CONV = "DeployconvDeformConv2d"
DCNV4 = "DeployconvDCNv4"
DCN_OPS = (DEFORM_CONV, DCNV4)
DEFORM_TILE = 64  # deform_conv.cu BM = BN = 64: output channels / pixels per block
DCNV4_THREADS = 256


@dataclass(frozen=True)
class DcnNode:
    """One DCN plugin node's shapes at the profile max. DeformConv2d: x (N, C, H, W), out (N, Cout, Ho, Wo);
    DCNv4: x = value (N, H, W, C), out (N, Ho, Wo, C). None: shape inference could not tell."""

    name: str
    op_type: str
    x_shape: tuple[int, ...] | None
    out_shape: tuple[int, ...] | None
    group: int = 1


@dataclass(frozen=True)
class Overflow:
    node: str
    op_type: str
    quantity: str  # what overflows, in the kernel's terms ("H*W of x")
    product: int
    limit: int

    def line(self) -> str:
        return f"{self.node} ({self.op_type}): {self.quantity} = {self.product:,} > {self.limit:,}"


def overflows(nodes: Sequence[DcnNode]) -> tuple[Overflow, ...]:
    """Every limit each node breaks at its max shapes (none for nodes with unknown shapes)."""
    out: list[Overflow] = []
    for n in nodes:
        if n.x_shape is None or n.out_shape is None or len(n.x_shape) != 4 or len(n.out_shape) != 4:
            continue

        def over(quantity: str, product: int, limit: int, n: DcnNode = n) -> None:
            if product > limit:
                out.append(Overflow(n.name, n.op_type, quantity, product, limit))

        for label, shape in (("x", n.x_shape), ("output", n.out_shape)):
            for axis, d in enumerate(shape):
                over(f"{label} dim {axis}", d, INT_MAX)
        if n.op_type == DEFORM_CONV:
            batch, _, h, w = n.x_shape
            _, cout, ho, wo = n.out_shape
            over(f"H*W of x ({h}x{w})", h * w, INT_MAX)
            over(f"grid x blocks ceil(N*Ho*Wo/{DEFORM_TILE}) ({batch}x{ho}x{wo})",
                 math.ceil(batch * ho * wo / DEFORM_TILE), GRID_X_MAX)
            over(f"grid y blocks group*ceil(Cout/group/{DEFORM_TILE}) ({n.group} x {cout // max(n.group, 1)})",
                 n.group * math.ceil(cout // max(n.group, 1) / DEFORM_TILE), GRID_YZ_MAX)
        elif n.op_type == DCNV4:
            batch, ho, wo, c = n.out_shape
            over(f"grid blocks ceil(N*Ho*Wo*C/{DCNV4_THREADS}) ({batch}x{ho}x{wo}x{c})",
                 math.ceil(batch * ho * wo * c / DCNV4_THREADS), GRID_X_MAX)
    return tuple(out)


def refusal(found: Sequence[Overflow], profile: Profile) -> BadInputError:
    maxes = ", ".join(f"{r.name}={'x'.join(map(str, r.max))}" for r in profile.inputs)
    return BadInputError(
        f"{len(found)} DCN index limit(s) broken at the profile's max shapes ({maxes})",
        details=[o.line() for o in found],
        why="the DCN kernels index with 32-bit ints and launch within CUDA's grid limits; TensorRT would build "
            "the engine and the plugin would refuse it at enqueue, on the first input this large",
        fix="lower the max H/W (or batch) of the profile (--dim H=min..opt..MAX), or tile the image")


def max_shapes(profile: Profile) -> dict[str, tuple[int, ...]]:
    """Each profiled input's MAX shape (symbolic dims resolved by the profile)."""
    return {r.name: tuple(r.max) for r in profile.inputs}


def check_op_limits(facts: OnnxFacts, profile: Profile) -> list[str]:
    """Refuse (BadInputError, exit 2) a profile whose max shapes overflow a DCN plugin node's index space.
    A graph without DCN plugin nodes is not read at all. Returns notes for the plan."""
    return check_profiles(facts, (profile,))


def check_profiles(facts: OnnxFacts, profiles: Sequence[Profile]) -> list[str]:
    """check_op_limits at every profile's max, reading the ONNX once (notes prefixed "profile i:" when several)."""
    count = sum(n for op, n in facts.plugin_counts().items() if op in DCN_OPS)
    if not count or not profiles:
        return []
    if facts.path is None or not Path(facts.path).is_file():  # facts of an in-memory graph (a bundle's lines)
        return [f"{count} DCN plugin node(s): index limits not checked here (no ONNX file to read); "
                "`deployconv build-engine` checks them before building"]
    model = load_for_shapes(facts.path)
    notes = []
    for i, profile in enumerate(profiles):
        nodes = read_dcn_nodes(model, max_shapes(profile))
        found = overflows(nodes)
        if found:
            raise refusal(found, profile)
        unknown = [n.name for n in nodes if n.x_shape is None or n.out_shape is None]
        note = f"DCN index limits hold at the profile max for {len(nodes) - len(unknown)} node(s)"
        note += f"; shapes unknown, not checked: {', '.join(unknown)}" if unknown else ""
        notes.append(note if len(profiles) == 1 else f"profile {i}: {note}")
    return notes


# --- reading the shapes (onnx, lazily) -------------------------------------------------------------------


def _conv_out(size: int, k: int, stride: int, pad_total: int, dil: int) -> int:
    return max((size + pad_total - dil * (k - 1) - 1) // stride + 1, 0)


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def plugin_out_shape(op_type: str, attrs: Mapping[str, Any], x: Sequence[int],
                     weight: Sequence[int] | None) -> tuple[int, ...] | None:
    """The plugin's output shape from its input shapes and attributes (as its getOutputShapes computes it)."""
    strides = list(attrs.get("strides", (1, 1)))
    pads = list(attrs.get("pads", (0, 0, 0, 0)))
    dil = list(attrs.get("dilations", (1, 1)))
    if op_type == DEFORM_CONV:
        if weight is None or len(weight) != 4:
            return None
        kh, kw = weight[2], weight[3]
        ho = _conv_out(x[2], kh, strides[0], pads[0] + pads[2], dil[0])
        wo = _conv_out(x[3], kw, strides[1], pads[1] + pads[3], dil[1])
        return (x[0], weight[0], ho, wo)
    kh, kw = list(attrs.get("kernel_shape", (3, 3)))
    ho = _conv_out(x[1], kh, strides[0], pads[0] + pads[2], dil[0])
    wo = _conv_out(x[2], kw, strides[1], pads[1] + pads[3], dil[1])
    return (x[0], ho, wo, x[3])


def load_for_shapes(path: str) -> Any:
    """The ONNX at `path`, for shape inference only: large weights become typed inputs (inference stays fast,
    memory small); small ones (Reshape targets, pads) stay, since inference reads their values."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    for t in list(graph.initializer):
        if math.prod(t.dims) > 64:
            graph.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
            graph.initializer.remove(t)
    return model


def read_dcn_nodes(source: Any, shapes: Mapping[str, Sequence[int]]) -> tuple[DcnNode, ...]:
    """DCN plugin nodes of an ONNX (a path, or a model from load_for_shapes, left untouched) with their shapes when
    the graph inputs take `shapes`."""
    import onnx

    model = load_for_shapes(source) if isinstance(source, (str, Path)) else copy.deepcopy(source)
    graph = model.graph
    for v in graph.input:
        if v.name in shapes:
            dims = v.type.tensor_type.shape.dim
            for d, size in zip(dims, shapes[v.name]):
                d.Clear()
                d.dim_value = int(size)
    del graph.value_info[:]  # exporter shapes carry the symbolic dims; the pinned ones replace them
    dcn = [n for n in graph.node if n.op_type in DCN_OPS]
    known: dict[str, tuple[int, ...]] = {}
    filled: dict[str, tuple[int, ...]] = {}
    for _ in range(len(dcn) + 1):
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
        except Exception:  # onnx's InferenceError and friends on an odd graph: what is known so far stands
            break  # (nodes left unknown are named in the plan's notes as not checked)
        known = {}
        for v in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
            dims = v.type.tensor_type.shape.dim
            if v.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
                known[v.name] = tuple(d.dim_value for d in dims)
        known.update(filled)
        added = False
        for n in dcn:
            if n.output[0] in known or n.input[0] not in known:
                continue
            weight = known.get(n.input[1]) if len(n.input) > 1 else None
            out = plugin_out_shape(n.op_type, _attrs(n), known[n.input[0]], weight)
            if out is not None:
                filled[n.output[0]] = out
                graph.value_info.append(onnx.helper.make_tensor_value_info(n.output[0], onnx.TensorProto.FLOAT, out))
                added = True
        if not added:
            break
    known.update(filled)
    return tuple(DcnNode(n.name or n.output[0], n.op_type, known.get(n.input[0]), known.get(n.output[0]),
                         int(_attrs(n).get("group", 1))) for n in dcn)
