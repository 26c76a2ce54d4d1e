"""The export's short benchmark step: PyTorch train and deploy forms against the ONNX on ONNX Runtime CPU (fp32,
and the target's precision where it differs), same batch and threads; a declared spec is timed at every shape
point."""

from __future__ import annotations

from typing import Any

import onnx
import torch

from deployconv.pipeline.graph import Graphs
from deployconv.pipeline.model import BuiltModel
from deployconv.pipeline.options import ExportOptions
from deployconv.pipeline.precision import PrecisionResult
from deployconv.validate.quick_bench import compare_feeds, compare_runtimes


def quick_bench(built: BuiltModel, deploy: torch.nn.Module, graphs: Graphs, precision: PrecisionResult | None,
                precision_name: str, opts: ExportOptions) -> dict[str, Any]:
    protos = {"onnxruntime cpu" + (" (fp32)" if precision else ""): graphs.twin}
    if precision is not None:
        protos[f"onnxruntime cpu ({precision_name})"] = precision.twin
    if built.layout is None:
        return compare_runtimes(built.train, deploy, protos, built.info.input_size, built.batch, opts.bench_seconds,
                                opts.threads)
    return _points_latency(built, deploy, protos, opts)


def _points_latency(built: BuiltModel, deploy: torch.nn.Module, protos: dict[str, onnx.ModelProto],
                    opts: ExportOptions) -> dict[str, Any]:
    """The short benchmark at the opt sizes, plus min and max where sizes vary."""
    assert built.layout is not None
    spec, names = built.layout.spec, built.layout.outputs.names
    result: dict[str, Any] = {}
    for point in spec.points:
        feed = spec.feeds(point, batch=built.batch, count=1, seed=0)[0]
        row = compare_feeds(built.train, deploy, protos, feed, names, built.batch, opts.bench_seconds, opts.threads)
        row["shapes"] = {k: list(v.shape) for k, v in feed.items()}
        if point == "opt":
            result.update(row)
        else:
            result.setdefault("points", {})[point] = row
    return result
