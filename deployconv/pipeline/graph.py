"""The export's graph steps: the deploy form to ONNX (simplified, metadata set), its ONNX Runtime twin and the node
alignment between them where the target uses plugin nodes, then the graph checks (and the DLA limits)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import onnx
import torch

from deployconv.core.target import Target
from deployconv.core.version import __version__
from deployconv.engine.dla import check_dla_limits, dla_capability
from deployconv.export.align import Alignment, align
from deployconv.export.graph_checks import GraphCheck, check_graph
from deployconv.export.onnx_export import ExportInfo, export_onnx, set_metadata
from deployconv.export.simplify import SimplifyInfo, simplify
from deployconv.pipeline.model import BuiltModel, Request
from deployconv.plugins.table import ONNX_DOMAIN


@dataclass
class Graphs:
    """The artifact (what model.onnx holds, lowered for the target) and its ONNX Runtime twin (the same model with
    every custom op in ONNX-domain ops). They are one object unless the target uses plugin nodes."""

    raw: onnx.ModelProto
    final: onnx.ModelProto
    twin_raw: onnx.ModelProto
    twin: onnx.ModelProto
    alignment: Alignment | None = None  # twin -> artifact, node by node, when the two differ
    export_info: ExportInfo | None = None
    simplify_info: SimplifyInfo | None = None

    @property
    def twinned(self) -> bool:
        return self.twin is not self.final


@dataclass
class GraphChecks:
    raw: GraphCheck
    final: GraphCheck
    dla: dict[str, Any] | None  # DLA targets: where each layer is predicted to run


def has_plugins(proto: onnx.ModelProto) -> bool:
    return any(n.domain == ONNX_DOMAIN for n in proto.graph.node)


def _example(req: Request, built: BuiltModel, seed: int) -> torch.Tensor | tuple:
    """The tracing example: the layout's probe, else a seeded image batch (>= 2 so a dynamic batch stays free)."""
    if built.layout is not None:
        return built.layout.probe
    batch = max(2, built.batch) if req.target.dynamic_batch else built.batch
    return torch.randn(batch, *built.info.input_size, generator=torch.Generator().manual_seed(seed))


def export_graphs(req: Request, built: BuiltModel, deploy: torch.nn.Module, simplifier: str, seed: int) -> Graphs:
    """Export and simplify the deploy form for the target; with plugin nodes, also the standard-lowering twin
    that ONNX Runtime runs, aligned to the artifact node by node."""
    tgt, layout = req.target, built.layout
    example = _example(req, built, seed)
    meta = {"deployconv_version": __version__, "model": req.name, "target": tgt.name, "precision": tgt.precision}
    kw = {"io": layout.spec, "output_names": layout.outputs.names} if layout is not None else {}
    raw, exp_info = export_onnx(deploy, example, tgt, req.opset, **kw)
    set_metadata(raw, {**meta, "lowering": json.dumps(exp_info.lowering, sort_keys=True)})
    final, simp_info = simplify(raw, simplifier)
    set_metadata(final, {**meta, "lowering": json.dumps(exp_info.lowering, sort_keys=True)})
    if not has_plugins(final):
        return Graphs(raw, final, raw, final, None, exp_info, simp_info)
    standard = replace(tgt, lowering="standard", lowering_overrides={})
    twin_raw, _ = export_onnx(deploy, example, standard, req.opset, **kw)
    twin, _ = simplify(twin_raw, simplifier)
    return Graphs(raw, final, twin_raw, twin, align(twin, final), exp_info, simp_info)


def check_graphs(graphs: Graphs, tgt: Target) -> GraphChecks:
    """onnx.checker and the clean-graph counts on both graphs; DLA targets: the DLA limits (an error when a
    layer cannot run there without GPU fallback) and the placement prediction."""
    raw, final = check_graph(graphs.raw), check_graph(graphs.final)
    dla = None
    if tgt.uses_dla:
        check_dla_limits(graphs.final, tgt)
        dla = dla_capability(graphs.final, tgt).to_dict()
    return GraphChecks(raw, final, dla)


def twin_report(graphs: Graphs) -> dict | None:
    if not graphs.twinned:
        return None
    assert graphs.alignment is not None
    return {"why": "the artifact has plugin nodes ONNX Runtime cannot run; the parity chain runs the same model "
                   "with ONNX-domain lowerings (ort/model.onnx), matched node by node to the artifact",
            "alignment": graphs.alignment.to_dict()}
