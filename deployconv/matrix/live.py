"""The live table while a matrix runs: one row per (model, target, device), one column per step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table

from deployconv.matrix.results import JobRecord
from deployconv.matrix.spec import JobSpec

_STYLE = {"passed": "[green]pass[/]", "failed": "[red]FAIL[/]", "error": "[red]ERROR[/]",
          "skipped": "[yellow]skip[/]", "blocked": "[dim]blocked[/]", "cancelled": "[dim]cancelled[/]"}


class LiveTable:
    def __init__(self, jobs: list[JobSpec], devices: tuple[str, ...]):
        self.jobs, self.devices = jobs, devices
        self.steps = list(dict.fromkeys(j.step for j in jobs))
        self.records: Mapping[str, JobRecord] = {}
        self.running: set[str] = set()

    def update(self, records: Mapping[str, JobRecord], running: set[str]) -> None:
        self.records, self.running = dict(records), set(running)

    def _state(self, job: JobSpec) -> str:
        rec = self.records.get(job.id)
        if rec is not None:
            s = _STYLE.get(rec.status, rec.status)
            return f"{s} {rec.seconds:.0f}s" if rec.seconds else s
        return "[cyan]running[/]" if job.id in self.running else "[dim]·[/]"

    def __rich__(self) -> Any:
        done = len(self.records)
        t = Table(title=f"matrix: {done}/{len(self.jobs)} jobs done, {len(self.running)} running",
                  title_justify="left", header_style="bold")
        for c in ("model", "target", "device", *self.steps):
            t.add_column(c)
        rows: dict[tuple[str, str, str], dict[str, str]] = {}
        for job in self.jobs:
            for device in ([job.device] if job.device is not None else self.devices):
                rows.setdefault((job.model, job.target, device), {})[job.step] = self._state(job)
        for (m, tg, d), steps in rows.items():
            t.add_row(m, tg, d, *[steps.get(s, "-") for s in self.steps])
        return t
