"""The export front door: create -> reparameterize -> export -> simplify -> check -> validate -> (bench).

Writes OUT/model.onnx, OUT/reference.npz (inputs + expected outputs for on-device parity), OUT/report.json and
OUT/manifest.json into a temporary directory that replaces OUT only when everything was written.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from deployconv.core.artifacts import EngineEntry, ExportReport, Manifest, PluginRef
from deployconv.core.artifacts.manifest import EXPORT_FORMAT
from deployconv.core.artifacts.names import MODEL_ONNX, ORT_DIR, ORT_MODEL, REFERENCE, REPORT
from deployconv.core.errors import MissingEnvironmentError
from deployconv.core.fsio import atomic_dir, refuse_overwrite, safe_name
from deployconv.core.target import FP32_BUDGET, Target, get_target
from deployconv.core.version import __version__
from deployconv.export.graph_checks import check_graph
from deployconv.export.onnx_export import export_onnx, set_metadata
from deployconv.export.simplify import simplify
from deployconv.models.registry import model_info
from deployconv.trust.manifest import io_signature, sha256_file, write_manifest

DEFAULT_SIMPLIFIER = "onnxslim"


@dataclass
class ExportOptions:
    weights: Path | None = None
    allow_missing: tuple[str, ...] = ()
    batch: int = 1
    opset: int | None = None
    simplifier: str = DEFAULT_SIMPLIFIER
    images: Path | None = None
    parity_batches: int = 2
    seed: int = 0
    bench: bool = True
    bench_seconds: float = 1.0
    threads: int | None = None
    batch_given: bool = False  # static-shape targets: whether --batch chose the batch
    io_dtype: str | None = None  # None: the target's
    calib: Path | None = None
    calib_samples: int | None = None
    calib_method: str | None = None
    plugins: Path | None = None
    require_engine: bool = False
    inputs: tuple[str, ...] = ()  # --input NAME=DIMS[:DTYPE] (deployconv.core.io_spec)
    dims: tuple[str, ...] = ()  # --dim SYM=MIN..OPT..MAX


@dataclass
class ExportResult:
    out: Path
    report: dict[str, Any]
    passed: bool
    timings: dict[str, float] = field(default_factory=dict)


def default_out(model: str, target: str) -> Path:
    return Path("deployconv_out") / f"{safe_name(model)}-{target}"


def _torch_stage(module: torch.nn.Module, dtype: torch.dtype) -> Callable[[np.ndarray], np.ndarray]:
    def run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = module(torch.from_numpy(batch).to(dtype))
        out = out[0] if isinstance(out, (tuple, list)) else out
        return out.double().numpy()

    return run


def create_seeded(name: str, weights: Path | None, allow_missing: tuple[str, ...], seed: int) -> torch.nn.Module:
    """create_model with a seeded initialisation (global RNG state untouched): an export without weights is
    reproducible, so `deployconv validate` can rebuild the same model."""
    from deployconv.models import create_model

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return create_model(name, weights, allow_missing=allow_missing)


def torch_stages(train: torch.nn.Module, deploy: torch.nn.Module) -> list:
    """The PyTorch half of the parity chain: fp64 reference, fp32 train form, fp32 deploy form."""
    return [
        ("train-fp64", _torch_stage(copy.deepcopy(train).double(), torch.float64)),
        ("train-fp32", _torch_stage(train, torch.float32)),
        ("deploy-fp32", _torch_stage(deploy, torch.float32)),
    ]


def _ort_stage(proto: onnx.ModelProto, threads: int | None) -> Callable[[np.ndarray], np.ndarray]:
    from deployconv.runtime.ort import OrtRunner

    runner = OrtRunner(proto.SerializeToString(), threads=threads).activate()
    name, meta = next(iter(runner.input_metadata().items()))
    dtype = meta.dtype or np.float32  # fp16 I/O graphs take fp16

    def run(batch: np.ndarray) -> np.ndarray:
        return np.asarray(next(iter(runner.infer({name: batch.astype(dtype)}).values())), dtype=np.float64)

    return run


def make_inputs(model: torch.nn.Module, opts: ExportOptions) -> tuple[list[np.ndarray], dict]:
    info = model_info(model)
    rng = np.random.default_rng(opts.seed)
    size = max(1, min(opts.batch, 8))
    batches = [rng.standard_normal((size, *info.input_size), dtype=np.float32) for _ in range(opts.parity_batches)]
    desc: dict[str, Any] = {"random": {"batches": len(batches), "batch": size, "seed": opts.seed,
                                       "distribution": "N(0,1) in normalised input space"}}
    if opts.images:
        from deployconv.validate.images import load_images

        imgs = load_images(opts.images, info.input_size[1:], info.crop_pct, info.interpolation, info.mean,
                           info.std, limit=64)
        batches.append(imgs.array)
        desc["images"] = {"dir": str(opts.images), "used": len(imgs.files), "skipped": len(imgs.skipped),
                          "skipped_files": imgs.skipped[:10]}
    return batches, desc


def _static_batch(tgt: Target, opts: ExportOptions, notes: list[str]) -> int:
    """The batch a static-shape target is built for: --batch, else the target's, else 1 (said in a note)."""
    if opts.batch_given:
        return opts.batch
    if tgt.batch is None:
        notes.append(f"{tgt.name} has static shapes and no --batch was given: batch 1")
    return tgt.batch or 1


