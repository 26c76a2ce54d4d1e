"""Drive a matrix on any executor: submit each job once its inputs are done, record every outcome atomically,
block what depends on a job that did not pass, skip what --resume finds finished. Executor-agnostic.

The driver is the only writer of records (see results.py). A failed job never stops the others. Ctrl-C cancels
what has not finished; finished records stay, and `--resume` picks up from them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from deployconv.core.fsio import sha256_file
from deployconv.matrix.results import (
    FINISHED,
    JobRecord,
    input_hash,
    job_dir,
    read_record,
    write_record,
)
from deployconv.matrix.spec import HOST, JobSpec
from deployconv.matrix.steps import StepOptions, StepOutcome


class Executor(Protocol):
    name: str
    workers: int
    exclusive_host_bench: bool  # True: a bench on the host runs alone (its CPUs are shared with other jobs)

    def submit(self, job: JobSpec, deps: list[JobSpec], opts: StepOptions) -> None: ...

    def adopt(self, job: JobSpec) -> None:
        """A job --resume kept: make its output (under OUT) available to jobs that consume it."""

    def wait_any(self, timeout: float) -> list[tuple[JobSpec, StepOutcome]]: ...

    def cancel(self) -> None: ...


def user_model_extra(model: str) -> dict[str, Any]:
    """A user model file's hash, so editing it re-runs its cells on --resume."""
    path = Path(model.rsplit(":", 1)[0])
    return {"source_sha256": sha256_file(path)} if path.suffix == ".py" and path.is_file() else {}


def _blocked(job: JobSpec, dep: JobRecord, ih: str) -> JobRecord:
    """A job whose input did not pass: `skipped` when that input was skipped for a missing environment (the
    same cause, not a failure), `blocked` otherwise."""
    why = (dep.error or {}).get("what", "")
    skipped = dep.status == "skipped"
    return JobRecord(id=job.id, model=job.model, target=job.target, step=job.step, device=job.device,
                     status="skipped" if skipped else "blocked", input_hash=ih, seconds=0.0,
                     error={"what": f"not run: {dep.step} {dep.status}" + (f" ({why})" if why else ""),
                            "why": "a job it depends on did not pass", "fix": (dep.error or {}).get("fix", ""),
                            "exit_code": 3 if skipped else 1, "kind": "blocked"})


def run_jobs(jobs: list[JobSpec], executor: Executor, out: Path, opts: StepOptions, *, resume: bool = False,
             on_update: Callable[[Mapping[str, JobRecord], set[str]], None] | None = None) -> dict[str, JobRecord]:
    """Run `jobs` (topologically ordered) to completion. Returns the record of every finished job; on
    KeyboardInterrupt the executor is cancelled and the exception propagates (records so far are on disk)."""
    out = Path(out)
    records: dict[str, JobRecord] = {}
    hashes: dict[str, str] = {}
    running: dict[str, JobSpec] = {}
    waiting = list(jobs)
    extra = {m: user_model_extra(m) for m in {j.model for j in jobs}}
    update = on_update or (lambda _r, _s: None)
    by_id = {j.id: j for j in jobs}

    def finish(job: JobSpec, rec: JobRecord) -> None:
        write_record(out, job, rec)
        records[job.id] = rec

    def exclusive(job: JobSpec) -> bool:
        return executor.exclusive_host_bench and job.step == "bench" and job.device == HOST

    try:
        while waiting or running:
            progressed = False
            for job in list(waiting):
                if any(d not in records for d in job.deps):
                    continue
                if any(exclusive(r) for r in running.values()):
                    break  # a host bench runs alone
                bad = [records[d] for d in job.deps if records[d].status != "passed"
                       and not (d in job.soft and records[d].status == "skipped")]
                ih = input_hash(job, opts.read_by(job.step), {d: records[d].output_hash for d in job.deps},
                                extra[job.model])
                if bad:
                    waiting.remove(job)
                    finish(job, _blocked(job, bad[0], ih))
                    progressed = True
                    continue
                old = read_record(out, job) if resume else None
                if old is not None and old.status in FINISHED and old.input_hash == ih and \
                        (old.output is None or (out / old.output).is_dir()):
                    waiting.remove(job)
                    records[job.id] = old
                    executor.adopt(job)
                    progressed = True
                    continue
                if exclusive(job) and running:
                    break  # let the others drain; nothing new starts meanwhile
                waiting.remove(job)
                progressed = True
                hashes[job.id] = ih
                running[job.id] = job
                executor.submit(job, [by_id[d] for d in job.deps if records[d].status == "passed"], opts)
                if exclusive(job):
                    break
            if progressed:
                update(records, set(running))
            if not running:
                if waiting and not progressed:
                    raise RuntimeError(f"matrix stuck: {len(waiting)} jobs wait on nothing running")
                continue
            for job, outcome in executor.wait_any(timeout=0.5):
                running.pop(job.id, None)
                d = job_dir(job)
                finish(job, JobRecord(
                    id=job.id, model=job.model, target=job.target, step=job.step, device=job.device,
                    status=outcome.status, input_hash=hashes[job.id], output_hash=outcome.output_hash,
                    seconds=outcome.seconds, started_at=outcome.started_at, finished_at=outcome.finished_at,
                    worker=outcome.worker, summary=outcome.summary, error=outcome.error,
                    output=str(d) if (out / d).is_dir() else None))
                update(records, set(running))
    except KeyboardInterrupt:
        executor.cancel()
        raise
    return records

