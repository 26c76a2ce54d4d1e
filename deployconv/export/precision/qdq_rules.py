"""Where Q/DQ pairs go in an int8 graph, and a check that a produced graph follows the rules. Pure: onnx
protos in, node lists and violation messages out.

TensorRT 11 builds only strongly typed networks, so int8 must be explicit QuantizeLinear/DequantizeLinear
(Q/DQ) pairs in the ONNX. TensorRT then fuses each DQ into the op that reads it and each Q into the op that
writes it (NVIDIA, "Explicit Quantization" / "Q/DQ Layer-Placement Recommendations" in the TensorRT
developer guide). Its recommendations, and what follows from them here:

Profile `tensorrt` (activation "int8-symmetric"; targets onnx-int8 and the TensorRT targets):
  R1 Weighted ops run in int8: every Conv, ConvTranspose, Gemm and MatMul that is not excluded reads each
     of its multiplied inputs (activations, and the weight) through a DQ. A MatMul of two activations
     (attention) is quantized on both. Biases stay float: TensorRT takes no int32 DQ bias.
  R2 Outputs of weighted ops are not quantized: TensorRT fuses conv + bias + activation (ReLU, ...) + the
     Q that the *next* weighted op's input needs, so Conv -> Relu -> Q -> DQ -> Conv is the fused form;
     a Q straight on the conv output (Conv -> Q -> DQ -> Relu) would cut that fusion and cost a reformat.
     A conv output is quantized only where it is itself the input of a weighted op (R1).
  R3 Residual Add (skip connection): TensorRT fuses an elementwise Add into the weighted op that produces
     one of its inputs (the "main" branch), when that input comes straight from the op (or its bias Add).
     The other input (the "skip" branch) then gets a Q/DQ so the fused kernel reads it in int8; the main
     input gets none (a Q/DQ between conv and Add blocks the fusion). When both inputs come from weighted
     ops, input 0 is main and input 1 skip (as for ResNet's projection shortcut). When neither does (e.g.
     MatMul -> Transpose -> Add), no fusion is possible and the Add stays float without Q/DQ. When the
     main op is excluded (kept float), the skip Q/DQ would only add a reformat and is not placed.
  R4 No Q/DQ in front of ops TensorRT cannot run in int8 or that the rules above do not need (GELU,
     normalisations, softmax, reductions, sigmoid gates, the main input of a residual Add, ...): there it
     only adds two reformats and rounding error.
  R5 Weights: symmetric int8 in [-127, 127], zero point 0, per output channel (per-channel scales, the DQ
     axis = output-channel axis: 0 for Conv and transposed-B Gemm, 1 for ConvTranspose and Gemm B, the last
     axis for a MatMul's constant B). Activations: per tensor (one scale), symmetric int8, zero point 0.
     Scales are float32 initializers, > 0 and finite. TensorRT quantizes symmetrically only.
  R6 Every activation Q is read only by DQs with the same scale and zero point (a pair per tensor).

Profile `ort-cpu` (activation "uint8"; target ort-cpu-int8): the same R1, R5 for weights and R6, but
activations are uint8 with a zero point (asymmetric) and outputs of Conv/Gemm and residual Adds *are*
quantized: ONNX Runtime's CPU provider fuses a node group DQ -> op -> Q into one integer kernel
(QLinearConv, QLinearAdd) only when the Q is there, and folds a Relu/Clip that follows into the output
range (the Q clamps at its zero point) when every reader of the activation's output runs in int8 (a float
reader must see the activation applied). MatMul outputs get no Q of their own: ORT runs DQ -> MatMul with
a float output as one MatMulIntegerToFloat kernel, and a Q there would only requantize for a float reader
(UniRepLKNet's GELU); where the reader is quantized, its input Q is the same tensor's Q and ORT fuses
QLinearMatMul. Residual Adds are quantized on both inputs and the output (QLinearAdd); a residual Add here
is any Add of two non-constant inputs of which at least one comes from a weighted op through shape-only
ops, bias Adds or Relu/Clip. Graph outputs stay float, and so do the reads of excluded nodes.
Measured with ORT 1.31 on a Zen 4 (AVX-512 VNNI) CPU (benchmarks/results/int8_cpu.json): with S8
activations on this same placement ORT leaves 17 of unireplknet_a's 41 convs and 40 of lsnet_t's 114
unfused (depthwise convs among them; they run as DQ + fp32 Conv), so S8S8 is several times slower than
U8S8 there; on repvgg_a0 (dense convs only) both fuse and run alike.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from deployconv.core.errors import BadInputError
from deployconv.export.precision.int8_graph import (
    DEQUANTIZE,
    QUANTIZE,
    WEIGHTED,
    GraphIndex,
    activation_inputs,
    float_source,
    output_channel_axis,
    weight_input,
)

SHAPE_ONLY = frozenset({"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
REMOVABLE_ACTIVATIONS = frozenset({"Relu", "Clip"})


@dataclass(frozen=True)
class QdqProfile:
    """One placement policy: what the runtime that reads the graph needs (see the module docstring)."""

    name: str
    activation: str  # "int8-symmetric" | "uint8" | "int8-asymmetric"
    symmetric_activations: bool
    no_output_q: frozenset[str]  # op types whose outputs get no Q of their own (R2; ORT: MatMul)
    residual_skip_only: bool  # R3 (True) vs quantize both Add inputs (False)
    fold_removable_activations: bool  # Relu/Clip after a quantized weighted op folded into its output Q
    quantize_bias: bool


_WEIGHTED_AND_ADD = frozenset(WEIGHTED | {"Add"})
TENSORRT = QdqProfile("tensorrt", "int8-symmetric", True, _WEIGHTED_AND_ADD, True, False, False)
ORT_CPU = QdqProfile("ort-cpu", "uint8", False, frozenset({"MatMul"}), False, True, True)
# ort-cpu's placement with asymmetric int8 activations (S8S8): kept to measure S8S8 against U8S8 on the
# same graph structure; not TensorRT-compatible (zero points are not 0).
ORT_CPU_S8 = QdqProfile("ort-cpu-s8", "int8-asymmetric", False, frozenset({"MatMul"}), False, True, True)
PROFILES: dict[str, QdqProfile] = {p.activation: p for p in (TENSORRT, ORT_CPU, ORT_CPU_S8)}


def profile_for(activation: str) -> QdqProfile:
    if activation not in PROFILES:
        raise BadInputError(f"unknown int8 activation type {activation!r}",
                            fix=f"use one of {', '.join(PROFILES)}")
    return PROFILES[activation]


@dataclass
class QdqPlan:
    """Which nodes the quantizer touches. `residual_adds` maps an Add to the index of its skip input
    (tensorrt) or None (both inputs, ort-cpu)."""

    profile: str
    weighted: list[str]
    residual_adds: dict[str, int | None]
    removable: list[str]
    excluded: list[str]
    float_weighted: list[str] = field(default_factory=list)  # weighted ops kept float (excluded)

    @property
    def nodes_to_quantize(self) -> list[str]:
        return [*self.weighted, *self.residual_adds, *self.removable]


def _weighted_producer(name: str, idx: GraphIndex, through: frozenset[str] = frozenset()) -> str | None:
    """The weighted op whose output `name` is: directly, through a bias Add (one constant operand), or,
    when `through` is given, through those op types too. Returns the op's name."""
    seen = 0
    while seen < 16:
        seen += 1
        node = idx.producer.get(name)
        if node is None:
            return None
        if node.op_type in WEIGHTED:
            return node.name
        if node.op_type == "Add" and sum(idx.is_constant(i) for i in node.input) == 1:
            name = next(i for i in node.input if not idx.is_constant(i))
            continue
        if node.op_type in through and node.input:
            name = node.input[0]
            continue
        return None
    return None


