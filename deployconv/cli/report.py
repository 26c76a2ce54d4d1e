"""`deployconv report DIR`: a self-contained HTML page of an exported directory (parity chain, latency
distributions, gate, DLA placement). Torch-free.

Registered in cli.py with `from deployconv.cli.report import report_cmd; app.command("report")(report_cmd)`;
like cli_bench, it imports the shared options from deployconv.cli.app at the bottom, so either module may load first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ReportOutOpt = Annotated[Path | None, typer.Option(
    "--out", "-o", help="HTML file to write (default: DIR/report.html). Written atomically.")]


def report_cmd(
    directory: Annotated[Path, typer.Argument(help="A directory written by `deployconv export`.", show_default=False)],
    out_file: ReportOutOpt = None,
    force: ForceOpt = False,
) -> None:
    """Write one HTML page (no network, no script): the parity chain per stage with its budget, latency
    histograms with p50/p99, the gate result (DIR/gate.json) and the DLA/GPU layer placement, each number with
    its conditions."""
    _handle_errors(_report)(directory, out_file, force)


def _report(directory: Path, out_file: Path | None, force: bool) -> None:
    from deployconv.core.console import err
    from deployconv.report import write_report

    written = write_report(directory, out_file, force=force)
    for note in written.notes:
        err.print(f"[yellow]note:[/] {note}", highlight=False)
    err.print(f"wrote {written.path}", highlight=False)


# At the bottom on purpose (see deployconv/cli/bench.py).
from deployconv.cli.app import ForceOpt, _handle_errors  # noqa: E402
