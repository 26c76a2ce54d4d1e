"""`deployconv matrix`: export, validate, bench, check and build-engine over models x targets x devices, on a
local process pool (default) or a Ray cluster (`--executor ray`, `pip install deployconv[ray]`).

Exit codes: 0 every cell passed (or was skipped for a missing piece of the environment), 1 a cell failed,
2 bad input, 3 missing environment (Ray, a device resource), 130 interrupted (finished cells are kept:
re-run with --resume).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live

from deployconv.cli.options import ForceOpt, JsonOpt, out_option, workers_option
from deployconv.core.console import err, print_json
from deployconv.core.errors import BadInputError, CheckFailedError
from deployconv.core.target import builtin_targets
from deployconv.matrix.live import LiveTable
from deployconv.matrix.run import EXECUTORS, run_matrix
from deployconv.matrix.spec import (
    USER_STEPS,
    MatrixSpec,
    parse_devices,
    parse_models,
    parse_steps,
    parse_targets,
)
from deployconv.matrix.steps import StepOptions
from deployconv.models.registry import is_user_source, list_models

ModelsOpt = Annotated[str, typer.Option("--models", help="Comma-separated zoo names, 'all', or file.py:factory sources.",
                                        show_default=False)]
TargetsOpt = Annotated[str, typer.Option("--targets", help="Comma-separated built-in target names.", show_default=False)]
DevicesOpt = Annotated[str | None, typer.Option(
    "--devices", help="Comma-separated devices: 'host' (the CPU nodes) and Ray custom resource names, e.g. "
                      "host,jetson-orin (default: host).")]
StepsOpt = Annotated[str | None, typer.Option(
    "--steps", help=f"Steps to run, from {', '.join(USER_STEPS)} (eval: not available yet); export is always "
                    "included. Default: all available.")]
# The old name of --steps (`plugins build --jobs` is parallel compile jobs, as in make): kept, hidden.
JobsOpt = Annotated[str | None, typer.Option("--jobs", hidden=True, help="Old name of --steps.")]
OutOpt = Annotated[Path, out_option("Results directory.", show_default=False)]
ExecutorOpt = Annotated[str, typer.Option("--executor", help="local (a process pool on this machine) or ray.")]
AddressOpt = Annotated[str | None, typer.Option(
    "--address", help="Ray cluster address (HEAD:6379); default: a local Ray on this machine.")]
WorkersOpt = Annotated[int | None, workers_option("Parallel jobs (default: one per CPU).")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Keep finished jobs whose inputs are unchanged; run the rest.")]
BenchSecondsOpt = Annotated[float, typer.Option("--bench-seconds", min=0.1, help="Timed seconds per bench job.")]
BenchRepeatOpt = Annotated[int, typer.Option("--bench-repeat", min=1, help="Bench blocks (fresh sessions) per job.")]


def matrix_cmd(
    models: ModelsOpt,
    targets: TargetsOpt,
    out_dir: OutOpt,
    devices: DevicesOpt = None,
    steps: StepsOpt = None,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
    resume: ResumeOpt = False,
    bench_seconds: BenchSecondsOpt = 2.0,
    bench_repeat: BenchRepeatOpt = 4,
    json_out: JsonOpt = False,
    force: ForceOpt = False,
    jobs: JobsOpt = None,
) -> None:
    """Run the model x target x device matrix: one job per (model, target, device, step), with a live table;
    writes OUT/matrix.json, matrix.md (CI summary) and matrix.html (a grid per device)."""
    if steps is not None and jobs is not None:
        raise BadInputError("--steps and --jobs both given", why="--jobs is the old name of --steps",
                            fix="give --steps only")
    steps = steps if jobs is None else jobs
    _matrix(models, targets, out_dir, devices, steps, executor, address, workers, resume, bench_seconds,
            bench_repeat, json_out, force)


def _matrix(models: str, targets: str, out_dir: Path, devices: str | None, steps: str | None, executor: str,
            address: str | None, workers: int | None, resume: bool, bench_seconds: float, bench_repeat: int,
            json_out: bool, force: bool) -> None:
    if executor not in EXECUTORS:
        raise BadInputError(f"unknown executor {executor!r}", fix="use --executor local or --executor ray")
    if address is not None and executor != "ray":
        raise BadInputError("--address is for --executor ray")
    names, user = parse_models(models, list_models(), is_user_source)
    spec = MatrixSpec(models=names, targets=parse_targets(targets, builtin_targets()),
                      devices=parse_devices(devices), steps=parse_steps(steps), user_models=user)
    opts = StepOptions(bench_duration_s=bench_seconds, bench_repeat=bench_repeat)
    live_box: dict[str, object] = {}

    def on_start(jobs: list, ex: object) -> None:
        table = LiveTable(jobs, spec.devices)
        live = Live(table, console=err, refresh_per_second=2, transient=False)
        live.start()
        live_box.update(table=table, live=live)

    def on_update(records: dict, running: set) -> None:
        if "table" in live_box:
            live_box["table"].update(records, running)  # type: ignore[attr-defined]

    try:
        result = run_matrix(spec, out_dir, executor=executor, workers=workers, address=address, resume=resume,
                            force=force, options=opts, on_update=on_update, on_start=on_start)
    finally:
        if "live" in live_box:
            live_box["live"].stop()  # type: ignore[attr-defined]
            err.print()
    doc = result.document
    if json_out:
        print_json(doc)
    if doc["conditions"].get("note"):
        err.print(f"[yellow]note:[/] {doc['conditions']['note']}", highlight=False)
    err.print(f"wrote {out_dir / 'matrix.json'}, matrix.md, matrix.html ({doc['conditions']['wall_s']} s)",
              highlight=False)
    if result.interrupted:
        err.print("[yellow]interrupted:[/] finished jobs are kept; re-run with --resume", highlight=False)
        raise typer.Exit(130)
    bad = [c for c in doc["cells"] if c["status"] not in ("passed", "skipped")]
    if bad:
        raise CheckFailedError(f"{len(bad)} of {len(doc['cells'])} cells did not pass",
                               details=[f"{c['model']} / {c['target']} / {c['device']}: {c['status']}"
                                        for c in bad[:20]], fix=f"see {out_dir / 'matrix.md'}")

