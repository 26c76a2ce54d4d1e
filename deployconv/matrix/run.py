"""The matrix front door: validate the request, build the job graph, run it on an executor, write
matrix.json, matrix.md and matrix.html. The CLI only parses and renders."""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from deployconv.core.errors import BadInputError, DeployconvError, MissingEnvironmentError
from deployconv.core.fsio import refuse_overwrite, write_text_atomic
from deployconv.core.target import builtin_targets
from deployconv.core.version import __version__
from deployconv.matrix.graph import build_jobs, check_graph
from deployconv.matrix.local import LocalExecutor
from deployconv.matrix.page import render_page
from deployconv.matrix.results import JobRecord, matrix_document
from deployconv.matrix.scheduler import run_jobs
from deployconv.matrix.spec import HOST, JobSpec, MatrixSpec, validate_job
from deployconv.matrix.steps import StepOptions
from deployconv.matrix.summary import to_markdown
from deployconv.models.registry import list_models
from deployconv.report import write_report
from deployconv.validate.fingerprint import cpu_model

EXECUTORS = ("local", "ray")


@dataclass
class MatrixRun:
    out: Path
    document: dict[str, Any]
    records: dict[str, JobRecord]
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return all(c["status"] in ("passed", "skipped") for c in self.document["cells"])


def plan(spec: MatrixSpec) -> list[JobSpec]:
    """The validated job graph of `spec` (every job checked against the step enum, zoo and targets)."""

    targets = builtin_targets()
    jobs = build_jobs(spec, {t: targets[t].runtime for t in spec.targets})
    check_graph(jobs)
    zoo = list_models()
    for job in jobs:
        validate_job(job, zoo, spec.user_models, targets)
    return jobs


def _conditions(executor: Any, opts: StepOptions) -> dict[str, Any]:
    import numpy

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"executor": executor.name, "workers": executor.workers, "threads_per_job": opts.threads,
            "host": platform.node(), "cpu": cpu_model(), "cpus": os.cpu_count(),
            "load_avg_start": None if load is None else [round(x, 2) for x in load],
            "python": platform.python_version(), "numpy": numpy.__version__, "deployconv": __version__,
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def make_executor(kind: str, out: Path, *, workers: int | None, address: str | None, spec: MatrixSpec) -> Any:
    if kind == "local":

        remote = [d for d in spec.devices if d != HOST]
        if remote:
            raise BadInputError(f"the local executor runs on this machine only; it cannot reach {', '.join(remote)}",
                                fix="use --executor ray with a cluster the devices joined, or --devices host")
        return LocalExecutor(out, workers)
    if kind == "ray":
        try:
            from deployconv.matrix.ray_executor import RayExecutor
        except ImportError:
            raise MissingEnvironmentError("the Ray executor needs ray", fix="pip install 'deployconv[ray]'") from None
        return RayExecutor(out, address=address, workers=workers, threads=1,
                           devices=tuple(d for d in spec.devices if d != HOST), user_models=spec.user_models)
    raise BadInputError(f"unknown executor {kind!r}", fix=f"choose {' or '.join(EXECUTORS)}")


def write_reports(out: Path, doc: dict[str, Any]) -> None:
    """The export's HTML report (`deployconv report`) next to each exported cell, for the grid to link to.
    A page that cannot be drawn is noted in its cell; the matrix goes on."""

    done: dict[str, str | None] = {}
    for c in doc["cells"]:
        rel = c.get("report")
        if not rel or c["steps"].get("export", {}).get("status") != "passed":
            continue
        if rel not in done:
            export_dir = (out / rel).parent
            page = export_dir.parent / "report.html"
            try:
                write_report(export_dir, page, force=True)
                done[rel] = str(page.relative_to(out))
            except (DeployconvError, OSError, ValueError, KeyError) as e:
                done[rel] = None
                c.setdefault("notes", []).append(f"no HTML report: {e}")
        c["report_html"] = done[rel]


def write_outputs(out: Path, doc: Mapping[str, Any]) -> None:

    write_text_atomic(out / "matrix.json", json.dumps(doc, indent=2, default=str) + "\n")
    write_text_atomic(out / "matrix.md", to_markdown(doc))
    write_text_atomic(out / "matrix.html", render_page(doc))


def run_matrix(spec: MatrixSpec, out: Path, *, executor: str = "local", workers: int | None = None,
               address: str | None = None, resume: bool = False, force: bool = False,
               options: StepOptions | None = None,
               on_update: Callable[[Mapping[str, JobRecord], set[str]], None] | None = None,
               on_start: Callable[[list[JobSpec], Any], None] | None = None, reports: bool = True) -> MatrixRun:
    out = Path(out)
    jobs = plan(spec)
    if not resume:
        refuse_overwrite(out, force)
        if force and (out / "cells").is_dir():
            shutil.rmtree(out / "cells")
    out.mkdir(parents=True, exist_ok=True)
    ex = make_executor(executor, out, workers=workers, address=address, spec=spec)
    opts = options or StepOptions()
    threads = getattr(ex, "threads", 1)
    opts = StepOptions(**{**opts.to_dict(), "threads": threads})
    conditions = _conditions(ex, opts)
    if getattr(ex, "note", None):
        conditions["note"] = ex.note
    spec_d = {"models": list(spec.models), "targets": list(spec.targets), "devices": list(spec.devices),
              "steps": list(spec.steps), "options": opts.to_dict(), "resume": resume}
    if on_start:
        on_start(jobs, ex)
    t0 = time.perf_counter()
    records: dict[str, JobRecord] = {}
    interrupted = False
    try:
        records = run_jobs(jobs, ex, out, opts, resume=resume,
                           on_update=lambda r, s: (records.update(r), on_update and on_update(r, s)))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        ex.close()
    conditions["wall_s"] = round(time.perf_counter() - t0, 3)
    conditions["load_avg_end"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    conditions["interrupted"] = interrupted
    doc = matrix_document(spec_d, jobs, records, spec.devices, conditions)
    if reports and not interrupted:
        write_reports(out, doc)
    write_outputs(out, doc)
    return MatrixRun(out, doc, records, interrupted)
