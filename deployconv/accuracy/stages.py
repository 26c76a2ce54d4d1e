"""What runs each ledger stage: PyTorch train and deploy form, ONNX fp32 (raw and simplified), fp16, int8
and the TensorRT engine, each a function batch -> logits. The graphs are made the way `deployconv export`
makes them (same exporter, simplifier, fp16 guard, int8 quantizer); a stage this machine cannot run is
returned as Skipped with the reason.

fp16 runs the mixed fp16 graph on ONNX Runtime's CUDA provider where onnxruntime-gpu and a GPU exist (the
real fp16 path). On a CPU, ORT would silently compute the fp16 islands in fp32, so the stage runs the
emulation twin (fp16 rounding of every fp16 tensor, fp16 accumulation inside fp16 reductions) and is
labelled "emulated".
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from deployconv.accuracy.ledger import Skipped
from deployconv.core.artifacts.names import ENGINE, MODEL_ONNX
from deployconv.core.errors import BadInputError, DeployconvError
from deployconv.core.target import get_target
from deployconv.engine.builder import build_engine
from deployconv.export.onnx_export import export_onnx
from deployconv.export.precision.fp16 import ensure_node_names
from deployconv.export.precision.fp16_emulate import emulation_twin
from deployconv.export.precision.fp16_guard import FP16_BUDGET, guard_fp16
from deployconv.export.precision.int8 import quantize_int8
from deployconv.export.simplify import simplify
from deployconv.reparam import reparameterize
from deployconv.runtime.ort import OrtRunner
from deployconv.runtime.trt import TrtRunner

STAGES = ("train", "deploy", "onnx", "simplified", "fp16", "int8", "engine")
Run = Callable[[np.ndarray], np.ndarray]


@dataclass
class Stage:
    name: str
    label: str
    run: Run
    emulated: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class StageOptions:
    stages: tuple[str, ...] = STAGES
    simplifier: str = "onnxslim"
    opset: int | None = None
    threads: int | None = None
    int8_keep: tuple[str, ...] = ()  # node names / patterns kept float in the int8 stage
    int8_method: str = "minmax"
    graphs: dict[str, onnx.ModelProto] = field(default_factory=dict)  # given graphs replace built ones
    graph_source: str = "given"  # where the given graphs came from, for the stage label


def parse_stages(text: str | None) -> tuple[str, ...]:
    if not text:
        return STAGES
    wanted = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        raise BadInputError(f"unknown stage(s) {', '.join(unknown)}", fix=f"choose from {','.join(STAGES)}")
    return tuple(s for s in STAGES if s in wanted)  # always in pipeline order


def _first(out: Any) -> Any:
    return out[0] if isinstance(out, (tuple, list)) else out


def torch_run(module: Any) -> Run:
    import torch

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return _first(module(torch.from_numpy(batch))).float().numpy()

    return run


def ort_run(proto: onnx.ModelProto, threads: int | None = None, providers: list[str] | None = None) -> Run:

    runner = OrtRunner(proto.SerializeToString(), threads=threads, providers=providers).activate()
    name, meta = next(iter(runner.input_metadata().items()))
    dtype = meta.dtype or np.float32

    def run(batch: np.ndarray) -> np.ndarray:
        return np.asarray(_first(list(runner.infer({name: batch.astype(dtype)}).values())), np.float32)

    return run


def _has_cuda_ort() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


@dataclass
class Graphs:
    """The ONNX graphs the stages share (built once)."""

    raw: onnx.ModelProto
    simplified: onnx.ModelProto


def export_graphs(deploy: Any, input_size: tuple[int, ...], opts: StageOptions) -> Graphs:
    import torch

    tgt = get_target("onnx")
    example = torch.randn(2, *input_size, generator=torch.Generator().manual_seed(0))
    raw, _ = export_onnx(deploy, example, tgt, opts.opset or tgt.opset)
    simplified, _ = simplify(raw, opts.simplifier)
    return Graphs(raw, simplified)


def fp16_stage(fp32: onnx.ModelProto, calib: np.ndarray, threads: int | None) -> Stage:
    """The guarded mixed fp16 graph (what `export --target onnx-fp16` writes), on the real fp16 path or
    emulated."""

    mixed, rep = guard_fp16(ensure_node_names(_copy(fp32)), [calib[:16]], FP16_BUDGET, io_dtype="fp32")
    note = f"{rep.fp16_nodes}/{rep.nodes} nodes fp16, {len(rep.kept_fp32)} kept fp32 by the guard"
    if _has_cuda_ort():
        return Stage("fp16", "ONNX Runtime CUDA, fp16", ort_run(mixed, threads, ["CUDAExecutionProvider"]),
                     notes=[note])
    return Stage("fp16", "ONNX Runtime CPU, fp16 emulated (every fp16 tensor rounded; fp16 reductions accumulate in fp16)",
                 ort_run(emulation_twin(mixed), threads), emulated=True, notes=[note])


def given_fp16(mixed: onnx.ModelProto, opts: StageOptions) -> Stage:
    """A given mixed fp16 graph: on the CUDA provider where present, else its emulation twin (ORT CPU would
    compute its fp16 islands in fp32)."""

    if _has_cuda_ort():
        return Stage("fp16", f"fp16 graph from {opts.graph_source}, ONNX Runtime CUDA",
                     ort_run(mixed, opts.threads, ["CUDAExecutionProvider"]))
    return Stage("fp16", f"fp16 graph from {opts.graph_source}, ONNX Runtime CPU, fp16 emulated",
                 ort_run(emulation_twin(mixed), opts.threads), emulated=True)


def int8_graph(fp32: onnx.ModelProto, calib: Any, opts: StageOptions) -> tuple[onnx.ModelProto, str]:

    q, rep = quantize_int8(fp32, calib, method=opts.int8_method, activation="int8-symmetric",
                           exclude_nodes=opts.int8_keep)
    return q, (f"{len(rep.quantized_nodes)}/{rep.weighted_total} weighted layers int8 (Q/DQ, {rep.method} on "
               f"{len(calib)} {calib.source} samples), {len(rep.excluded_nodes)} kept float")


def _copy(proto: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    return out


def engine_stage(fp32: onnx.ModelProto, workdir: Path) -> Stage | Skipped:
    """TensorRT fp16 engine from the simplified graph. UNVERIFIED here (no TensorRT on the build machine):
    written against deployconv's own build_engine / TrtRunner, which follow the documented API."""
    if importlib.util.find_spec("tensorrt") is None:
        return Skipped("engine", "TensorRT is not installed here; run `deployconv eval` on the target device")

    path = workdir / MODEL_ONNX
    onnx.save(fp32, path)
    try:
        entries = build_engine(path, get_target("trt-fp16"), workdir, force=True)
        runner = TrtRunner(workdir / ENGINE).activate()
    except DeployconvError as e:
        return Skipped("engine", f"engine build failed: {e.what}")
    name = next(iter(runner.input_metadata()))

    def run(batch: np.ndarray) -> np.ndarray:
        return np.asarray(_first(list(runner.infer({name: batch}).values())), np.float32)

    return Stage("engine", "TensorRT fp16 engine (unverified path)", run,
                 notes=[f"built with {entries.get('engine', {}).get('tensorrt_version', 'TensorRT')}"])


