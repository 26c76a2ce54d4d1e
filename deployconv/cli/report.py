"""`deployconv report DIR`: a self-contained HTML page of an exported directory (parity chain, latency
distributions, gate, DLA placement). Torch-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deployconv.cli.options import ForceOpt, out_option
from deployconv.core.console import err
from deployconv.report import write_report

ReportOutOpt = Annotated[Path | None, out_option("HTML file to write (default: DIR/report.html). Written atomically.")]


def report_cmd(
    directory: Annotated[Path, typer.Argument(help="A directory written by `deployconv export`.", show_default=False)],
    out_file: ReportOutOpt = None,
    force: ForceOpt = False,
) -> None:
    """Write one HTML page (no network, no script): the parity chain per stage with its budget, latency
    histograms with p50/p99, the gate result (DIR/gate.json) and the DLA/GPU layer placement, each number with
    its conditions."""
    written = write_report(directory, out_file, force=force)
    for note in written.notes:
        err.print(f"[yellow]note:[/] {note}", highlight=False)
    err.print(f"wrote {written.path}", highlight=False)