def _has_plugins(proto: onnx.ModelProto) -> bool:
    from deployconv.plugins.table import ONNX_DOMAIN

    return any(n.domain == ONNX_DOMAIN for n in proto.graph.node)


@dataclass
class Graphs:
    """The artifact (what model.onnx holds, lowered for the target) and its ONNX Runtime twin (the same model with
    every custom op in ONNX-domain ops). They are one object unless the target uses plugin nodes."""

    raw: onnx.ModelProto
    final: onnx.ModelProto
    twin_raw: onnx.ModelProto
    twin: onnx.ModelProto
    alignment: Any = None  # deployconv.export.align.Alignment when the two differ

    @property
    def twinned(self) -> bool:
        return self.twin is not self.final


def _export_graphs(deploy: torch.nn.Module, example: torch.Tensor | tuple, tgt: Target, opset: int, simplifier: str,
                   meta: dict[str, str], io: Any = None) -> tuple[Graphs, Any, Any]:
    from dataclasses import replace

    kw = {"io": io.spec, "output_names": io.outputs.names} if io is not None else {}
    raw, exp_info = export_onnx(deploy, example, tgt, opset, **kw)
    set_metadata(raw, {**meta, "lowering": json.dumps(exp_info.lowering, sort_keys=True)})
    final, simp_info = simplify(raw, simplifier)
    set_metadata(final, {**meta, "lowering": json.dumps(exp_info.lowering, sort_keys=True)})
    if not _has_plugins(final):
        return Graphs(raw, final, raw, final), exp_info, simp_info
    from deployconv.export.align import align

    standard = replace(tgt, lowering="standard", lowering_overrides={})
    twin_raw, _ = export_onnx(deploy, example, standard, opset, **kw)
    twin, _ = simplify(twin_raw, simplifier)
    return Graphs(raw, final, twin_raw, twin, align(twin, final)), exp_info, simp_info


