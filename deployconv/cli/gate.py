"""`deployconv gate`: is the current bench run slower than the baseline by more than the tolerance?

Exit codes: 0 within the limit, 1 regression, 3 incomparable runs or too noisy to decide, 2 bad input.
The report is markdown on stdout (CI logs, a job's step summary), or JSON with --json; `--markdown PATH`
also writes the markdown to a file. The gate never writes the baseline; `--update-baseline` does, and only
over an existing one with --force. Torch-free.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from deployconv.accuracy.gate import gate_ledger
from deployconv.cli.options import ForceOpt, JsonOpt, MarkdownOpt, max_drop_option, seed_option
from deployconv.core.console import err, print_json
from deployconv.core.errors import BadInputError
from deployconv.core.fsio import refuse_overwrite, write_text_atomic
from deployconv.validate.gate import DEFAULT_RUN_NOISE, gate
from deployconv.validate.gate_baseline import load_run, update_baseline
from deployconv.validate.gate_markdown import pct
from deployconv.validate.gate_markdown import to_markdown as gate_markdown
from deployconv.validate.gate_matrix import gate_matrix
from deployconv.validate.gate_matrix import to_markdown as matrix_markdown

BaselineOpt = Annotated[Path | None, typer.Option("--baseline", help="The baseline run (`bench --out` JSON).",
                                                  show_default=False)]
CurrentOpt = Annotated[Path | None, typer.Option("--current", help="The run to check (`bench --out` JSON).",
                                                 show_default=False)]
AccuracyOpt = Annotated[Path | None, typer.Option(
    "--accuracy", help="Gate an accuracy ledger instead (report.json of `deployconv eval`): exit 1 when a stage "
                       "loses more than --max-drop top-1 points vs fp32 with significance.", show_default=False)]
MaxDropOpt = Annotated[float, max_drop_option("With --accuracy: tolerated top-1 loss in points.")]
MatrixOpt = Annotated[tuple[Path, Path] | None, typer.Option(
    "--matrix", help="BASE.json CURRENT.json: gate every cell of two `deployconv matrix` runs (exit 1 if any "
                     "cell regressed; cells that cannot be compared are listed).", show_default=False)]
MetricOpt = Annotated[str, typer.Option(
    "--metric", help="median (what people read) | p10 (the fast end: least moved by a busy runner) | p99 (the tail).")]
MaxRegressionOpt = Annotated[str, typer.Option(
    "--max-regression", help="Tolerated slowdown in percent, e.g. 5% (or 5).")]
NoiseThresholdOpt = Annotated[str | None, typer.Option(
    "--noise-threshold", help="Widest confidence interval (percentage points) that may decide a straddling "
                              "result; wider is 'too noisy' (exit 3). Default: the max regression.")]
RunNoiseOpt = Annotated[str | None, typer.Option(
    "--run-noise", help="Between-run noise of this runner in percent (std of log latency between runs of "
                        "unchanged work, beyond what one run shows). Default 1%.")]
AllowDiffOpt = Annotated[list[str] | None, typer.Option(
    "--allow-diff", help="Fingerprint field allowed to differ on purpose, e.g. runtime_version (repeatable).")]
SeedOpt = Annotated[int, seed_option("Seed of the bootstrap.")]
UpdateOpt = Annotated[bool, typer.Option(
    "--update-baseline", help="Write the current run as the baseline instead of gating (needs --force to "
                              "replace an existing baseline).")]


def gate_cmd(
    baseline: BaselineOpt = None,
    current: CurrentOpt = None,
    metric: MetricOpt = "median",
    max_regression: MaxRegressionOpt = "5%",
    noise_threshold: NoiseThresholdOpt = None,
    run_noise: RunNoiseOpt = None,
    allow_diff: AllowDiffOpt = None,
    seed: SeedOpt = 0,
    json_out: JsonOpt = False,
    markdown: MarkdownOpt = None,
    update_baseline: UpdateOpt = False,
    accuracy: AccuracyOpt = None,
    max_drop: MaxDropOpt = 0.5,
    force: ForceOpt = False,
    matrix: MatrixOpt = None,
) -> None:
    """Gate latency against a baseline: the change of the median (or p99) with its bootstrap confidence
    interval; exit 0 within --max-regression, 1 regression, 3 incomparable runs or too noisy to decide.
    With --accuracy: gate an accuracy ledger on --max-drop (significant top-1 loss vs fp32).
    With --matrix BASE.json CURRENT.json, every cell of two matrix runs."""
    if accuracy is not None:
        gate_ledger(accuracy, max_drop, json_out=json_out, markdown=markdown, force=force)
        return
    if matrix is not None:
        _gate_matrix(matrix, metric=metric, max_regression=max_regression, noise_threshold=noise_threshold,
                     run_noise=run_noise, allow_diff=allow_diff or [], seed=seed, json_out=json_out,
                     markdown=markdown, force=force, single=(baseline, current, update_baseline))
        return
    _need_runs(baseline, current)
    _gate(baseline, current, metric=metric, max_regression=max_regression, noise_threshold=noise_threshold,
          run_noise=run_noise, allow_diff=allow_diff or [], seed=seed, json_out=json_out, markdown=markdown,
          update=update_baseline, force=force)


def _need_runs(baseline: Path | None, current: Path | None) -> None:
    if baseline is None or current is None:
        raise BadInputError("give --baseline and --current (two `bench --out` runs), --matrix BASE.json "
                            "CURRENT.json (two `deployconv matrix` runs) or --accuracy REPORT (an `eval` ledger)",
                            fix="deployconv gate --baseline base.json --current run.json")


def _gate_matrix(files: tuple[Path, Path], *, metric: str, max_regression: str, noise_threshold: str | None,
                 run_noise: str | None, allow_diff: list[str], seed: int, json_out: bool, markdown: Path | None,
                 force: bool, single: tuple) -> None:
    if any(v for v in single):
        raise BadInputError("--matrix gates two matrix runs; --baseline, --current and --update-baseline are for "
                            "single bench runs", fix="give one or the other")
    if markdown is not None:
        refuse_overwrite(markdown, force)
    limit = parse_percent(max_regression, "--max-regression")
    result = gate_matrix(files[0], files[1], metric=metric, max_regression=limit,
                         noise_threshold=None if noise_threshold is None else parse_percent(noise_threshold,
                                                                                            "--noise-threshold"),
                         run_noise=DEFAULT_RUN_NOISE if run_noise is None else parse_percent(run_noise, "--run-noise"),
                         allow_diff=allow_diff, seed=seed)
    _emit(matrix_markdown(result), result.to_dict(), markdown=markdown, json_out=json_out)
    colour = "red" if result.regressed else "green"
    err.print(f"[bold {colour}]matrix gate: {len(result.regressed)} of {len(result.cells)} cells regressed[/]",
              highlight=False)
    raise typer.Exit(result.exit_code)


def _emit(text: str, data: dict, *, markdown: Path | None, json_out: bool) -> None:
    """A gate's result: markdown to --markdown (atomically), then JSON or the markdown on stdout."""
    if markdown is not None:
        write_text_atomic(markdown, text)
    if json_out:
        print_json(data)
    else:
        typer.echo(text, nl=False)


