"""`deployconv export`, as a recipe: resolve the request -> build the model -> reparameterize -> export ONNX (and
its ONNX Runtime twin, aligned) -> check -> precision -> parity chain -> short benchmark -> engine -> write.

Each step is one function in this package taking and returning typed values; nothing touches OUT until the last
step writes it once, atomically: model.onnx, reference.npz (inputs and expected outputs for parity anywhere),
report.json, manifest.json, and engine.plan where TensorRT built one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from deployconv.core.errors import MissingEnvironmentError
from deployconv.core.target import Target
from deployconv.models.seeded import create_seeded
from deployconv.pipeline.bench import quick_bench
from deployconv.pipeline.engine import EngineOutcome, engine_step, staging_dir
from deployconv.pipeline.graph import check_graphs, export_graphs
from deployconv.pipeline.model import build_model, default_out, reparameterize_model, resolve_request
from deployconv.pipeline.options import DEFAULT_SIMPLIFIER, ExportOptions
from deployconv.pipeline.parity import parity_inputs, run_parity
from deployconv.pipeline.precision import BF16_NOTE, apply_precision
from deployconv.pipeline.write import Outputs, write_export

# create_seeded, default_out: public names callers import from here
__all__ = ["DEFAULT_SIMPLIFIER", "ExportOptions", "ExportResult", "create_seeded", "default_out", "export"]


@dataclass
class ExportResult:
    out: Path
    report: dict[str, Any]
    passed: bool
    timings: dict[str, float] = field(default_factory=dict)


class _Laps:
    """Seconds per step, in report.json's timings_s."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, key: str) -> None:
        now = time.perf_counter()
        self.timings[key] = round(now - self._t, 3)
        self._t = now


def export(model: str | torch.nn.Module, target: str | Target, out: Path | None = None, *,
           options: ExportOptions | None = None, force: bool = False,
           progress: Callable[[str], None] | None = None) -> ExportResult:
    """Run the whole pipeline for `model` (zoo name, user source or nn.Module) and `target`."""
    opts = options or ExportOptions()
    step = progress or (lambda _s: None)
    req = resolve_request(model, target, out, opts, force)
    tgt, laps = req.target, _Laps()

    step("create")
    built = build_model(req, opts)
    laps.lap("create")
    step("reparameterize")
    deploy = reparameterize_model(built)
    laps.lap("reparameterize")
    step("export")
    graphs = export_graphs(req, built, deploy, opts.simplifier, opts.seed)
    laps.lap("export")
    step("check")
    checks = check_graphs(graphs, tgt)
    laps.lap("check")
    step("validate")
    inputs = parity_inputs(built, opts)
    precision = apply_precision(graphs, tgt, inputs.batches, opts, built.info, progress=step)
    parity = run_parity(built, deploy, graphs, precision, inputs, tgt, opts, step)
    laps.lap("validate")
    latency = None
    if opts.bench:
        step("benchmark")
        latency = quick_bench(built, deploy, graphs, precision, tgt.precision, opts)
        laps.lap("benchmark")
    notes = [*built.notes, *([BF16_NOTE] if tgt.precision == "bf16" else []),
             *(precision.notes if precision is not None else [])]
    with ExitStack() as stack:
        engine: EngineOutcome | None = None
        if tgt.runtime == "tensorrt":
            step("engine")
            artifact = precision.artifact if precision is not None else graphs.final
            requested = {"precision": tgt.precision,
                         "precision_report": precision.manifest if precision is not None else None, "dla": checks.dla}
            engine = engine_step(artifact, tgt, opts, built.layout, requested,
                                 stack.enter_context(staging_dir(req.out)), req.out)
            laps.lap("engine")
        step("write")
        report = write_export(Outputs(req, opts, built, deploy, graphs, checks, precision, inputs, parity, latency,
                                      engine, notes, laps.timings), force)
    laps.lap("write")
    if engine is not None and not engine.built and opts.require_engine:
        raise MissingEnvironmentError(f"no engine was built for {tgt.name}: {engine.entry.status}",
                                      why=f"--require-engine was given; {req.out} holds the exported ONNX",
                                      fix=engine.entry.how or "install TensorRT >= " + (
                                          tgt.tensorrt.min_version if tgt.tensorrt else "10"))
    return ExportResult(req.out, report.to_dict(), parity.report.passed, laps.timings)