def export(model: str | torch.nn.Module, target: str | Target, out: Path | None = None, *,
           options: ExportOptions | None = None, force: bool = False,
           progress: Callable[[str], None] | None = None) -> ExportResult:
    """Run the whole pipeline for `model` (zoo name, user source or nn.Module) and `target`."""
    from deployconv.pipeline.precision import BF16_NOTE, apply_precision
    from deployconv.reparam import reparameterize
    from deployconv.validate.parity import run_chain

    opts = options or ExportOptions()
    tgt = target if isinstance(target, Target) else get_target(target)
    step = progress or (lambda _s: None)
    name = model if isinstance(model, str) else getattr(model, "deployconv_name", type(model).__name__)
    out = Path(out) if out else default_out(name, tgt.name)
    refuse_overwrite(out, force)
    opset = opts.opset or tgt.opset
    notes: list[str] = []
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def lap(key: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[key] = round(now - t, 3)
        t = now

    step("create")
    train = create_seeded(model, opts.weights, opts.allow_missing, opts.seed) if isinstance(model, str) else model.eval()
    info = model_info(train)
    batch = opts.batch if tgt.dynamic_batch else _static_batch(tgt, opts, notes)
    io = _plan_io(train, tgt, opts, batch, name)
    lap("create")
    step("reparameterize")
    deploy = reparameterize(train, probe=io.small_probe if io is not None else None)
    lap("reparameterize")
    step("export")
    example_batch = max(2, batch) if tgt.dynamic_batch else batch
    example = io.probe if io is not None else \
        torch.randn(example_batch, *info.input_size, generator=torch.Generator().manual_seed(opts.seed))
    meta = {"deployconv_version": __version__, "model": name, "target": tgt.name, "precision": tgt.precision}
    graphs, exp_info, simp_info = _export_graphs(deploy, example, tgt, opset, opts.simplifier, meta, io)
    lap("export")
    step("check")
    raw_check, final_check = check_graph(graphs.raw), check_graph(graphs.final)
    dla = None
    if tgt.uses_dla:
        from deployconv.engine.dla import check_dla_limits, dla_capability

        check_dla_limits(graphs.final, tgt)
        dla = dla_capability(graphs.final, tgt).to_dict()
    lap("check")
    step("validate")
    opts_inputs = replace_batch(opts, batch)
    if io is None:
        batches, inputs_desc = make_inputs(train, opts_inputs)
        point_sets = {"opt": batches}
    else:
        point_sets, inputs_desc = _io_batches(io, opts_inputs)
        batches = point_sets["opt"]
    simplified_label = f"onnx-{opts.simplifier} (ort-cpu)" if opts.simplifier != "none" else "onnx (ort-cpu)"
    stages = _parity_stages(train, deploy, graphs, simplified_label, opts.threads, io)
    precision = apply_precision(graphs, tgt, batches, opts, info, progress=step)
    stage_budgets = {}
    if tgt.precision == "bf16":
        notes.append(BF16_NOTE)
    if precision is not None:
        notes.extend(precision.notes)
        stages.append((precision.stage, _ort_stage(precision.checked, opts.threads) if io is None
                       else _io_ort_stage(precision.checked, opts.threads, io)))
        stage_budgets[precision.stage] = tgt.budget
    chain_budget = tgt.budget if precision is None else FP32_BUDGET
    point_outputs = {}
    for point, point_batch in point_sets.items():
        label = f"validate{'' if len(point_sets) == 1 else f' at {point}'}"
        point_outputs[point] = run_chain(stages, point_batch, chain_budget, inputs_desc,
                                         progress=lambda s, label=label: step(f"{label}: {s}"),
                                         stage_budgets=stage_budgets)
    parity = point_outputs["opt"][0]
    if len(point_sets) > 1:
        from deployconv.validate.parity import merge_points

        parity = merge_points({p: r for p, (r, _) in point_outputs.items()},
                              lambda p: io.spec.shapes_at(p, max(1, min(batch, 8))))
    if not parity.passed and parity.broke_at and parity.broke_at.startswith("onnx") and \
            isinstance(batches[0], np.ndarray):
        from deployconv.validate.bisect import first_divergence, first_divergence_between

        if parity.broke_at.startswith("onnx-raw"):
            div = first_divergence(deploy, graphs.twin_raw, batches[0], chain_budget)
        elif precision is not None and parity.broke_at == precision.stage:
            div = first_divergence_between(graphs.twin, precision.checked, batches[0], tgt.budget)
        else:
            div = first_divergence_between(graphs.twin_raw, graphs.twin, batches[0], chain_budget)
        parity.first_divergence = asdict(div) if div else {"note": "no single layer exceeded the budget"}
    lap("validate")
    artifact = precision.artifact if precision is not None else graphs.final
    ort_graph = precision.twin if precision is not None else graphs.twin
    latency = None
    if opts.bench:
        step("benchmark")
        from deployconv.validate.quick_bench import compare_runtimes

        protos = {"onnxruntime cpu" + (" (fp32)" if precision else ""): graphs.twin}
        if precision is not None:
            protos[f"onnxruntime cpu ({tgt.precision})"] = precision.twin
        if io is None:
            latency = compare_runtimes(train, deploy, protos, info.input_size, batch, opts.bench_seconds,
                                       opts.threads)
        else:
            latency = _io_latency(train, deploy, protos, io, batch, opts)
        lap("benchmark")
    report = ExportReport(
        model=name,
        target=tgt.to_dict(),
        notes=tuple(notes),
        reparam=deploy.reparam_report.to_dict(),
        export=asdict(exp_info),
        simplify=asdict(simp_info),
        graph={"raw": asdict(raw_check), "final": asdict(final_check)},
        ort_twin=_twin_report(graphs),
        precision=precision.report if precision is not None else None,
        dla=dla,
        parity=parity.to_dict(),
        latency=latency,
        timings_s=timings,
    )
    step("write")
    engine = None
    with atomic_dir(out, force) as tmp:
        onnx.save(artifact, tmp / MODEL_ONNX)
        if ort_graph is not artifact:
            (tmp / ORT_DIR).mkdir()
            onnx.save(ort_graph, tmp / ORT_MODEL)
        _save_reference(tmp / REFERENCE, point_sets, point_outputs, io)
        if tgt.runtime == "tensorrt":
            step("engine")
            engine = _engine_step(tmp, out, tgt, opts, io, requested={
                "precision": tgt.precision, "precision_report": precision.manifest if precision is not None else None,
                "dla": dla})
            report = replace(report, engine=engine)
            lap("engine")
        (tmp / REPORT).write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
        write_manifest(tmp, Manifest(
            format=EXPORT_FORMAT,
            model=name,
            model_source_sha256=_source_sha256(model),
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
            opset=opset,
            batch=None if tgt.dynamic_batch else batch,
            exporter=exp_info.exporter,
            exporter_fallback_reason=exp_info.fallback_reason,
            lowering=exp_info.lowering,
            plugins=_plugins_used(artifact),
            ort_model=ORT_MODEL if ort_graph is not artifact else MODEL_ONNX,
            precision_report=precision.manifest if precision is not None else None,
            dla=dla,
            engine=engine,
            io=io_signature(artifact),
            io_spec=io.to_manifest() if io is not None else None,
            input_preprocessing={k: getattr(info, k) for k in ("input_size", "mean", "std", "interpolation", "crop_pct")},
            parity_passed=parity.passed,
        ))
    lap("write")
    result = ExportResult(out, report.to_dict(), parity.passed, timings)
    if engine is not None and not engine.built and opts.require_engine:
        raise MissingEnvironmentError(f"no engine was built for {tgt.name}: {engine.status}",
                                      why=f"--require-engine was given; {out} holds the exported ONNX",
                                      fix=engine.how or "install TensorRT >= " + (tgt.tensorrt.min_version
                                                                                  if tgt.tensorrt else "10"))
    return result


def _source_sha256(model: str | torch.nn.Module) -> str | None:
    """sha256 of the user source file (`validate --trust-source` compares it), found without importing it."""
    from deployconv.trust.source import source_sha256

    return source_sha256(model) if isinstance(model, str) else None


def replace_batch(opts: ExportOptions, batch: int) -> ExportOptions:
    from dataclasses import replace

    return replace(opts, batch=batch)


def _twin_report(graphs: Graphs) -> dict | None:
    if not graphs.twinned:
        return None
    return {"why": "the artifact has plugin nodes ONNX Runtime cannot run; the parity chain runs the same model "
                   "with ONNX-domain lowerings (ort/model.onnx), matched node by node to the artifact",
            "alignment": graphs.alignment.to_dict()}


def _engine_step(tmp: Path, out: Path, tgt: Target, opts: ExportOptions, io: Any = None,
                 requested: dict | None = None) -> EngineEntry:
    """Build engine.plan next to model.onnx where TensorRT is installed; otherwise say so and how to build it
    (the trtexec line per TensorRT major, with the paths the user will see). A declared IOSpec's ranges are the
    optimization profile (min/opt/max per input)."""
    from deployconv.engine.builder import build_engine

    spec: Any = tgt
    if io is not None:
        from deployconv.engine.spec import engine_spec_for

        spec = engine_spec_for(tgt, shapes=io.spec.profile_shapes())
    try:
        entries = build_engine(tmp / MODEL_ONNX, spec, tmp, plugins=opts.plugins, requested=requested)
    except MissingEnvironmentError as e:
        def here(text: str) -> str:
            return here_str(text, tmp, out)

        status = "skipped: TensorRT not installed" if "not installed" in e.what else f"skipped: {here(e.what)}"
        return EngineEntry(status, what=here(e.what), why=here(e.why), how=here(e.fix),
                           trtexec=tuple(here(d) for d in e.details),
                           build_later=f"deployconv build-engine {out / MODEL_ONNX} --target {tgt.name}")
    return EngineEntry.from_build(here_str(entries, tmp, out))


def here_str(value: Any, tmp: Path, out: Path) -> Any:
    """`value` with the temporary directory's path turned into the final one (`out`), in every string however
    deeply nested in tables and lists: the engine entry is a table of tables (its messages and paths are inside
    entries["engine"]), and none of it may name a directory that is gone once the export is written."""
    if isinstance(value, str):
        return value.replace(str(tmp), str(out))
    if isinstance(value, dict):
        return {k: here_str(v, tmp, out) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(here_str(v, tmp, out) for v in value)
    return value


def _plugins_used(proto: onnx.ModelProto) -> tuple[PluginRef, ...]:
    from deployconv.plugins.table import ONNX_DOMAIN, PLUGINS

    used = sorted({n.op_type for n in proto.graph.node if n.domain == ONNX_DOMAIN})
    return tuple(PluginRef(n, PLUGINS[n].version, PLUGINS[n].namespace) for n in used if n in PLUGINS)


def _plan_io(train: torch.nn.Module, tgt: Target, opts: ExportOptions, batch: int, name: str) -> Any:
    """The IOPlan for a declared spec (--input/--dim, example_inputs, a zoo backbone), None for the classic
    single image. Bad specs and targets that cannot take them fail here, before any work."""
    from deployconv.core.errors import BadInputError
    from deployconv.core.io_spec import check_for_target
    from deployconv.models.io import resolve_io
    from deployconv.pipeline.io import plan_io

    brange = (1, batch, max(tgt.max_batch, batch)) if tgt.dynamic_batch else (batch, batch, batch)
    spec = resolve_io(train, opts.inputs, opts.dims, brange)
    if spec is None:
        from deployconv.core.io_spec import default_spec
        from deployconv.models.io import run_checked

        spec = default_spec(model_info(train).input_size, brange)
        probe = tuple(torch.from_numpy(v) for v in spec.feeds("opt", batch=2, count=1, seed=opts.seed)[0].values())
        if isinstance(run_checked(train, probe, name), torch.Tensor):
            return None  # the classic single image in, one tensor out
        spec = type(spec)(spec.inputs, spec.ranges, "default")
    check_for_target(spec, tgt)
    if opts.images:
        raise BadInputError("--images feeds the classic single image input; this model declares "
                            f"{', '.join(i.describe() for i in spec.inputs)}", fix="drop --images")
    if tgt.precision in ("fp16", "int8") and len(spec.inputs) > 1:
        raise BadInputError(f"{tgt.precision} targets take single-input models for now; this one has "
                            f"{len(spec.inputs)} inputs", fix="use an fp32 target (onnx, trt-fp32)")
    return plan_io(train, spec, name, opts.seed)


def _io_batches(io: Any, opts: ExportOptions) -> tuple[dict[str, list], dict]:
    from deployconv.pipeline.io import point_batches

    size = max(1, min(opts.batch, 8))
    points = {p: point_batches(io, p, size, opts.parity_batches, opts.seed) for p in io.spec.points}
    desc = {"random": {"batches": opts.parity_batches, "batch": size, "seed": opts.seed,
                       "distribution": "N(0,1) floats, integers in [low, high), coin-flip bools",
                       "inputs": [i.describe() for i in io.spec.inputs],
                       "points": {p: io.spec.shapes_at(p, size) for p in points}}}
    return points, desc


def _parity_stages(train, deploy, graphs: Graphs, simplified_label: str, threads: int | None, io: Any) -> list:
    if io is None:
        return [*torch_stages(train, deploy),
                ("onnx-raw (ort-cpu)", _ort_stage(graphs.twin_raw, threads)),
                (simplified_label, _ort_stage(graphs.twin, threads))]
    from deployconv.pipeline.io import torch_stages as io_torch_stages

    return [*io_torch_stages(train, deploy, io),
            ("onnx-raw (ort-cpu)", _io_ort_stage(graphs.twin_raw, threads, io)),
            (simplified_label, _io_ort_stage(graphs.twin, threads, io))]


def _io_ort_stage(proto: onnx.ModelProto, threads: int | None, io: Any):
    from deployconv.pipeline.io import ort_stage

    return ort_stage(proto, threads, io.outputs.names)


def _io_latency(train, deploy, protos: dict, io: Any, batch: int, opts: ExportOptions) -> dict:
    """The short benchmark at the opt sizes, plus min and max where sizes vary."""
    from deployconv.validate.quick_bench import compare_feeds

    result: dict[str, Any] = {}
    for point in io.spec.points:
        feed = io.spec.feeds(point, batch=batch, count=1, seed=0)[0]
        row = compare_feeds(train, deploy, protos, feed, io.outputs.names, batch, opts.bench_seconds, opts.threads)
        row["shapes"] = {k: list(v.shape) for k, v in feed.items()}
        if point == "opt":
            result.update(row)
        else:
            result.setdefault("points", {})[point] = row
    return result


def _save_reference(path: Path, point_sets: dict, point_outputs: dict, io: Any) -> None:
    from deployconv.core.reference import RefPoint, save_reference

    in_names = io.spec.names if io is not None else ["input"]
    out_names = io.outputs.names if io is not None else ["output"]

    def named(x: Any, names: list[str]) -> dict[str, np.ndarray]:
        return dict(x) if isinstance(x, dict) else {names[0]: x}

    points = []
    for point, batches in point_sets.items():
        feeds = [named(b, in_names) for b in batches]
        inputs = {n: np.concatenate([f[n] for f in feeds], axis=0) for n in in_names}
        if io is None:
            inputs = {n: v.astype(np.float32) for n, v in inputs.items()}
        outs = point_outputs[point][1]
        points.append(RefPoint(point, inputs, named(outs["train-fp32"], out_names), named(outs["train-fp64"], out_names)))
    save_reference(path, points)