def residual_main_skip(add: onnx.NodeProto, idx: GraphIndex) -> tuple[int, int] | None:
    """(main, skip) input indices of a residual Add TensorRT can fuse into the main input's weighted op
    (R3), or None when neither input comes straight from a weighted op."""
    if add.op_type != "Add" or len(add.input) != 2 or any(idx.is_constant(i) for i in add.input):
        return None
    src = [_weighted_producer(float_source(i, idx), idx) for i in add.input]
    if src[0] is not None:
        return 0, 1
    if src[1] is not None:
        return 1, 0
    return None


def match_exclusions(proto: onnx.ModelProto, patterns: Iterable[str]) -> list[str]:
    """Node names matched by fnmatch patterns, each tried on the node name and on the weight name of a
    weighted op (weights carry the module path: `stage0.rbr_reparam.weight`, `head.*`). A pattern that
    matches nothing is a user error (a typo would otherwise quantize what was meant to stay float)."""
    idx = GraphIndex.of(proto)
    names: list[str] = []
    for pat in patterns:
        hit = []
        for node in proto.graph.node:
            keys = [node.name]
            if node.op_type in WEIGHTED and (w := weight_input(node, idx)) is not None:
                keys.append(node.input[w])
            if any(fnmatch.fnmatchcase(k, pat) for k in keys):
                hit.append(node.name)
        if not hit:
            raise BadInputError(f"int8 exclusion {pat!r} matches no node",
                                why="patterns are matched against node names and weight names",
                                fix="list the graph's nodes (e.g. with Netron) or use a weight name such as "
                                    "'stage0.*' or 'head.*'")
        names += [h for h in hit if h not in names]
    return names


