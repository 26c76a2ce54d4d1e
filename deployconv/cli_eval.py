"""`deployconv eval`: the accuracy ledger of a model (or an exported directory's model) on a labelled
ImageFolder, every stage this machine can run, with intervals and paired significance.

Registered in cli.py like cli_gate. Exit codes: 0 done (and within --max-drop when given), 1 a stage lost
more than --max-drop points with significance, 2 bad input, 3 missing environment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import ProgressColumn
from rich.text import Text

DataOpt = Annotated[Path, typer.Option("--data", "-d", help="ImageFolder: DATA/<class>/<image>.", show_default=False)]
LabelsOpt = Annotated[Path | None, typer.Option(
    "--labels", help="Class-index file: ImageNet's imagenet_class_index.json, a JSON {name: index} or [names], "
                     "or one class per line. Default: sorted folder names.")]
StagesOpt = Annotated[str | None, typer.Option(
    "--stages", help="Comma list of train,deploy,onnx,simplified,fp16,int8,engine (default: all).")]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="A seeded random subset of N images.")]
BatchOpt = Annotated[int, typer.Option("--batch", "-b", min=1, help="Images per batch.")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", min=1, help="Decode threads (default: CPUs, max 8).")]
IntervalOpt = Annotated[str, typer.Option("--interval", help="wilson | bootstrap.")]
CalibOpt = Annotated[Path | None, typer.Option(
    "--calib", help="Held-out images for int8 calibration and the fp16 guard (default: a sample of --data).")]
CalibSamplesOpt = Annotated[int, typer.Option("--calib-samples", min=1, help="Calibration images.")]
KeepOpt = Annotated[list[str] | None, typer.Option(
    "--int8-keep", help="Node name or pattern kept float in the int8 stage (repeatable).")]
OutOpt = Annotated[Path | None, typer.Option(
    "--out", "-o", help="Directory for report.json, accuracy.md and accuracy.html (default: "
                        "deployconv_out/<model>-eval).")]
MarkdownOpt = Annotated[Path | None, typer.Option("--markdown", help="Also write the markdown summary here (CI).")]
MaxDropOpt = Annotated[float | None, typer.Option(
    "--max-drop", help="Exit 1 when a stage's top-1 is more than this many points below fp32, significantly.")]


def _resolve_model(target: str) -> tuple[str, Path | None, tuple[str, ...], dict[str, Any]]:
    """MODEL, or an exported DIR: its manifest names the model, weights and the reduced-precision graph."""
    from deployconv.errors import BadInputError

    path = Path(target)
    if not path.is_dir():
        return target, None, (), {}
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise BadInputError(f"{path} is a directory without manifest.json",
                            fix="pass a model name / file.py:factory, or a directory written by `deployconv export`")
    manifest = json.loads(manifest_path.read_text())
    if not manifest.get("reproducible"):
        raise BadInputError(f"{path} was exported from an in-memory module", why="its model cannot be rebuilt",
                            fix="pass the model source (file.py:factory) and --weights instead")
    graphs: dict[str, Any] = {}
    if manifest.get("precision") in ("fp16", "int8"):
        import onnx

        graphs[manifest["precision"]] = onnx.load(str(path / manifest.get("ort_model", "model.onnx")))
    weights = manifest.get("weights")
    return manifest["model"], Path(weights) if weights else None, tuple(manifest.get("allow_missing", ())), graphs


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
    simplifier: Annotated[str, typer.Option("--simplifier", help="onnxslim | onnxsim | none.")] = "onnxslim",
    out_dir: OutOpt = None,
    markdown: MarkdownOpt = None,
    max_drop: MaxDropOpt = None,
    json_out: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """Top-1/top-5 of every stage (train, deploy, ONNX, simplified, fp16, int8, engine) on a labelled image
    folder, with 95% intervals, the change vs the previous stage and vs fp32 (exact McNemar) and agreement."""
    _handle_errors(_eval)(model, data, weights=weights, allow_missing=tuple(allow_missing or ()), labels=labels,
                          stages=stages, limit=limit, batch=batch, workers=workers, interval=interval,
                          calib=calib, calib_samples=calib_samples, int8_keep=tuple(int8_keep or ()),
                          simplifier=simplifier, out_dir=out_dir, markdown=markdown, max_drop=max_drop,
                          json_out=json_out, force=force)


def _eval(model: str, data: Path, *, weights: Path | None, allow_missing: tuple[str, ...], labels: Path | None,
          stages: str | None, limit: int | None, batch: int, workers: int | None, interval: str,
          calib: Path | None, calib_samples: int, int8_keep: tuple[str, ...], simplifier: str,
          out_dir: Path | None, markdown: Path | None, max_drop: float | None, json_out: bool, force: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from deployconv.accuracy.evaluate import EvalOptions, evaluate
    from deployconv.accuracy.ledger import gate_drops
    from deployconv.accuracy.markdown import HEADERS, rows, to_markdown
    from deployconv.accuracy.stages import StageOptions, parse_stages
    from deployconv.atomic import atomic_dir, refuse_overwrite, safe_name, write_text_atomic
    from deployconv.console import err, out, print_json, table
    from deployconv.errors import CheckFailedError
    from deployconv.report.accuracy_section import accuracy_page

    name, dir_weights, dir_missing, graphs = _resolve_model(model)
    out_dir = out_dir or Path("deployconv_out") / f"{safe_name(Path(model).name if graphs or Path(model).is_dir() else model)}-eval"
    refuse_overwrite(out_dir, force)
    if markdown is not None:
        refuse_overwrite(markdown, force)
    opts = EvalOptions(labels=labels, limit=limit, batch=batch, workers=workers, interval=interval, calib=calib,
                       calib_samples=calib_samples,
                       stage=StageOptions(stages=parse_stages(stages), simplifier=simplifier, int8_keep=int8_keep,
                                          graphs=graphs))
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

        ledger = evaluate(name, data, opts, weights=weights or dir_weights, allow_missing=allow_missing or dir_missing,
                          status=lambda s: progress.console.print(f"[dim]{s}[/]", highlight=False),
                          on_start=on_start, on_batch=on_batch)
    result = ledger.to_dict()
    text = to_markdown(result, f"Accuracy ledger: {name}")
    report = {"model": name, "weights": str(weights or dir_weights) if (weights or dir_weights) else None,
              "accuracy": result}
    with atomic_dir(out_dir, force) as tmp:
        (tmp / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
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


class _SpeedColumn(ProgressColumn):
    """images/s over the whole run so far (rich's own speed column is for bytes)."""

    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- img/s" if speed is None else f"{speed:,.0f} img/s", style="progress.data.speed")


# At the bottom on purpose, as in cli_gate: cli.py imports this module near its end.
from deployconv.cli import AllowMissingOpt, ForceOpt, JsonOpt, WeightsOpt, _handle_errors  # noqa: E402
