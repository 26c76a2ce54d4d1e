"""`deployconv report DIR`: one self-contained HTML page for an exported directory — the parity chain, the
latency distributions, the gate result and the DLA/GPU layer placement, each number beside its conditions.

Data first: `load_export_dir` reads and checks the directory, `build_page` renders it, `write_report` writes it
atomically. Torch-free; matplotlib (the `report` extra) only draws the figures and is optional.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from deployconv.core.errors import BadInputError
from deployconv.core.fsio import atomic_path, refuse_overwrite
from deployconv.report.page import Page, build_page
from deployconv.report.source import ExportDir, load_export_dir

DEFAULT_NAME = "report.html"

__all__ = ["DEFAULT_NAME", "ExportDir", "Page", "WrittenReport", "build_page", "load_export_dir", "write_report"]


@dataclass
class WrittenReport:
    path: Path
    notes: list[str] = field(default_factory=list)


def write_report(directory: Path, out: Path | None = None, *, force: bool = False) -> WrittenReport:
    """Render DIR's report to `out` (default DIR/report.html); never overwrites without `force`."""
    out = Path(out) if out is not None else Path(directory) / DEFAULT_NAME
    if out.is_dir():
        raise BadInputError(f"{out} is a directory", fix=f"give a file name, e.g. --out {out / DEFAULT_NAME}")
    refuse_overwrite(out, force)
    page = build_page(load_export_dir(directory))
    with atomic_path(out) as tmp:
        tmp.write_text(page.html, encoding="utf-8")
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)  # a page to share: readable like any new file, not the temp file's 0600
    return WrittenReport(out, page.notes)