def plan_qdq(proto: onnx.ModelProto, profile: QdqProfile, exclude: Sequence[str] = ()) -> QdqPlan:
    """Apply R1-R3 (or the ort-cpu variant) to an fp32 graph with named nodes; `exclude` are node names."""
    idx = GraphIndex.of(proto)
    excluded = set(exclude)
    weighted = [n.name for n in proto.graph.node if n.op_type in WEIGHTED and n.name not in excluded
                and activation_inputs(n, idx) and _quantizable_weight(n, idx)]
    float_weighted = [n.name for n in proto.graph.node if n.op_type in WEIGHTED and n.name in excluded]
    qset = set(weighted)
    adds: dict[str, int | None] = {}
    removable: list[str] = []
    through = SHAPE_ONLY | REMOVABLE_ACTIVATIONS
    for node in proto.graph.node:
        if node.name in excluded or node.op_type != "Add":
            continue
        if profile.residual_skip_only:
            ms = residual_main_skip(node, idx)
            if ms is not None and _weighted_producer(node.input[ms[0]], idx) in qset:
                adds[node.name] = ms[1]
        elif len(node.input) == 2 and not any(idx.is_constant(i) for i in node.input) and any(
                _weighted_producer(i, idx, through) in qset for i in node.input):
            adds[node.name] = None
    if profile.fold_removable_activations:
        # fold a Relu/Clip into the weighted op's output Q only when every reader of its output runs in
        # int8: a float reader (an excluded conv, a graph output) must see the activation applied
        quantized_readers = qset | set(adds)
        removable = [n.name for n in proto.graph.node if n.op_type in REMOVABLE_ACTIVATIONS
                     and n.name not in excluded and _weighted_producer(n.input[0], idx) in qset
                     and n.output[0] not in idx.graph_outputs and idx.readers(n.output[0])
                     and all(r.name in quantized_readers for r, _ in idx.readers(n.output[0]))]
    return QdqPlan(profile.name, weighted, adds, removable, sorted(excluded), float_weighted)


def _quantizable_weight(node: onnx.NodeProto, idx: GraphIndex) -> bool:
    w = weight_input(node, idx)
    if w is None:
        return True
    t = idx.initializers.get(node.input[w])
    return t is None or t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)


# ---------------------------------------------------------------------------------------------- the check


def _const(name: str, idx: GraphIndex) -> np.ndarray | None:
    if name in idx.initializers:
        return numpy_helper.to_array(idx.initializers[name])
    node = idx.producer.get(name)
    if node is not None and node.op_type == "Constant":
        for a in node.attribute:
            if a.name == "value":
                return numpy_helper.to_array(a.t)
    return None


def _qparams(node: onnx.NodeProto, idx: GraphIndex) -> tuple[np.ndarray | None, np.ndarray | None, int]:
    scale = _const(node.input[1], idx) if len(node.input) > 1 else None
    zp = _const(node.input[2], idx) if len(node.input) > 2 and node.input[2] else None
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    return scale, zp, axis


def _check_scale(where: str, scale: np.ndarray | None, out: list[str]) -> None:
    if scale is None:
        out.append(f"{where}: scale is not a constant")
    elif scale.dtype != np.float32:
        out.append(f"{where}: scale is {scale.dtype}, not float32")
    elif not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
        out.append(f"{where}: scale must be finite and > 0")


def _check_weight_dq(node: onnx.NodeProto, w: int, dq: onnx.NodeProto, idx: GraphIndex, per_channel: bool,
                     out: list[str]) -> None:
    where = f"weight DQ {dq.name or dq.output[0]} of {node.op_type} {node.name}"
    data = _const(dq.input[0], idx)
    scale, zp, axis = _qparams(dq, idx)
    _check_scale(where, scale, out)
    if data is None or data.dtype != np.int8:
        out.append(f"{where}: weights must be an int8 constant (got {None if data is None else data.dtype})")
        return
    if zp is not None and (zp.dtype != np.int8 or np.any(zp != 0)):
        out.append(f"{where}: zero point must be int8 0 (symmetric weights)")
    if data.size and int(data.min()) < -127:
        out.append(f"{where}: symmetric int8 weights use [-127, 127], found -128")
    if scale is None:
        return
    want = output_channel_axis(node, w, data.ndim)
    if (scale.size > 1 or per_channel) and (
            scale.ndim != 1 or (axis % max(data.ndim, 1)) != want or scale.size != data.shape[want]):
        out.append(f"{where}: per-channel scales must be 1-D along the output-channel axis {want} "
                   f"(got axis {axis}, {scale.size} scales for shape {list(data.shape)})")


