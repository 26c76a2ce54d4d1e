"""Run one job: call the deployconv API for its step on this machine. What executors send to workers.

Every step reads its inputs from local directories (the executor put them there) and writes one output
directory, atomically. Exit codes map to statuses the way the CLI maps them to exit codes: a failed check
(1) is `failed`, a missing piece of the environment (3) is `skipped` with the reason, bad input (2) and
anything unexpected are `error`. Only the export step imports torch, lazily: device nodes without PyTorch run
the others.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from deployconv.core.artifacts.engine import EngineEntry
from deployconv.core.artifacts.names import MANIFEST, MODEL_ONNX
from deployconv.core.errors import EXIT_CHECK_FAILED, EXIT_MISSING_ENV, DeployconvError
from deployconv.core.fsio import atomic_dir
from deployconv.core.target import target_of_manifest
from deployconv.engine.builder import build_engine
from deployconv.matrix.results import output_hash
from deployconv.matrix.spec import HOST, JobSpec
from deployconv.pipeline.bundle import make_bundle
from deployconv.runtime import load_runner, random_feed
from deployconv.runtime.timing import benchmark
from deployconv.trust.manifest import read_manifest, write_manifest
from deployconv.validate.device import check_bundle
from deployconv.validate.export_dir import recheck_dir


@dataclass(frozen=True)
class StepOptions:
    """The knobs a step reads; part of every job's input hash."""

    threads: int = 1
    bench_warmup_s: float = 0.5
    bench_duration_s: float = 2.0
    bench_repeat: int = 4
    batch: int = 1
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def read_by(self, step: str) -> dict[str, Any]:
        """The options `step` reads (what its input hash covers): a new bench duration re-runs benches only."""
        keys = {"export": ("batch", "seed"),
                "bench": ("threads", "bench_warmup_s", "bench_duration_s", "bench_repeat", "batch", "seed")}
        return {k: v for k, v in asdict(self).items() if k in keys.get(step, ())}


@dataclass
class StepOutcome:
    status: str
    summary: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    output_hash: str | None = None
    seconds: float = 0.0
    started_at: str = ""
    finished_at: str = ""
    worker: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_result(directory: Path, summary: dict[str, Any]) -> None:
    (directory / "result.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")


def parity_summary(parity: dict[str, Any]) -> dict[str, Any]:
    """The parity chain in a few numbers: passed, where it broke, each stage's error against the reference."""
    stages = []
    for s in parity.get("stages", []):
        ref = s.get("vs_reference") or {}
        stages.append({"stage": s["stage"], "passed": s["passed"], "max_abs_rel_scale": ref.get("max_abs_rel_scale"),
                       "cosine": ref.get("cosine")})
    return {"passed": parity.get("passed"), "broke_at": parity.get("broke_at"), "stages": stages}


def _export(job: JobSpec, out: Path, opts: StepOptions) -> dict[str, Any]:
    import torch

    from deployconv.pipeline.export import ExportOptions, export

    torch.set_num_threads(opts.threads)
    result = export(job.model, job.target, out, force=True,
                    options=ExportOptions(bench=False, threads=opts.threads, batch=opts.batch, seed=opts.seed))
    engine = result.report.get("engine")
    summary = {"parity": parity_summary(result.report["parity"]), "timings_s": result.timings,
               "engine": None if engine is None else engine.get("status")}
    if not result.passed:
        raise _Failed(summary, f"parity failed at stage {result.report['parity']['broke_at']}")
    return summary


def _bundle(job: JobSpec, src: Path, out: Path) -> dict[str, Any]:

    b = make_bundle(src, out, force=True)
    return {"files": b.files, "tar_sha256": b.tar_sha256, "trtexec": b.trtexec, "notes": b.notes}


def _build_engine(job: JobSpec, src: Path, out: Path) -> dict[str, Any]:

    with atomic_dir(out, force=True) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        manifest = read_manifest(tmp)
        try:
            entries = build_engine(tmp / MODEL_ONNX, target_of_manifest(manifest, str(src / MANIFEST)),
                                   tmp, force=True)
        except DeployconvError as e:  # name the input, not the temporary copy
            raise type(e)(e.what.replace(str(tmp), str(src)), e.why.replace(str(tmp), str(src)),
                          e.fix.replace(str(tmp), str(src)), [d.replace(str(tmp), str(src)) for d in e.details]) from None
        entry = EngineEntry.from_build(entries)
        write_manifest(tmp, replace(manifest, engine=entry))  # re-hashes with engine.plan
    return {"engine": entry.status, "tensorrt": entry.engine.tensorrt, "sha256": entry.engine.sha256}


def _validate(job: JobSpec, src: Path, out: Path) -> dict[str, Any]:

    r = recheck_dir(src, torch_free=job.device != HOST)
    summary = {"parity": parity_summary(r["parity"]), "mode": r["mode"], "runtimes": r["runtimes"],
               "hash_mismatches": r["hash_mismatches"], "notes": r["notes"]}
    with atomic_dir(out, force=True) as tmp:
        (tmp / "validate.json").write_text(json.dumps(r, indent=2, default=str) + "\n")
        _write_result(tmp, summary)
    if r["hash_mismatches"] or not r["parity"]["passed"]:
        raise _Failed(summary, "; ".join(r["hash_mismatches"]) or f"parity broke at {r['parity']['broke_at']}")
    return summary