def build_stages(train: Any, input_size: tuple[int, ...], calib: Any, opts: StageOptions,
                 workdir: Path | None = None, progress: Callable[[str], None] | None = None
                 ) -> tuple[list[Stage], list[Skipped]]:
    """The runnable stages in pipeline order and the ones skipped (with why). `calib` is a
    CalibrationData of real images (int8 calibration, fp16 guard)."""
    step = progress or (lambda _s: None)

    wanted = set(opts.stages)
    stages: list[Stage] = []
    skipped: list[Skipped] = []
    step("reparameterize")
    deploy = reparameterize(train)
    if "train" in wanted:
        stages.append(Stage("train", "PyTorch fp32, train form", torch_run(train)))
    if "deploy" in wanted:
        stages.append(Stage("deploy", "PyTorch fp32, deploy form (reparameterized)", torch_run(deploy)))
    onnx_needed = wanted & {"onnx", "simplified", "fp16", "int8", "engine"}
    if not onnx_needed:
        return stages, skipped
    step("export ONNX")
    graphs = export_graphs(deploy, input_size, opts)
    if "onnx" in wanted:
        stages.append(Stage("onnx", "ONNX fp32, ONNX Runtime CPU", ort_run(graphs.raw, opts.threads)))
    if "simplified" in wanted:
        if opts.simplifier == "none":
            skipped.append(Skipped("simplified", "--simplifier none"))
        else:
            stages.append(Stage("simplified", f"ONNX fp32 after {opts.simplifier}, ONNX Runtime CPU",
                                ort_run(graphs.simplified, opts.threads)))
    if "fp16" in wanted:
        step("fp16: convert and guard")
        if "fp16" in opts.graphs:
            stages.append(given_fp16(opts.graphs["fp16"], opts))
        else:
            stages.append(fp16_stage(graphs.simplified, calib.array, opts.threads))
    if "int8" in wanted:
        step("int8: calibrate and quantize")
        if "int8" in opts.graphs:
            stages.append(Stage("int8", f"int8 graph from {opts.graph_source}, ONNX Runtime CPU",
                                ort_run(opts.graphs["int8"], opts.threads)))
        else:
            q, note = int8_graph(graphs.simplified, calib, opts)
            stages.append(Stage("int8", "ONNX int8 Q/DQ, ONNX Runtime CPU", ort_run(q, opts.threads),
                                notes=[note, *([calib.warning] if calib.warning else [])]))
    if "engine" in wanted:
        with tempfile.TemporaryDirectory(prefix="deployconv-eval-") as tmp:
            res = engine_stage(graphs.simplified, Path(workdir or tmp))
        (stages if isinstance(res, Stage) else skipped).append(res)
    return stages, skipped