def check_qdq_placement(proto: onnx.ModelProto, profile: str | QdqProfile = "tensorrt", *,
                        per_channel: bool = True) -> list[str]:
    """Violations of the placement rules (module docstring) in a quantized graph; empty when it follows
    them. `profile` is a QdqProfile, its name ("tensorrt", "ort-cpu") or its activation type."""
    prof = profile if isinstance(profile, QdqProfile) else (
        PROFILES.get(profile) or next((p for p in PROFILES.values() if p.name == profile), None))
    if prof is None:
        raise BadInputError(f"unknown Q/DQ profile {profile!r}")
    idx = GraphIndex.of(proto)
    out: list[str] = []
    act_dtype = np.uint8 if prof.activation == "uint8" else np.int8
    allowed: set[tuple[str, int]] = set()  # (node, input) positions where an activation DQ may be read
    fusable_main: set[tuple[str, int]] = set()  # main inputs of residual Adds (R3: no DQ there)

    for node in proto.graph.node:
        if node.op_type in WEIGHTED:
            dq_in = {i for i, name in enumerate(node.input)
                     if name and idx.producer.get(name) is not None and idx.producer[name].op_type == DEQUANTIZE}
            if not dq_in:
                continue  # kept float
            for i in range(min(2, len(node.input))):  # the multiplied operands
                if i not in dq_in:
                    out.append(f"{node.op_type} {node.name}: input {i} ({node.input[i]}) is not quantized while "
                               f"others are (R1: all multiplied inputs of a quantized weighted op)")
                elif idx.is_constant(idx.producer[node.input[i]].input[0]):
                    _check_weight_dq(node, i, idx.producer[node.input[i]], idx, per_channel, out)
                else:
                    allowed.add((node.name, i))
            bias = 2 if node.op_type in ("Conv", "ConvTranspose", "Gemm") else None
            if not prof.quantize_bias and bias is not None and bias in dq_in:
                out.append(f"{node.op_type} {node.name}: bias is quantized (R1: TensorRT takes a float bias)")
        elif node.op_type == "Add":
            ms = residual_main_skip(node, idx)
            if prof.residual_skip_only:
                if ms is not None:
                    main_src = _weighted_producer(float_source(node.input[ms[0]], idx), idx)
                    main_node = idx.nodes.get(main_src or "")
                    if main_node is not None and any(
                            idx.producer.get(i) is not None and idx.producer[i].op_type == DEQUANTIZE
                            for i in main_node.input):
                        allowed.add((node.name, ms[1]))
                    fusable_main.add((node.name, ms[0]))
            elif len(node.input) == 2:
                allowed.update({(node.name, 0), (node.name, 1)})

    for node in proto.graph.node:
        if node.op_type == QUANTIZE:
            where = f"Q {node.name or node.output[0]} of {node.input[0]}"
            scale, zp, _ = _qparams(node, idx)
            _check_scale(where, scale, out)
            if scale is not None and scale.size != 1:
                out.append(f"{where}: activations are quantized per tensor (one scale), got {scale.size}")
            if zp is None or zp.dtype != act_dtype:
                out.append(f"{where}: zero point must be {np.dtype(act_dtype).name} "
                           f"({prof.activation} activations)")
            elif prof.symmetric_activations and np.any(zp != 0):
                out.append(f"{where}: zero point must be 0 (symmetric activations)")
            for reader, _i in idx.readers(node.output[0]):
                if reader.op_type != DEQUANTIZE:
                    out.append(f"{where}: read by {reader.op_type} {reader.name}, not by a DequantizeLinear (R6)")
                    continue
                rs, rz, _ = _qparams(reader, idx)
                if (rs is None or scale is None or rs.shape != scale.shape or np.any(rs != scale)
                        or (rz is None) != (zp is None) or (rz is not None and zp is not None and np.any(rz != zp))):
                    out.append(f"{where}: its DQ {reader.name} uses a different scale or zero point (R6)")
        elif node.op_type == DEQUANTIZE:
            q = idx.producer.get(node.input[0])
            if q is None or q.op_type != QUANTIZE:
                continue  # weight/bias DQ: checked with its weighted op
            for reader, i in idx.readers(node.output[0]):
                if (reader.name, i) in fusable_main:
                    out.append(f"Q/DQ on the main input of residual Add {reader.name}: blocks TensorRT's "
                               f"fusion of the producing op with the Add (R3)")
                elif (reader.name, i) not in allowed and prof.residual_skip_only:
                    out.append(f"DQ of {q.input[0]} feeds {reader.op_type} {reader.name} (input {i}), which the "
                               f"rules do not run in int8: the Q/DQ only adds reformats (R2/R4)")
    return out
