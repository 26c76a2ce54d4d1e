"""The export's parity steps: the inputs the chain runs on (seeded random batches, the user's images, or feeds at
every shape point of a declared spec), then the chain itself, train fp64 -> train fp32 -> deploy fp32 -> ONNX raw
-> ONNX simplified -> the target's precision, each stage within its budget (deployconv.core.target.chain_budget),
and where an ONNX stage breaks it, the first layer that does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from deployconv.core.target import Target, chain_budget
from deployconv.pipeline.graph import Graphs
from deployconv.pipeline.io import point_batches
from deployconv.pipeline.model import BuiltModel
from deployconv.pipeline.options import ExportOptions
from deployconv.pipeline.precision import PrecisionResult
from deployconv.validate.bisect import first_divergence, first_divergence_between
from deployconv.validate.chain import Stage, ort_stage, torch_stages
from deployconv.validate.images import load_images
from deployconv.validate.parity import ParityReport, merge_points, run_chain


@dataclass
class ParityInputs:
    """The batches per shape point ("opt" only for a fixed-size model) and how they were made (report.json)."""

    point_sets: dict[str, list]
    description: dict[str, Any]

    @property
    def batches(self) -> list:
        return self.point_sets["opt"]


@dataclass
class ParityOutcome:
    report: ParityReport  # every point merged
    outputs: dict[str, dict[str, Any]]  # per point: per stage, the outputs (reference.npz records train-fp32/fp64)


def parity_inputs(built: BuiltModel, opts: ExportOptions) -> ParityInputs:
    """Batches of min(batch, 8) samples: N(0, 1) images (plus the --images folder), or seeded feeds of the
    declared inputs at every shape point."""
    size = max(1, min(built.batch, 8))
    layout = built.layout
    if layout is not None:
        points = {p: point_batches(layout, p, size, opts.parity_batches, opts.seed) for p in layout.spec.points}
        return ParityInputs(points, {"random": {"batches": opts.parity_batches, "batch": size, "seed": opts.seed,
                                                "distribution": "N(0,1) floats, integers in [low, high), coin-flip bools",
                                                "inputs": [i.describe() for i in layout.spec.inputs],
                                                "points": {p: layout.spec.shapes_at(p, size) for p in points}}})
    info = built.info
    rng = np.random.default_rng(opts.seed)
    batches = [rng.standard_normal((size, *info.input_size), dtype=np.float32) for _ in range(opts.parity_batches)]
    desc: dict[str, Any] = {"random": {"batches": len(batches), "batch": size, "seed": opts.seed,
                                       "distribution": "N(0,1) in normalised input space"}}
    if opts.images:
        imgs = load_images(opts.images, info.input_size[1:], info.crop_pct, info.interpolation, info.mean,
                           info.std, limit=64)
        batches.append(imgs.array)
        desc["images"] = {"dir": str(opts.images), "used": len(imgs.files), "skipped": len(imgs.skipped),
                          "skipped_files": imgs.skipped[:10]}
    return ParityInputs({"opt": batches}, desc)


def parity_stages(built: BuiltModel, deploy: torch.nn.Module, graphs: Graphs, precision: PrecisionResult | None,
                  opts: ExportOptions) -> list[Stage]:
    """The chain's stages, in order: the PyTorch three, the raw and simplified ONNX on ONNX Runtime (the twin, where
    the artifact has plugin nodes), and the precision stage (fp16 with its rounding emulated, or int8)."""
    layout = built.layout
    simplified = f"onnx-{opts.simplifier} (ort-cpu)" if opts.simplifier != "none" else "onnx (ort-cpu)"
    stages = [*torch_stages(built.train, deploy, layout),
              ("onnx-raw (ort-cpu)", ort_stage(graphs.twin_raw, opts.threads, layout)),
              (simplified, ort_stage(graphs.twin, opts.threads, layout))]
    if precision is not None:
        stages.append((precision.stage, ort_stage(precision.checked, opts.threads, layout)))
    return stages


def run_parity(built: BuiltModel, deploy: torch.nn.Module, graphs: Graphs, precision: PrecisionResult | None,
               inputs: ParityInputs, tgt: Target, opts: ExportOptions,
               progress: Callable[[str], None]) -> ParityOutcome:
    """Run the chain at every shape point; on a break at an ONNX stage, name the first diverging layer."""
    stages = parity_stages(built, deploy, graphs, precision, opts)
    budget = chain_budget(tgt)
    own = {precision.stage: chain_budget(tgt, tgt.precision)} if precision is not None else {}
    runs = {}
    for point, point_batch in inputs.point_sets.items():
        label = f"validate{'' if len(inputs.point_sets) == 1 else f' at {point}'}"
        runs[point] = run_chain(stages, point_batch, budget, inputs.description,
                                progress=lambda s, label=label: progress(f"{label}: {s}"), stage_budgets=own)
    parity = runs["opt"][0]
    if len(runs) > 1:
        assert built.layout is not None
        spec, size = built.layout.spec, max(1, min(built.batch, 8))
        parity = merge_points({p: r for p, (r, _) in runs.items()}, lambda p: spec.shapes_at(p, size))
    batch = inputs.batches[0]
    if not parity.passed and parity.broke_at and parity.broke_at.startswith("onnx") and isinstance(batch, np.ndarray):
        if parity.broke_at.startswith("onnx-raw"):
            div = first_divergence(deploy, graphs.twin_raw, batch, budget)
        elif precision is not None and parity.broke_at == precision.stage:
            div = first_divergence_between(graphs.twin, precision.checked, batch, own[precision.stage])
        else:
            div = first_divergence_between(graphs.twin_raw, graphs.twin, batch, budget)
        parity.first_divergence = asdict(div) if div else {"note": "no single layer exceeded the budget"}
    return ParityOutcome(parity, {p: outs for p, (_, outs) in runs.items()})
