"""`deployconv eval`: the accuracy ledger of a model (or an exported directory's model) on a labelled
ImageFolder, every stage this machine can run, with intervals and paired significance.

Also `deployconv debug precision` (the `debug` sub-group). The accuracy and export machinery needs torch and
onnx, so those modules are imported when a command runs. Exit codes: 0 done (and within --max-drop when given), 1 a stage lost
more than --max-drop points with significance, 2 bad input, 3 missing environment.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from deployconv.accuracy.dataset import scan_image_folder, stream_batches
from deployconv.accuracy.ledger import gate_drops
from deployconv.accuracy.markdown import HEADERS, rows
from deployconv.accuracy.markdown import to_markdown as ledger_markdown
from deployconv.cli.errors import command_group
from deployconv.cli.options import (
    AllowMissingOpt,
    ForceOpt,
    JsonOpt,
    MarkdownOpt,
    SimplifierOpt,
    WeightsOpt,
    batch_option,
    calib_option,
    calib_samples_option,
    limit_option,
    max_drop_option,
    out_option,
    target_option,
    workers_option,
)
from deployconv.core.artifacts.names import MANIFEST, REPORT
from deployconv.core.console import err, out, print_json, table
from deployconv.core.errors import BadInputError, CheckFailedError
from deployconv.core.fsio import atomic_dir, refuse_overwrite, safe_name, write_text_atomic
from deployconv.core.target import TARGET_DIR, get_target
from deployconv.export.precision.calibration import calibration_from_images
from deployconv.models.registry import model_info
from deployconv.report.accuracy_section import accuracy_page
from deployconv.trust.manifest import read_manifest

DataOpt = Annotated[Path, typer.Option("--data", "-d", help="ImageFolder: DATA/<class>/<image>.", show_default=False)]
LabelsOpt = Annotated[Path | None, typer.Option(
    "--labels", help="Class-index file: ImageNet's imagenet_class_index.json, a JSON {name: index} or [names], "
                     "or one class per line. Default: sorted folder names.")]
StagesOpt = Annotated[str | None, typer.Option(
    "--stages", help="Comma list of train,deploy,onnx,simplified,fp16,int8,engine (default: all).")]
LimitOpt = Annotated[int | None, limit_option("A seeded random subset of N images.")]
BatchOpt = Annotated[int, batch_option("Images per batch.")]
WorkersOpt = Annotated[int | None, workers_option("Decode threads (default: CPUs, max 8).")]
IntervalOpt = Annotated[str, typer.Option("--interval", help="wilson | bootstrap.")]
CalibOpt = Annotated[Path | None, calib_option(
    "Held-out images for int8 calibration and the fp16 guard (default: a sample of --data).")]
CalibSamplesOpt = Annotated[int, calib_samples_option("Calibration images.")]
KeepOpt = Annotated[list[str] | None, typer.Option(
    "--int8-keep", help="Node name or pattern kept float in the int8 stage (repeatable).")]
OutOpt = Annotated[Path | None, out_option(
    "Directory for report.json, accuracy.md and accuracy.html (default: deployconv_out/<model>-eval).")]
MaxDropOpt = Annotated[float | None, max_drop_option(
    "Exit 1 when a stage's top-1 is more than this many points below fp32, significantly.")]


@dataclass
class _Source:
    """What `eval` evaluates: a model, and for an exported DIR its weights and reduced-precision graph."""

    model: str
    weights: Path | None = None
    allow_missing: tuple[str, ...] = ()
    graphs: dict[str, Any] = field(default_factory=dict)
    graph_source: str = "given"


def _resolve_model(target: str) -> _Source:
    """MODEL, or an exported DIR: its manifest names the model, weights and the reduced-precision graph."""
    path = Path(target)
    if not path.is_dir():
        return _Source(target)
    if not (path / MANIFEST).is_file():
        raise BadInputError(f"{path} is a directory without manifest.json",
                            fix="pass a model name / file.py:factory, or a directory written by `deployconv export`")
    manifest = read_manifest(path)
    if not manifest.reproducible:
        raise BadInputError(f"{path} was exported from an in-memory module", why="its model cannot be rebuilt",
                            fix="pass the model source (file.py:factory) and --weights instead")
    graphs: dict[str, Any] = {}
    graph_file = path / manifest.ort_model
    if manifest.precision in ("fp16", "int8"):
        import onnx

        graphs[manifest.precision] = onnx.load(str(graph_file))
    weights = manifest.weights
    return _Source(manifest.model, Path(weights) if weights else None, manifest.allow_missing,
                   graphs, str(graph_file))


def eval_cmd(
    model: Annotated[str, typer.Argument(help="Zoo name, file.py:factory, or a directory written by `export`.")],
    data: DataOpt,
    weights: WeightsOpt = None,
    allow_missing: AllowMissingOpt = None,
    labels: LabelsOpt = None,
    stages: StagesOpt = None,
    limit: LimitOpt = None,
    batch: BatchOpt = 32,
    workers: WorkersOpt = None,
    interval: IntervalOpt = "wilson",
    calib: CalibOpt = None,
    calib_samples: CalibSamplesOpt = 64,
    int8_keep: KeepOpt = None,
    simplifier: SimplifierOpt = "onnxslim",
    out_dir: OutOpt = None,
    markdown: MarkdownOpt = None,
    max_drop: MaxDropOpt = None,
    json_out: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """Top-1/top-5 of every stage (train, deploy, ONNX, simplified, fp16, int8, engine) on a labelled image
    folder, with 95% intervals, the change vs the previous stage and vs fp32 (exact McNemar) and agreement."""
    _eval(model, data, weights=weights, allow_missing=tuple(allow_missing or ()), labels=labels, stages=stages,
          limit=limit, batch=batch, workers=workers, interval=interval, calib=calib, calib_samples=calib_samples,
          int8_keep=tuple(int8_keep or ()), simplifier=simplifier, out_dir=out_dir, markdown=markdown,
          max_drop=max_drop, json_out=json_out, force=force)


def _eval(model: str, data: Path, *, weights: Path | None, allow_missing: tuple[str, ...], labels: Path | None,
          stages: str | None, limit: int | None, batch: int, workers: int | None, interval: str,
          calib: Path | None, calib_samples: int, int8_keep: tuple[str, ...], simplifier: str,
          out_dir: Path | None, markdown: Path | None, max_drop: float | None, json_out: bool, force: bool) -> None:
    from deployconv.accuracy.evaluate import EvalOptions, evaluate  # torch, onnx
    from deployconv.accuracy.stages import StageOptions, parse_stages

    src = _resolve_model(model)
    name = src.model
    out_dir = out_dir or Path("deployconv_out") / f"{safe_name(Path(model).name if Path(model).is_dir() else model)}-eval"
    refuse_overwrite(out_dir, force)
    if markdown is not None:
        refuse_overwrite(markdown, force)
    opts = EvalOptions(labels=labels, limit=limit, batch=batch, workers=workers, interval=interval, calib=calib,
                       calib_samples=calib_samples,
                       stage=StageOptions(stages=parse_stages(stages), simplifier=simplifier, int8_keep=int8_keep,
                                          graphs=src.graphs, graph_source=src.graph_source))
    progress = Progress(TextColumn("[bold]eval[/]"), BarColumn(), MofNCompleteColumn(), _SpeedColumn(),
                        TimeRemainingColumn(), console=err, transient=False)
    task = None
    with progress:
        def on_start(total: int) -> None:
            nonlocal task
            task = progress.add_task("images", total=total)

        def on_batch(n: int) -> None:
            if task is not None:
                progress.advance(task, n)

        ledger = evaluate(name, data, opts, weights=weights or src.weights,
                          allow_missing=allow_missing or src.allow_missing,
                          status=lambda s: progress.console.print(f"[dim]{s}[/]", highlight=False),
                          on_start=on_start, on_batch=on_batch)
    result = ledger.to_dict()
    text = ledger_markdown(result, f"Accuracy ledger: {name}")
    used_weights = weights or src.weights
    report = {"model": name, "weights": str(used_weights) if used_weights else None,
              "accuracy": result}
    with atomic_dir(out_dir, force) as tmp:
        (tmp / REPORT).write_text(json.dumps(report, indent=2, default=str) + "\n")
        (tmp / "accuracy.md").write_text(text)
        (tmp / "accuracy.html").write_text(accuracy_page(result, f"deployconv eval: {name}"), encoding="utf-8")
    if markdown is not None:
        write_text_atomic(markdown, text)
    if json_out:
        print_json({"out": str(out_dir), **report})
    else:
        out.print(table(f"accuracy ledger: {name} ({ledger.images:,} images)", HEADERS, rows(result)))
        for s in ledger.skipped:
            err.print(f"[yellow]not run:[/] {s.name}: {s.reason}", highlight=False)
        for n in ledger.notes:
            err.print(f"[yellow]note:[/] {n}", highlight=False)
        err.print(f"written: {out_dir}/report.json, accuracy.md, accuracy.html", highlight=False)
    if max_drop is not None:
        failed = [v for v in gate_drops(result, max_drop) if v.failed]
        if failed:
            raise CheckFailedError(f"{len(failed)} stage(s) lost more than {max_drop} top-1 points vs fp32 "
                                   "with significance",
                                   details=[f"{v.stage}: -{v.drop_pts:.2f} pts vs {v.against} (p={v.p_value:.3g})"
                                            for v in failed])


debug_app = command_group(help="Debug tools: find what costs accuracy and what fixes it.")


@debug_app.command("precision")
def precision_cmd(
    model: Annotated[str, typer.Argument(help="Zoo name or file.py:factory.")],
    data: DataOpt,
    weights: WeightsOpt = None,
    allow_missing: AllowMissingOpt = None,
    labels: LabelsOpt = None,
    calib: CalibOpt = None,
    calib_samples: CalibSamplesOpt = 64,
    limit: Annotated[int, limit_option("Images of --data in the split (seeded).")] = 1000,
    max_drop: Annotated[float, max_drop_option("Top-1 points the int8 graph may lose vs fp32.")] = 1.0,
    target: Annotated[str, target_option("The int8 target whose keep-list is chosen.")] = "onnx-int8",
    prefixes: Annotated[int, typer.Option("--prefixes", min=0, help="Ranked prefixes tried (the k most sensitive).")] = 6,
    out_dir: Annotated[Path | None, out_option("Where pareto.json/.md and the target file go.")] = None,
    json_out: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """The smallest set of layers to keep out of int8 so top-1 stays within --max-drop of fp32, at the lowest
    latency: Q/DQ edits only (TensorRT 10 and 11 alike), any subset, Pareto table, and a target file with the
    chosen keep-list for `deployconv export --target`."""
    _precision(model, data, weights=weights, allow_missing=tuple(allow_missing or ()), labels=labels, calib=calib,
               calib_samples=calib_samples, limit=limit, max_drop=max_drop, target=target, prefixes=prefixes,
               out_dir=out_dir, json_out=json_out, force=force)


def _precision(model: str, data: Path, *, weights: Path | None, allow_missing: tuple[str, ...],
               labels: Path | None, calib: Path | None, calib_samples: int, limit: int, max_drop: float,
               target: str, prefixes: int, out_dir: Path | None, json_out: bool, force: bool) -> None:
    from deployconv.accuracy.precision_search import search, to_markdown  # torch, onnx
    from deployconv.accuracy.stages import StageOptions, export_graphs
    from deployconv.pipeline.export import create_seeded
    from deployconv.reparam import reparameterize

    tgt = get_target(target)
    if tgt.precision != "int8" or tgt.quant is None:
        raise BadInputError(f"target {tgt.name} is {tgt.precision}, not int8",
                            fix="pass an int8 target (onnx-int8, trt-int8, jetson-orin-int8 or a .toml)")
    out_dir = out_dir or Path("deployconv_out") / f"{safe_name(model)}-debug-precision"
    refuse_overwrite(out_dir, force)
    folder = scan_image_folder(data, labels, limit)
    with err.status("debug precision") as status:
        def say(s: str) -> None:
            status.update(f"[bold]debug precision[/]: {s}")

        train = create_seeded(model, weights, allow_missing, 0)
        info = model_info(train)
        say("decode the split")
        parts = list(stream_batches(folder, info, 64))
        x = np.concatenate([b.array for b in parts])
        y = np.concatenate([b.labels for b in parts])
        say("export ONNX")
        graphs = export_graphs(reparameterize(train), tuple(info.input_size), StageOptions())
        cal = calibration_from_images(calib or data, info, calib_samples)
        res = search(graphs.simplified, cal, x, y, max_drop=max_drop, prefixes=prefixes, progress=say)
    result = res.to_dict()
    if calib is None:
        result["notes"].append("calibrated on images of --data itself (in-sample): pass --calib DIR")
    text = to_markdown(result)
    name = f"{tgt.name}-keep"
    with atomic_dir(out_dir, force) as tmp:
        (tmp / "pareto.json").write_text(json.dumps(result, indent=2) + "\n")
        (tmp / "pareto.md").write_text(text)
        if res.chosen is not None:
            (tmp / f"{name}.toml").write_text(_keep_target(tgt, name, res.chosen.keep, out_dir / "pareto.json"))
    if json_out:
        print_json({"out": str(out_dir), **result})
    else:
        out.print(text)
        err.print(f"written: {out_dir}/pareto.json, pareto.md" + (
            f", {name}.toml (deployconv export {model} --target {out_dir / (name + '.toml')})"
            if res.chosen is not None else ""), highlight=False)
    if res.chosen is None:
        raise CheckFailedError(f"no keep-set tried stays within {max_drop} top-1 points of fp32",
                               fix="raise --prefixes, calibrate on better data, or deploy fp16")


def _keep_target(tgt: Any, name: str, keep: list[str], evidence: Path) -> str:
    """The target's own TOML with a new name and [quant] keep_float = the chosen set (evidence in a comment)."""
    src = Path(tgt.source) if tgt.source not in (None, "built-in") else \
        TARGET_DIR / f"{tgt.name}.toml"
    lines = [f"# written by `deployconv debug precision` from {src.name}; evidence: {evidence}"]
    for line in src.read_text().splitlines():
        if re.match(r"\s*keep_float\s*=", line):
            continue
        if re.match(r"\s*name\s*=", line):
            line = f"name = {json.dumps(name)}"
        lines.append(line)
        if re.match(r"\s*\[quant\]", line):
            lines.append(f"keep_float = {json.dumps(list(keep))}")
    return "\n".join(lines) + "\n"


class _SpeedColumn(ProgressColumn):
    """images/s over the whole run so far (rich's own speed column is for bytes)."""

    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- img/s" if speed is None else f"{speed:,.0f} img/s", style="progress.data.speed")