def parse_percent(text: str, option: str) -> float:
    """'5%' or '5' -> 0.05; anything else is bad input naming the option."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*%?\s*", text)
    if not m:
        raise BadInputError(f"bad {option} {text!r}", fix=f"give a percentage, e.g. {option} 5%")
    return float(m.group(1)) / 100.0


def _gate(baseline: Path, current: Path, *, metric: str, max_regression: str, noise_threshold: str | None,
          run_noise: str | None, allow_diff: list[str], seed: int, json_out: bool, markdown: Path | None,
          update: bool, force: bool) -> None:
    if update:
        run = update_baseline(current, baseline, force=force)
        if json_out:
            print_json({"baseline": str(baseline), "written": True, "from": str(current),
                        "samples": len(run.samples_ms), "median_ms": run.stats.median_ms})
        err.print(f"baseline written: {baseline} (from {current}: {len(run.samples_ms)} samples, "
                  f"median {run.stats.median_ms:.4g} ms)", highlight=False)
        return

    limit = parse_percent(max_regression, "--max-regression")
    noise = None if noise_threshold is None else parse_percent(noise_threshold, "--noise-threshold")
    between = DEFAULT_RUN_NOISE if run_noise is None else parse_percent(run_noise, "--run-noise")
    if markdown is not None:
        refuse_overwrite(markdown, force)
    base_run, cur_run = load_run(baseline, "baseline"), load_run(current, "current")
    result = gate(base_run, cur_run, metric=metric, max_regression=limit, noise_threshold=noise,
                  run_noise=between, allow_diff=allow_diff, seed=seed, baseline_file=str(baseline),
                  current_file=str(current))
    _emit(gate_markdown(result), result.to_dict(), markdown=markdown, json_out=json_out)
    if result.verdict == "incomparable":
        err.print("[bold red]gate: incomparable runs[/], fingerprints differ in:\n  "
                  + "\n  ".join(escape(d) for d in result.differences), highlight=False)
    else:
        assert result.ratio is not None and result.ci_low is not None and result.ci_high is not None
        colour = {"pass": "green", "regression": "red", "noisy": "yellow"}[result.verdict]
        err.print(f"[bold {colour}]gate: {result.verdict}[/] {metric} {pct(result.ratio)} "
                  f"(95% CI {pct(result.ci_low)} to {pct(result.ci_high)}), limit {pct(result.limit_ratio)}",
                  highlight=False)
    raise typer.Exit(result.exit_code)

