"""`deployconv bench`: latency of an exported model, with the conditions that make the numbers mean something.

Torch-free: nothing on this path imports torch.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from deployconv.cli.options import (
    AllowHostCodeOpt,
    ForceOpt,
    JsonOpt,
    batch_option,
    out_option,
    plugins_option,
    runtime_option,
    seed_option,
)
from deployconv.core.artifacts.names import MANIFEST
from deployconv.core.console import err, out, print_json, table
from deployconv.core.errors import BadInputError
from deployconv.core.fsio import refuse_overwrite, write_text_atomic
from deployconv.core.io_spec import IOSpec
from deployconv.runtime import load_runner, random_feed
from deployconv.runtime.timing import BenchResult, benchmark
from deployconv.runtime.trt import benchmark_trt
from deployconv.trust.manifest import read_manifest

BENCH_RUNTIMES = ("ort-cpu", "ort-cuda", "trt")  # bench times one runtime you name

RuntimeOpt = Annotated[str, runtime_option("bench", BENCH_RUNTIMES)]
BatchOpt = Annotated[int | None, batch_option("Batch for a dynamic batch dim (default 1); must equal a static batch.")]
ThreadsOpt = Annotated[int | None, typer.Option(
    "--threads", min=1, help="Intra-op threads (default: the CPUs this process may use).")]
WarmupOpt = Annotated[float, typer.Option("--warmup", min=0.0, help="Warm-up seconds before timing.")]
DurationOpt = Annotated[float | None, typer.Option(
    "--duration", help="Seconds to sample, at least 10 samples (default 3, unless --iters).")]
ItersOpt = Annotated[int | None, typer.Option("--iters", min=1, help="Number of timed runs (instead of --duration).")]
ShapeOpt = Annotated[list[str] | None, typer.Option(
    "--shape", help="NAME=DIMS for an input with dynamic dims besides the batch, e.g. x=1x3x224x224 (repeatable).")]
SeedOpt = Annotated[int, seed_option("Seed of the random inputs.")]
RepeatOpt = Annotated[int, typer.Option(
    "--repeat", min=1, help="Split the timed budget into K blocks, each in a fresh session with its own --warmup; "
                            "`deployconv gate` resamples whole blocks (K >= 10 recommended for gating).")]
OutOpt = Annotated[Path | None, out_option(
    "Also write the full result (raw samples, stats, fingerprint) as JSON, atomically.")]
BenchPluginsOpt = Annotated[list[Path] | None, plugins_option(
    "--runtime trt: plugin library the engine was built with (libdeployconv_plugins.so; repeatable).")]


def bench_cmd(
    artifact: Annotated[Path, typer.Argument(help="An exported directory (DIR/model.onnx) or a .onnx file.",
                                             show_default=False)],
    runtime: RuntimeOpt = "ort-cpu",
    batch: BatchOpt = None,
    threads: ThreadsOpt = None,
    warmup: WarmupOpt = 1.0,
    duration: DurationOpt = None,
    iters: ItersOpt = None,
    shape: ShapeOpt = None,
    seed: SeedOpt = 0,
    repeat: RepeatOpt = 1,
    plugins: BenchPluginsOpt = None,
    allow_host_code: AllowHostCodeOpt = False,
    json_out: JsonOpt = False,
    out_file: OutOpt = None,
    force: ForceOpt = False,
) -> None:
    """Measure latency: median, mean, p90, p99, min, max, std, CV and throughput, with the environment
    fingerprint (CPU, cores, threads, runtime version, graph hash). Inputs are seeded random data. On TensorRT
    the GPU time is also split into H2D copies, compute and D2H copies (CUDA events)."""
    _bench(artifact, runtime=runtime, batch=batch, threads=threads, warmup=warmup, duration=duration, iters=iters,
           shape=shape, seed=seed, repeat=repeat, json_out=json_out, out_file=out_file, force=force,
           plugins=[str(p) for p in plugins] if plugins else None, allow_host_code=allow_host_code)


def parse_shapes(items: list[str] | None) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items or []:
        name, sep, dims = item.partition("=")
        if not sep or not name or not re.fullmatch(r"\d+([x,]\d+)*", dims):
            raise BadInputError(f"bad --shape {item!r}", fix="use NAME=DIMS, e.g. --shape x=1x3x224x224")
        shapes[name] = tuple(int(d) for d in re.split(r"[x,]", dims))
    return shapes


def _bench(artifact: Path, *, runtime: str, batch: int | None, threads: int | None, warmup: float,
           duration: float | None, iters: int | None, shape: list[str] | None, seed: int, repeat: int,
           json_out: bool, out_file: Path | None, force: bool, plugins: list[str] | None = None,
           allow_host_code: bool = False) -> None:
    if duration is not None and iters is not None:
        raise BadInputError("--duration and --iters both given", fix="give one: a time budget or a run count")
    if out_file is not None:
        refuse_overwrite(out_file, force)
    shapes = parse_shapes(shape) or declared_shapes(artifact, batch)
    runner = load_runner(artifact, runtime=runtime, threads=threads, plugins=plugins, allow_host_code=allow_host_code)
    split = None
    with runner:
        feed = random_feed(runner.input_metadata(), batch=batch, shapes=shapes, seed=seed)
        kwargs: dict[str, Any] = dict(warmup_s=warmup, duration_s=duration, iters=iters, batch=batch, repeat=repeat,
                                      conditions={"artifact": str(artifact), "model_file": str(runner.source),
                                                  "requested_runtime": runtime, "seed": seed})
        if runner.runtime == "tensorrt":  # the TrtRunner: host wall time plus its H2D / compute / D2H split
            trt_result = benchmark_trt(runner, feed, **kwargs)  # type: ignore[arg-type]
            result, split = trt_result.bench, trt_result.split
            data = trt_result.to_dict()
        else:
            result = benchmark(runner, feed, **kwargs)
            data = result.to_dict()
    if out_file is not None:
        write_text_atomic(out_file, json.dumps(data, indent=2) + "\n")
    for note in noise_notes(result):
        err.print(f"[yellow]note:[/] {note}", highlight=False)
    if json_out:
        print_json(data)
    else:
        render(result, out)
        if split is not None:
            render_split(split, out)
    if out_file is not None:
        err.print(f"saved {out_file}", highlight=False)


def declared_shapes(artifact: Path, batch: int | None) -> dict[str, tuple[int, ...]]:
    """An export with declared sizes (manifest io_spec) is timed at its opt shapes unless --shape says otherwise."""
    if not (Path(artifact) / MANIFEST).is_file():
        return {}
    io = read_manifest(Path(artifact)).io_spec
    if not io:
        return {}
    spec = IOSpec.from_dict(io)
    if all(spec.is_batch_symbol(s) for s in spec.dynamic_symbols()):
        return {}
    return spec.shapes_at("opt", batch or 1)


def noise_notes(result: BenchResult) -> list[str]:
    """Warnings for a reader of the numbers: a noisy run, a busy machine."""
    notes = []
    s, fp = result.stats, result.fingerprint
    if s.cv > 0.05:
        notes.append(f"noisy run: CV {s.cv:.1%} (> 5%); compare medians, and prefer a quiet machine")
    if fp.load_avg is not None and fp.load_avg[0] > 0.5 * fp.cpu_affinity:
        notes.append(f"busy machine: load average {fp.load_avg[0]:.2f} at start on {fp.cpu_affinity} CPU(s)")
    if s.count < 10:
        notes.append(f"only {s.count} samples: p90/p99 are rough")
    return notes


def render_split(split: Any, console: Any) -> None:
    """The TensorRT GPU timeline (a runtime.trt.SplitStats): medians and p99 of each part, in ms."""
    rows = [[name, f"{s.median_ms:,.3f}", f"{s.p99_ms:,.3f}", f"{s.mean_ms:,.3f}"]
            for name, s in (("H2D copies", split.h2d), ("GPU compute", split.compute), ("D2H copies", split.d2h),
                            ("H2D + compute + D2H", split.gpu_total))]
    console.print(table(f"GPU time per inference (ms; {split.timer})", ["part", "median", "p99", "mean"], rows,
                        justify_right=["median", "p99", "mean"]))


def render(result: BenchResult, console: Any) -> None:
    s, fp, c = result.stats, result.fingerprint, result.conditions

    # sub-millisecond runs read better in microseconds
    unit, scale = ("µs", 1000.0) if s.median_ms < 1.0 else ("ms", 1.0)

    def ms(v: float) -> str:
        return f"{v * scale:,.3f}" if v * scale < 100 else f"{v * scale:,.1f}"

    rows = [["median", ms(s.median_ms)], ["mean", ms(s.mean_ms)], ["p90", ms(s.p90_ms)], ["p95", ms(s.p95_ms)],
            ["p99", ms(s.p99_ms)], ["min", ms(s.min_ms)], ["max", ms(s.max_ms)], ["std", ms(s.std_ms)],
            ["CV", f"{s.cv:.1%}"],
            ["throughput", "-" if s.throughput is None else f"{s.throughput:,.1f} img/s (batch {s.batch})"]]
    console.print(table(f"latency ({unit}), {s.count} runs", ["stat", "value"], rows, justify_right=["value"]))

    inputs = ", ".join(f"{n}: {d['dtype']}[{', '.join(map(str, d['shape']))}]" for n, d in c["inputs"].items())
    if c["mode"] == "iters":
        timing = f"{s.count} runs in {c['timed_elapsed_s']:.3g} s"
    else:
        timing = f"{s.count} runs in {c['timed_elapsed_s']:.3g} s (for {c['duration_s_requested']:g} s)"
    timing += f" after {c['warmup_elapsed_s']:.3g} s warm-up ({c['warmup_iters']} runs)"
    if c.get("repeat", 1) > 1:
        timing += f", in {c['repeat']} blocks of a fresh session each"
    clock = ", ".join(x for x in (
        fp.cpu_governor and f"governor {fp.cpu_governor}",
        fp.cpu_freq_mhz and f"{fp.cpu_freq_mhz:g} MHz",
        fp.cpu_max_freq_mhz and f"max {fp.cpu_max_freq_mhz:g} MHz") if x) or "not readable"
    cond = [
        ["model", c.get("model_file", c.get("artifact", "-"))],
        ["runtime", f"{fp.runtime} {fp.runtime_version} ({', '.join(fp.providers)})"],
        ["threads", f"{fp.threads} intra-op, 1 inter-op, sequential"],
        ["inputs", inputs],
        ["timing", timing],
        ["CPU", f"{fp.cpu_model}: {fp.cpu_logical_cores} logical cores, {fp.cpu_affinity} usable"],
        ["clock", clock],
        ["load avg at start", "-" if fp.load_avg is None else " / ".join(f"{x:.2f}" for x in fp.load_avg)],
        ["software", f"python {fp.python}, numpy {fp.numpy}, onnxruntime {fp.onnxruntime}"],
        ["OS", fp.os],
        ["graph sha256", f"{fp.graph_sha256[:16]}… (full hash in --json)" if fp.graph_sha256 else "-"],
    ]
    if fp.external_data_sha256:
        cond.append(["weights sha256", f"{fp.external_data_sha256[:16]}… (external data files)"])
    console.print(table("conditions", ["condition", "value"], cond))

