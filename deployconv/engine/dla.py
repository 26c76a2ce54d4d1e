"""Where TensorRT would run each layer of an ONNX graph on a DLA target: on the DLA, or on the GPU, and why.

Jetson DLA runs a fixed set of layers; everything else falls back to the GPU silently when GPU fallback is on.
This module says in advance which layers fall back, so a user reads it in the export report instead of finding
it in a profile. Pure and torch-free: it reads an `onnx.ModelProto` (onnx's shape inference supplies tensor
shapes) and decides; nothing here needs TensorRT.

Sources of the rules (TensorRT 10.x, the versions JetPack 6 ships):
  [table]   TensorRT docs, "DLA Supported Layers and Restrictions" (general restrictions and the layer table).
  [header]  NvInfer.h's per-layer "If executing this layer on DLA" notes (TensorRT 10.3, JetPack 6.1/6.2).
  [ops]     TensorRT operator reference, "DLA Support" sections (Reduce: MAX only).
  [parser]  onnx-tensorrt importer: which TensorRT layer an ONNX op becomes (GlobalAveragePool -> Reduce AVG).
A row is `approximate` where the rule guesses what TensorRT's importer or optimizer does with an op (layer
mapping, fusions, broadcast patterns) rather than applying a documented limit. The ground truth is the built
engine's layer information (`trtexec --exportLayerInfo`, or the builder log) on the device.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from deployconv.core.errors import BadInputError
from deployconv.engine.dla_graph import (
    DLA_FLOAT_TYPES,
    DLA_PRECISIONS,
    MAX_BATCH,
    MAX_DIM,
    NOT_LAYERS,
    PLUGIN_DOMAIN,
    STANDARD_DOMAINS,
    _Graph,
    _graph_facts,
    _static,
)
from deployconv.engine.dla_rules import _NOT_ON_DLA, COMPARISONS, RULES, Verdict, _no, rule_comparison


@dataclass(frozen=True)
class DlaLayer:
    name: str
    op: str
    device: str  # "DLA" | "GPU"
    reason: str  # why it falls back to the GPU; for a DLA row, a caveat or ""
    approximate: bool = False


@dataclass(frozen=True)
class DlaReport:
    target: str
    dla_core: int | None
    gpu_fallback: bool
    layers: tuple[DlaLayer, ...]
    graph_problems: tuple[str, ...] = ()  # what stops the whole graph from running on DLA at all
    not_layers: dict[str, int] = field(default_factory=dict)  # op -> count of nodes that make no layer
    notes: tuple[str, ...] = ()

    @property
    def gpu_layers(self) -> tuple[DlaLayer, ...]:
        return tuple(r for r in self.layers if r.device == "GPU")

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(r.device for r in self.layers)
        return {"DLA": c.get("DLA", 0), "GPU": c.get("GPU", 0), "total": len(self.layers),
                "approximate": sum(r.approximate for r in self.layers)}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["counts"] = self.counts
        return d

    def summary(self) -> str:
        c = self.counts
        return (f"{c['DLA']} of {c['total']} layers on DLA core {self.dla_core}, {c['GPU']} on the GPU"
                + (f" ({c['approximate']} of them approximate)" if c["approximate"] else ""))


# --- the front functions ----------------------------------------------------------------------------------------

def _layer_name(node: Any, index: int) -> str:
    return node.name or f"{node.op_type}_{index}"


def _tensor_problem(node: Any, g: _Graph) -> str | None:
    """General restrictions every DLA layer has: static dims, non-batch dims <= 8192, fp16/int8 tensors."""
    for name in (*[i for i in node.input if i and i not in g.constants], *node.output):
        shape = g.shape(name)
        if shape is None:
            continue
        if not _static(shape):
            return f"tensor {name!r} has dynamic dims {list(shape)}; DLA needs static shapes [table]"
        big = [d for d in shape[1:] if d > MAX_DIM]
        if big:
            return f"tensor {name!r} has a dim of {big[0]} (> {MAX_DIM}, DLA's limit for non-batch dims) [table]"
    if node.op_type not in COMPARISONS:
        for name in node.output:
            t = g.types.get(name)
            if t and t not in DLA_FLOAT_TYPES:
                return f"makes {t} tensors; DLA computes fp16/int8 only"
    return None


def _place(node: Any, g: _Graph) -> Verdict:
    if node.domain == PLUGIN_DOMAIN:
        return _no(f"deployconv plugin {node.op_type}: plugins never run on DLA")
    if node.domain not in STANDARD_DOMAINS:
        return _no(f"custom op {node.domain}::{node.op_type}: only a TensorRT plugin can run it, and plugins "
                   "never run on DLA")
    if g.precision not in DLA_PRECISIONS:
        return _no(f"DLA runs fp16 and int8 only; the target's precision is {g.precision} [table]")
    problem = _tensor_problem(node, g)
    if problem:
        return _no(problem)
    if node.op_type in COMPARISONS:
        return rule_comparison(node, g)
    rule = RULES.get(node.op_type)
    if rule is not None:
        return rule(node, g)
    kind = _NOT_ON_DLA.get(node.op_type)
    if kind == "unary":
        return _no(f"{node.op_type}: DLA's unary layer runs Abs only [header]")
    if kind == "activation":
        return _no(f"{node.op_type}: not among DLA's activations (ReLU, Sigmoid, TanH, Clip, Leaky ReLU) [table]")
    return _no(f"{node.op_type} is not among DLA's supported layers [table]")


def _graph_problems(proto: Any, target: Any, g: _Graph) -> list[str]:
    """What keeps the whole graph off the DLA, independent of any one layer."""
    out = []
    if target.precision not in DLA_PRECISIONS:
        out.append(f"precision {target.precision}: DLA runs fp16 and int8 only")
    if getattr(target, "dynamic_batch", False):
        out.append("the target has a dynamic batch: DLA runs static shapes only (min = opt = max)")
    inits = {i.name for i in proto.graph.initializer}
    for v in proto.graph.input:
        if v.name in inits:
            continue
        shape = g.shape(v.name)
        if shape is None or not _static(shape):
            dims = "unknown rank" if shape is None else "[" + ", ".join(str(d or "?") for d in shape) + "]"
            out.append(f"input {v.name!r} has dynamic dims {dims}: DLA runs static shapes only")
            continue
        batch = 1
        for d in shape[:-3]:
            batch *= int(d)
        if batch > MAX_BATCH:
            out.append(f"input {v.name!r}: batch {batch} > {MAX_BATCH}, DLA's maximum")
    return out


def dla_capability(proto: Any, target: Any) -> DlaReport:
    """For every node of `proto` (an onnx.ModelProto): can TensorRT's DLA run it under `target`, or why it falls
    back to the GPU. Pure; nothing is built. Works for any target (a non-DLA one reports what DLA would do)."""
    g = _graph_facts(proto, target.precision)
    trt = getattr(target, "tensorrt", None)
    rows = []
    skipped: Counter[str] = Counter()
    for i, node in enumerate(proto.graph.node):
        if node.op_type in NOT_LAYERS and node.domain in STANDARD_DOMAINS:
            skipped[node.op_type] += 1
            continue
        v = _place(node, g)
        rows.append(DlaLayer(_layer_name(node, i), node.op_type if node.domain in STANDARD_DOMAINS
                             else f"{node.domain}::{node.op_type}", "DLA" if v.ok else "GPU", v.reason, v.approximate))
    notes = ["placements follow NVIDIA's documented DLA restrictions (TensorRT 10); the built engine's layer "
             "information is the ground truth"]
    if skipped.get("QuantizeLinear") or skipped.get("DequantizeLinear"):
        notes.append("Q/DQ nodes are not layers: their scales set the int8 precision of the layers next to them")
    return DlaReport(target=target.name, dla_core=None if trt is None else trt.dla_core,
                     gpu_fallback=True if trt is None else trt.gpu_fallback, layers=tuple(rows),
                     graph_problems=tuple(_graph_problems(proto, target, g)), not_layers=dict(sorted(skipped.items())),
                     notes=tuple(notes))


def check_dla_limits(proto: Any, target: Any) -> DlaReport | None:
    """At export time, for a DLA target: BadInputError for what cannot work at all (dynamic shapes, a precision
    DLA lacks, and, when the target turns GPU fallback off, every layer DLA cannot run); the per-layer
    placement report otherwise. None for targets that do not use DLA."""
    if not getattr(target, "uses_dla", False):
        return None
    report = dla_capability(proto, target)
    if report.graph_problems:
        raise BadInputError(f"target {target.name!r} cannot run this model on DLA", details=list(report.graph_problems),
                            why="DLA runs static shapes in fp16 or int8 only",
                            fix="export with the target's static batch (no dynamic dims), and an fp16 or int8 DLA "
                                "target; or use a GPU target (no [tensorrt] dla_core)")
    if not report.gpu_fallback and report.gpu_layers:
        layers = report.gpu_layers
        raise BadInputError(
            f"{len(layers)} layer(s) cannot run on DLA and target {target.name!r} turns GPU fallback off",
            details=[f"{r.name} ({r.op}): {r.reason}" + (" (approximation)" if r.approximate else "")
                     for r in layers[:50]] + ([f"... and {len(layers) - 50} more"] if len(layers) > 50 else []),
            why="without GPU fallback TensorRT fails the build at the first layer DLA cannot run",
            fix="set [tensorrt] gpu_fallback = true in the target, or change those layers")
    return report
