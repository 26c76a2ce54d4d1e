"""The export's first steps: resolve what was asked (target, output directory, opset), build the train-form
model with its input layout, and reparameterize it into the deploy form."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from deployconv.core.errors import BadInputError
from deployconv.core.fsio import refuse_overwrite, safe_name
from deployconv.core.io_spec import check_for_target, default_spec
from deployconv.core.target import Target, get_target
from deployconv.engine.trtexec import check_profile_count
from deployconv.models.io import resolve_io, run_checked
from deployconv.models.registry import ModelInfo, model_info
from deployconv.models.seeded import create_seeded
from deployconv.pipeline.io import io_layout
from deployconv.pipeline.options import ExportOptions
from deployconv.reparam import reparameterize
from deployconv.validate.io_layout import IOLayout


@dataclass(frozen=True)
class Request:
    """What the user asked for, resolved: the model's name, the Target, the output directory and the opset."""

    model: str | torch.nn.Module
    name: str
    target: Target
    out: Path
    opset: int


@dataclass
class BuiltModel:
    """The train form, its preprocessing facts, the batch the export is validated (static targets: built) at, and
    the IOLayout of a declared spec (None: the classic single image in, one tensor out)."""

    train: torch.nn.Module
    info: ModelInfo
    batch: int
    layout: IOLayout | None
    notes: list[str] = field(default_factory=list)


def default_out(model: str, target: str) -> Path:
    return Path("deployconv_out") / f"{safe_name(model)}-{target}"


def resolve_request(model: str | torch.nn.Module, target: str | Target, out: Path | None, opts: ExportOptions,
                    force: bool) -> Request:
    """The target and output directory; an existing OUT without `force` is refused before any work."""
    tgt = target if isinstance(target, Target) else get_target(target)
    name = model if isinstance(model, str) else getattr(model, "deployconv_name", type(model).__name__)
    out = Path(out) if out else default_out(name, tgt.name)
    refuse_overwrite(out, force)
    return Request(model, name, tgt, out, opts.opset or tgt.opset)


def _static_batch(tgt: Target, opts: ExportOptions, notes: list[str]) -> int:
    """The batch a static-shape target is built for: --batch, else the target's, else 1 (said in a note)."""
    if opts.batch_given:
        return opts.batch
    if tgt.batch is None:
        notes.append(f"{tgt.name} has static shapes and no --batch was given: batch 1")
    return tgt.batch or 1


def build_model(req: Request, opts: ExportOptions) -> BuiltModel:
    """The train form (seeded, so `validate` can rebuild it) and its input layout."""
    model = req.model
    train = create_seeded(model, opts.weights, opts.allow_missing, opts.seed) if isinstance(model, str) \
        else model.eval()
    notes: list[str] = []
    tgt = req.target
    batch = opts.batch if tgt.dynamic_batch else _static_batch(tgt, opts, notes)
    layout = _layout(train, tgt, opts, batch, req.name)
    return BuiltModel(train, model_info(train), batch, layout, notes)


def _layout(train: torch.nn.Module, tgt: Target, opts: ExportOptions, batch: int, name: str) -> IOLayout | None:
    """The IOLayout for a declared spec (--input/--dim, example_inputs, a zoo backbone), None for the classic
    single image. Bad specs and targets that cannot take them fail here, before any work."""
    brange = (1, batch, max(tgt.max_batch, batch)) if tgt.dynamic_batch else (batch, batch, batch)
    spec = resolve_io(train, opts.inputs, opts.dims, brange, opts.profiles)
    if spec is None:
        spec = default_spec(model_info(train).input_size, brange)
        probe = tuple(torch.from_numpy(v) for v in spec.feeds("opt", batch=2, count=1, seed=opts.seed)[0].values())
        if isinstance(run_checked(train, probe, name), torch.Tensor):
            return None  # the classic single image in, one tensor out
        spec = type(spec)(spec.inputs, spec.ranges, "default")
    check_for_target(spec, tgt)
    if tgt.tensorrt is not None:
        check_profile_count(tgt.name, tgt.tensorrt.max_version, len(spec.profiles))
    if opts.images:
        raise BadInputError("--images feeds the classic single image input; this model declares "
                            f"{', '.join(i.describe() for i in spec.inputs)}", fix="drop --images")
    if tgt.precision in ("fp16", "int8") and len(spec.inputs) > 1:
        raise BadInputError(f"{tgt.precision} targets take single-input models for now; this one has "
                            f"{len(spec.inputs)} inputs", fix="use an fp32 target (onnx, trt-fp32)")
    return io_layout(train, spec, name, opts.seed)


def reparameterize_model(built: BuiltModel) -> torch.nn.Module:
    """The deploy form (verified against the train form by the walker), probed at the layout's sizes."""
    return reparameterize(built.train, probe=built.layout.small_probe if built.layout is not None else None)


def with_batch(opts: ExportOptions, batch: int) -> ExportOptions:
    return replace(opts, batch=batch)