def _bench(job: JobSpec, src: Path, out: Path, opts: StepOptions) -> dict[str, Any]:
    import numpy as np

    runtime = "trt" if read_manifest(src).runtime == "tensorrt" else "ort-cpu"
    runner = load_runner(src, runtime=runtime, threads=opts.threads)
    with runner:
        feed = random_feed(runner.input_metadata(), batch=opts.batch, shapes={}, seed=opts.seed)
        result = benchmark(runner, feed, warmup_s=opts.bench_warmup_s, duration_s=opts.bench_duration_s,
                           batch=opts.batch, repeat=opts.bench_repeat,
                           conditions={"artifact": f"{job.model}/{job.target}", "requested_runtime": runtime,
                                       "seed": opts.seed, "matrix_device": job.device})
    s = result.stats
    latency = {"median_ms": s.median_ms, "p10_ms": float(np.percentile(np.asarray(result.samples_ms), 10)),
               "p99_ms": s.p99_ms, "count": s.count, "cv": s.cv, "runtime": runtime,
               "fingerprint": result.fingerprint.to_dict()}
    summary = {"latency": latency}
    with atomic_dir(out, force=True) as tmp:
        (tmp / "bench.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        _write_result(tmp, summary)
    return summary


def _check(job: JobSpec, src: Path, out: Path) -> dict[str, Any]:

    report = check_bundle(src)
    summary = {"checks": {c.name: c.status for c in report.checks}, "runtime": report.runtime,
               "exit_code": report.exit_code}
    with atomic_dir(out, force=True) as tmp:
        (tmp / "check.json").write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
        _write_result(tmp, summary)
    if report.exit_code:
        failed = report.failed
        raise _Failed(summary, f"{len(failed)} check(s) failed: {', '.join(c.name for c in failed)}",
                      exit_code=report.exit_code, fix="; ".join(f"{c.name}: {c.fix}" for c in failed if c.fix))
    return summary


class _Failed(Exception):
    """A step ran and its check failed (or, with exit_code 3, could not run here): keep its summary."""

    def __init__(self, summary: dict[str, Any], what: str, exit_code: int = EXIT_CHECK_FAILED, fix: str = ""):
        super().__init__(what)
        self.summary, self.what, self.exit_code, self.fix = summary, what, exit_code, fix


def _status_of(exit_code: int) -> str:
    return {EXIT_CHECK_FAILED: "failed", EXIT_MISSING_ENV: "skipped"}.get(exit_code, "error")


def run_step(job: JobSpec, inputs: list[Path], out: Path, opts: StepOptions) -> StepOutcome:
    """Run `job` with its dependencies' outputs in `inputs` (in job.deps order), writing `out`. Never raises for
    a step's own failure: the outcome carries it."""
    t0, started = time.perf_counter(), _now()
    worker = {"host": socket.gethostname(), "pid": os.getpid(), "threads": opts.threads}
    src = inputs[-1] if inputs else None  # the most derived input that passed (the engine over the ONNX)
    try:
        if job.step == "export":
            summary = _export(job, out, opts)
        elif src is None:
            raise DeployconvError(f"job {job.id} has no input")
        elif job.step == "bundle":
            summary = _bundle(job, src, out)
        elif job.step == "build-engine":
            summary = _build_engine(job, src, out)
        elif job.step == "validate":
            summary = _validate(job, src, out)
        elif job.step == "bench":
            summary = _bench(job, src, out, opts)
        elif job.step == "check":
            summary = _check(job, src, out)
        else:
            raise DeployconvError(f"step {job.step!r} cannot run here")
        status, error = "passed", None
    except _Failed as e:
        status, summary = _status_of(e.exit_code), e.summary
        error = {"what": e.what, "why": "", "fix": e.fix, "exit_code": e.exit_code, "kind": "check"}
    except DeployconvError as e:
        status, summary = _status_of(e.exit_code), {}
        error = {"what": e.what, "why": e.why, "fix": e.fix, "exit_code": e.exit_code, "kind": type(e).__name__}
    except Exception as e:  # a bug or a broken environment: this cell errs, the others go on
        status, summary = "error", {}
        error = {"what": f"{type(e).__name__}: {e}", "why": "unexpected error (a bug, or a broken install)",
                 "fix": "see traceback", "exit_code": 2, "kind": "exception",
                 "traceback": traceback.format_exc(limit=8)[-4000:]}
    return StepOutcome(status=status, summary=summary, error=error,
                       output_hash=output_hash(out) if out.is_dir() else None,
                       seconds=round(time.perf_counter() - t0, 3), started_at=started, finished_at=_now(),
                       worker=worker)
