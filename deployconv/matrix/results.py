"""Where a matrix writes, what a finished job leaves behind, and when a job may be skipped on --resume.

Layout under OUT (the same for every executor):
    cells/<model>/<target>/export/            the exported directory (model.onnx, report.json, manifest.json)
    cells/<model>/<target>/export.json        its job record, written last and atomically
    cells/<model>/<target>/bundle/            the device bundle (only when a device other than host is named)
    cells/<model>/<target>/devices/<device>/<step>/       a device step's output (bench.json, check.json, ...)
    cells/<model>/<target>/devices/<device>/<step>.json   its job record
    matrix.json, matrix.md, matrix.html       the whole matrix: one row per (model, target, device)

A job is finished when its record exists. Records are written by the driver only (workers of a Ray cluster
write to their own scratch space), once per job, by atomic rename: a killed run leaves whole records or none.
`--resume` skips a job whose record is finished (passed, failed or skipped) and whose input hash, computed
now, equals the one recorded; errored, blocked and cancelled jobs run again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from deployconv.core.artifacts.names import MANIFEST, REPORT
from deployconv.core.fsio import safe_name, sha256_file, write_text_atomic
from deployconv.core.version import __version__
from deployconv.matrix.spec import STEPS, JobSpec

SCHEMA = "deployconv.matrix/1"
JOB_SCHEMA = "deployconv.matrix.job/1"
STATUSES = ("passed", "failed", "skipped", "error", "blocked", "cancelled")
FINISHED = ("passed", "failed", "skipped")  # deterministic outcomes: --resume keeps them
_SEVERITY = {"error": 5, "failed": 4, "blocked": 3, "cancelled": 2, "skipped": 1, "passed": 0}


@dataclass
class JobRecord:
    """What one job did. `summary` is the step's own small result (parity, latency, checks, engine)."""

    id: str
    model: str
    target: str
    step: str
    device: str | None
    status: str
    input_hash: str
    output_hash: str | None = None
    seconds: float | None = None
    started_at: str | None = None
    finished_at: str | None = None
    worker: dict[str, Any] = field(default_factory=dict)  # host, pid, node id, threads, executor
    summary: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None  # what, why, fix, exit_code, kind
    output: str | None = None  # the output directory, relative to OUT
    schema: str = JOB_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JobRecord:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


def cell_dir(model: str, target: str) -> Path:
    return Path("cells") / safe_name(model) / safe_name(target)


def job_dir(job: JobSpec) -> Path:
    """The job's output directory, relative to OUT."""
    base = cell_dir(job.model, job.target)
    return base / job.step if job.device is None else base / "devices" / safe_name(job.device) / job.step


def record_path(job: JobSpec) -> Path:
    d = job_dir(job)
    return d.with_name(d.name + ".json")


def read_record(out: Path, job: JobSpec) -> JobRecord | None:
    path = Path(out) / record_path(job)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("schema") != JOB_SCHEMA or data.get("id") != job.id:
            return None
        return JobRecord.from_dict(data)
    except (OSError, ValueError, TypeError):
        return None  # unreadable: treat as not finished, the job runs again


def write_record(out: Path, job: JobSpec, record: JobRecord) -> None:
    write_text_atomic(Path(out) / record_path(job), json.dumps(record.to_dict(), indent=2, default=str) + "\n")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def input_hash(job: JobSpec, options: Mapping[str, Any], dep_hashes: Mapping[str, str | None],
               extra: Mapping[str, Any] | None = None) -> str:
    """What a job's result depends on: its spec, the options its step reads, deployconv's version, the
    output hashes of the jobs it consumes, and `extra` (e.g. a user model file's hash)."""
    body = {"job": job.id, "options": dict(options), "deployconv": __version__,
            "deps": {d: dep_hashes.get(d) for d in job.deps}, "extra": dict(extra or {})}
    return sha256_text(json.dumps(body, sort_keys=True, default=str))


def output_hash(directory: Path) -> str | None:
    """A job output's identity: its manifest.json (which hashes every file) or else its result.json."""
    for name in (MANIFEST, "result.json"):
        p = Path(directory) / name
        if p.is_file():
            return sha256_file(p)
    return None


def cell_status(statuses: list[str]) -> str:
    """The worst of a cell's step statuses (error > failed > blocked > cancelled > skipped > passed)."""
    return max(statuses, key=lambda s: _SEVERITY[s]) if statuses else "blocked"


def cell_rows(jobs: list[JobSpec], records: Mapping[str, JobRecord], devices: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per (model, target, device): status, per-step status and timing, parity, latency, error."""
    rows = []
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for job in jobs:
        for device in ([job.device] if job.device is not None else devices):
            key = (job.model, job.target, device)
            row = seen.get(key)
            if row is None:
                row = {"model": job.model, "target": job.target, "device": device, "status": None, "steps": {},
                       "seconds": 0.0, "parity": None, "latency": None, "checks": None, "engine": None,
                       "report": None, "error": None}
                seen[key] = row
                rows.append(row)
            rec = records.get(job.id)
            status = rec.status if rec else "cancelled"
            step: dict[str, Any] = {"status": status, "seconds": rec.seconds if rec else None,
                                    "record": str(record_path(job))}
            if rec and rec.error:
                step["error"] = rec.error
                if row["error"] is None:
                    row["error"] = {"step": job.step, **rec.error}
            row["steps"][job.step] = step
            if rec and rec.seconds:
                row["seconds"] = round(row["seconds"] + rec.seconds, 3)
            if rec is None:
                continue
            s = rec.summary
            if job.step == "export" and rec.output:
                row["report"] = f"{rec.output}/{REPORT}"
                row["parity"] = row["parity"] or s.get("parity")
            elif job.step == "validate" and s.get("parity"):
                row["parity"] = s["parity"]  # the device's own re-check wins over the export's
            elif job.step == "bench" and s.get("latency"):
                row["latency"] = {**s["latency"], "file": f"{rec.output}/bench.json"}
            elif job.step == "check" and s.get("checks") is not None:
                row["checks"] = s["checks"]
            elif job.step == "build-engine":
                row["engine"] = s.get("engine")
    for row in rows:
        row["status"] = cell_status([st["status"] for st in row["steps"].values()])
    return rows


def matrix_document(spec: Mapping[str, Any], jobs: list[JobSpec], records: Mapping[str, JobRecord],
                    devices: tuple[str, ...], conditions: Mapping[str, Any]) -> dict[str, Any]:
    rows = cell_rows(jobs, records, devices)
    counts = {s: 0 for s in STATUSES}
    for r in records.values():
        counts[r.status] += 1
    counts["cancelled"] += sum(1 for j in jobs if j.id not in records)
    return {"schema": SCHEMA, "spec": dict(spec), "conditions": dict(conditions),
            "jobs": {"total": len(jobs), **counts},
            "steps_available": {n: {"available": s.available, "why": s.why_unavailable} for n, s in STEPS.items()},
            "cells": rows}
