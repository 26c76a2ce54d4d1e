"""The export front door: create -> reparameterize -> export -> simplify -> check -> validate -> (bench).

Writes OUT/model.onnx, OUT/reference.npz (inputs + expected outputs for on-device parity), OUT/report.json and
OUT/manifest.json into a temporary directory that replaces OUT only when everything was written.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from deployconv import __version__
from deployconv.atomic import atomic_dir, refuse_overwrite, safe_name
from deployconv.export.graph_checks import check_graph
from deployconv.export.manifest import io_signature, sha256_file, write_manifest
from deployconv.export.onnx_export import export_onnx, set_metadata
from deployconv.export.simplify import simplify
from deployconv.export.targets import Target, get_target
from deployconv.models.registry import model_info

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
    name = next(iter(runner.input_metadata()))

    def run(batch: np.ndarray) -> np.ndarray:
        return np.asarray(next(iter(runner.infer({name: batch.astype(np.float32)}).values())), dtype=np.float64)

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


def export(model: str | torch.nn.Module, target: str | Target, out: Path | None = None, *,
           options: ExportOptions | None = None, force: bool = False,
           progress: Callable[[str], None] | None = None) -> ExportResult:
    """Run the whole pipeline for `model` (zoo name, user source or nn.Module) and `target`."""
    from deployconv.reparam import reparameterize
    from deployconv.validate.parity import run_chain

    opts = options or ExportOptions()
    tgt = target if isinstance(target, Target) else get_target(target)
    step = progress or (lambda _s: None)
    name = model if isinstance(model, str) else getattr(model, "deployconv_name", type(model).__name__)
    out = Path(out) if out else default_out(name, tgt.name)
    refuse_overwrite(out, force)
    opset = opts.opset or tgt.opset
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def lap(key: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[key] = round(now - t, 3)
        t = now

    step("create")
    train = create_seeded(model, opts.weights, opts.allow_missing, opts.seed) if isinstance(model, str) else model.eval()
    lap("create")
    step("reparameterize")
    deploy = reparameterize(train)
    lap("reparameterize")
    step("export")
    info = model_info(train)
    example = torch.randn(max(2, opts.batch), *info.input_size, generator=torch.Generator().manual_seed(opts.seed))
    raw, exp_info = export_onnx(deploy, example, tgt, opset)
    meta = {"deployconv_version": __version__, "model": name, "target": tgt.name,
            "lowering": json.dumps(exp_info.lowering, sort_keys=True)}
    set_metadata(raw, meta)
    lap("export")
    step("check")
    raw_check = check_graph(raw)
    lap("check_raw")
    step(f"simplify ({opts.simplifier})")
    simplified, simp_info = simplify(raw, opts.simplifier)
    set_metadata(simplified, meta)
    final_check = check_graph(simplified)
    lap("simplify")
    step("validate")
    batches, inputs_desc = make_inputs(train, opts)
    stages = [
        *torch_stages(train, deploy),
        ("onnx-raw (ort-cpu)", _ort_stage(raw, opts.threads)),
        (f"onnx-{opts.simplifier} (ort-cpu)" if opts.simplifier != "none" else "onnx (ort-cpu)",
         _ort_stage(simplified, opts.threads)),
    ]
    parity, outputs = run_chain(stages, batches, tgt.budget, inputs_desc, progress=lambda s: step(f"validate: {s}"))
    if not parity.passed and parity.broke_at and parity.broke_at.startswith("onnx"):
        from deployconv.validate.bisect import first_divergence, first_divergence_between

        if parity.broke_at.startswith("onnx-raw"):
            div = first_divergence(deploy, raw, batches[0], tgt.budget)
        else:
            div = first_divergence_between(raw, simplified, batches[0], tgt.budget)
        parity.first_divergence = asdict(div) if div else {"note": "no single layer exceeded the budget"}
    lap("validate")
    latency = None
    if opts.bench:
        step("benchmark")
        from deployconv.validate.quick_bench import compare_runtimes

        latency = compare_runtimes(train, deploy, simplified, info.input_size, opts.batch, opts.bench_seconds,
                                   opts.threads)
        lap("benchmark")
    report = {
        "model": name,
        "target": tgt.to_dict(),
        "reparam": deploy.reparam_report.to_dict(),
        "export": asdict(exp_info),
        "simplify": asdict(simp_info),
        "graph": {"raw": asdict(raw_check), "final": asdict(final_check)},
        "parity": parity.to_dict(),
        "latency": latency,
        "timings_s": timings,
    }
    step("write")
    ref_inputs = np.concatenate(batches, axis=0).astype(np.float32)
    with atomic_dir(out, force) as tmp:
        onnx.save(simplified, tmp / "model.onnx")
        np.savez_compressed(tmp / "reference.npz", input=ref_inputs,
                            expected=outputs["train-fp32"].astype(np.float32),
                            expected_fp64=outputs["train-fp64"])
        (tmp / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        write_manifest(tmp, {
            "format": "deployconv.export/1",
            "model": name,
            "weights": str(Path(opts.weights).resolve()) if opts.weights else None,
            "weights_sha256": sha256_file(Path(opts.weights)) if opts.weights else None,
            "allow_missing": list(opts.allow_missing),
            "reproducible": isinstance(model, str),
            "init_seed": opts.seed,
            "target": tgt.name,
            "runtime": tgt.runtime,
            "precision": tgt.precision,
            "opset": opset,
            "exporter": exp_info.exporter,
            "exporter_fallback_reason": exp_info.fallback_reason,
            "lowering": exp_info.lowering,
            "plugins": _plugins_used(simplified),
            "io": io_signature(simplified),
            "input_preprocessing": {k: getattr(info, k) for k in ("input_size", "mean", "std", "interpolation", "crop_pct")},
            "parity_passed": parity.passed,
        })
    lap("write")
    return ExportResult(out, report, parity.passed, timings)


def _plugins_used(proto: onnx.ModelProto) -> list[dict]:
    from deployconv.plugins.table import ONNX_DOMAIN, PLUGINS

    used = sorted({n.op_type for n in proto.graph.node if n.domain == ONNX_DOMAIN})
    return [{"name": n, "version": PLUGINS[n].version, "namespace": PLUGINS[n].namespace} for n in used if n in PLUGINS]
