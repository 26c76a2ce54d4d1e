"""The export's last step: write OUT once, atomically (a temporary folder renamed into place only when every file
is written): model.onnx, ort/model.onnx (the ONNX Runtime twin of a plugin graph), reference.npz, the engine files
the engine step staged, report.json and manifest.json (the sha256 of every other file)."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from deployconv.core.artifacts import EngineEntry, ExportReport, Manifest, PluginRef
from deployconv.core.artifacts.manifest import EXPORT_FORMAT
from deployconv.core.artifacts.names import MODEL_ONNX, ORT_DIR, ORT_MODEL, REFERENCE, REPORT
from deployconv.core.fsio import atomic_dir, sha256_file
from deployconv.core.reference import RefPoint, save_reference
from deployconv.pipeline.engine import EngineOutcome
from deployconv.pipeline.graph import GraphChecks, Graphs, twin_report
from deployconv.pipeline.model import BuiltModel, Request
from deployconv.pipeline.options import ExportOptions
from deployconv.pipeline.parity import ParityInputs, ParityOutcome
from deployconv.pipeline.precision import PrecisionResult
from deployconv.plugins.table import ONNX_DOMAIN, PLUGINS
from deployconv.trust.manifest import io_signature, write_manifest
from deployconv.trust.source import source_sha256


@dataclass
class Outputs:
    """Everything the export produced, in memory (or staged by the engine step), ready to be written."""

    req: Request
    opts: ExportOptions
    built: BuiltModel
    deploy: torch.nn.Module
    graphs: Graphs
    checks: GraphChecks
    precision: PrecisionResult | None
    inputs: ParityInputs
    parity: ParityOutcome
    latency: dict[str, Any] | None
    engine: EngineOutcome | None
    notes: list[str]
    timings: dict[str, float]

    @property
    def artifact(self) -> onnx.ModelProto:
        return self.precision.artifact if self.precision is not None else self.graphs.final

    @property
    def ort_graph(self) -> onnx.ModelProto:
        return self.precision.twin if self.precision is not None else self.graphs.twin


def _engine(o: Outputs) -> EngineEntry | None:
    return o.engine.entry if o.engine is not None else None


def export_report(o: Outputs) -> ExportReport:
    """report.json: what each step found."""
    tgt, precision, graphs = o.req.target, o.precision, o.graphs
    return ExportReport(
        model=o.req.name,
        target=tgt.to_dict(),
        notes=tuple(o.notes),
        reparam=o.deploy.reparam_report.to_dict(),
        export=asdict(graphs.export_info),
        simplify=asdict(graphs.simplify_info),
        graph={"raw": asdict(o.checks.raw), "final": asdict(o.checks.final)},
        ort_twin=twin_report(graphs),
        precision=precision.report if precision is not None else None,
        dla=o.checks.dla,
        parity=o.parity.report.to_dict(),
        latency=o.latency,
        timings_s=o.timings,
        engine=_engine(o),
    )


def export_manifest(o: Outputs) -> Manifest:
    """manifest.json's body (write_manifest adds the file hashes and tool versions)."""
    tgt, opts, precision, exp_info, layout = o.req.target, o.opts, o.precision, o.graphs.export_info, o.built.layout
    model, artifact = o.req.model, o.artifact
    assert exp_info is not None
    return Manifest(
        format=EXPORT_FORMAT,
        model=o.req.name,
        model_source_sha256=source_sha256(model) if isinstance(model, str) else None,
        weights=str(Path(opts.weights).resolve()) if opts.weights else None,
        weights_sha256=sha256_file(Path(opts.weights)) if opts.weights else None,
        allow_missing=tuple(opts.allow_missing),
        reproducible=isinstance(model, str),
        init_seed=opts.seed,
        target=tgt.name,
        target_spec=tgt.to_dict(),
        runtime=tgt.runtime,
        precision=tgt.precision,
        io_dtype=opts.io_dtype or tgt.io_dtype,
        opset=o.req.opset,
        batch=None if tgt.dynamic_batch else o.built.batch,
        exporter=exp_info.exporter,
        exporter_fallback_reason=exp_info.fallback_reason,
        lowering=exp_info.lowering,
        plugins=plugins_used(artifact),
        ort_model=ORT_MODEL if o.ort_graph is not artifact else MODEL_ONNX,
        precision_report=precision.manifest if precision is not None else None,
        dla=o.checks.dla,
        engine=_engine(o),
        io=io_signature(artifact),
        io_spec=layout.to_manifest() if layout is not None else None,
        input_preprocessing={k: getattr(o.built.info, k)
                             for k in ("input_size", "mean", "std", "interpolation", "crop_pct")},
        parity_passed=o.parity.report.passed,
    )


def plugins_used(proto: onnx.ModelProto) -> tuple[PluginRef, ...]:
    used = sorted({n.op_type for n in proto.graph.node if n.domain == ONNX_DOMAIN})
    return tuple(PluginRef(n, PLUGINS[n].version, PLUGINS[n].namespace) for n in used if n in PLUGINS)


def reference_points(o: Outputs) -> list[RefPoint]:
    """reference.npz's points: the chain's inputs and the train form's fp32 and fp64 outputs, per shape point."""
    layout = o.built.layout
    in_names = layout.spec.names if layout is not None else ["input"]
    out_names = layout.outputs.names if layout is not None else ["output"]

    def named(x: Any, names: list[str]) -> dict[str, np.ndarray]:
        return dict(x) if isinstance(x, dict) else {names[0]: x}

    points = []
    for point, batches in o.inputs.point_sets.items():
        feeds = [named(b, in_names) for b in batches]
        inputs = {n: np.concatenate([f[n] for f in feeds], axis=0) for n in in_names}
        if layout is None:
            inputs = {n: v.astype(np.float32) for n, v in inputs.items()}
        outs = o.parity.outputs[point]
        points.append(RefPoint(point, inputs, named(outs["train-fp32"], out_names),
                               named(outs["train-fp64"], out_names)))
    return points


def write_export(o: Outputs, force: bool) -> ExportReport:
    """Write OUT (see the module docstring); the report, as written."""
    report = export_report(o)
    staged = o.engine.staged if o.engine is not None else {}
    with atomic_dir(o.req.out, force) as tmp:
        for name, path in staged.items():  # the engine step's files: model.onnx as the engine was built from it
            shutil.move(str(path), str(tmp / name))
        if MODEL_ONNX not in staged:
            onnx.save(o.artifact, tmp / MODEL_ONNX)
        if o.ort_graph is not o.artifact:
            (tmp / ORT_DIR).mkdir()
            onnx.save(o.ort_graph, tmp / ORT_MODEL)
        save_reference(tmp / REFERENCE, reference_points(o))
        (tmp / REPORT).write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
        write_manifest(tmp, export_manifest(o))
    return report
