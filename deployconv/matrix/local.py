"""The default executor: a process pool on this machine, no Ray needed.

`workers` processes (default: one per usable CPU), each pinned to its own slice of the CPUs this process may
use, with `threads` = that slice's size for torch and ONNX Runtime, so jobs do not oversubscribe the machine.
Processes are spawned, not forked (torch's thread pools do not survive a fork). Inputs and outputs are the
directories under OUT: one machine, one filesystem.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
from pathlib import Path
from typing import Any

from deployconv.core.env import available_cpu_ids
from deployconv.matrix.results import job_dir
from deployconv.matrix.spec import JobSpec
from deployconv.matrix.steps import StepOptions, StepOutcome, run_step

_SLOT: dict[str, Any] = {}


def split_cpus(cpus: list[int], workers: int) -> list[list[int]]:
    """Split the CPUs into `workers` disjoint slices (sizes differ by at most one); more workers than CPUs
    share CPUs round-robin, one each."""
    if workers <= len(cpus):
        size, extra = divmod(len(cpus), workers)
        out, i = [], 0
        for w in range(workers):
            n = size + (1 if w < extra else 0)
            out.append(cpus[i:i + n])
            i += n
        return out
    return [[cpus[w % len(cpus)]] for w in range(workers)]


def _init_worker(counter: Any, slots: list[list[int]]) -> None:
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    cpus = slots[index % len(slots)]
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(len(cpus))
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, cpus)
    _SLOT["cpus"] = cpus


def _work(job: JobSpec, inputs: list[str], out: str, opts: StepOptions) -> StepOutcome:
    outcome = run_step(job, [Path(p) for p in inputs], Path(out), opts)
    outcome.worker["cpus"] = _SLOT.get("cpus")
    outcome.worker["executor"] = "local"
    return outcome


class LocalExecutor:
    name = "local"
    exclusive_host_bench = True

    def __init__(self, out: Path, workers: int | None = None):
        cpus = available_cpu_ids()
        self.workers = workers or len(cpus)
        self.slots = split_cpus(cpus, self.workers)
        self.threads = max(1, min(len(s) for s in self.slots))
        self.out = Path(out)
        ctx = multiprocessing.get_context("spawn")
        self.pool = cf.ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                           initargs=(ctx.Value("i", 0), self.slots))
        self.futures: dict[cf.Future, JobSpec] = {}
        self.cancelled = False

    def submit(self, job: JobSpec, deps: list[JobSpec], opts: StepOptions) -> None:
        inputs = [str(self.out / job_dir(d)) for d in deps]
        fut = self.pool.submit(_work, job, inputs, str(self.out / job_dir(job)), opts)
        self.futures[fut] = job

    def adopt(self, job: JobSpec) -> None:
        pass  # its output is already under OUT

    def wait_any(self, timeout: float) -> list[tuple[JobSpec, StepOutcome]]:
        if not self.futures:
            return []
        done, _ = cf.wait(list(self.futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out = []
        for fut in done:
            job = self.futures.pop(fut)
            try:
                out.append((job, fut.result()))
            except Exception as e:  # the worker process died (killed, out of memory): this job errs
                out.append((job, StepOutcome(status="error", error={
                    "what": f"worker process lost: {type(e).__name__}: {e}", "why": "killed or out of memory",
                    "fix": "re-run with --resume", "exit_code": 2, "kind": "worker-lost"})))
        return out

    def cancel(self) -> None:
        self.cancelled = True
        self.pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.pool.shutdown(wait=not self.cancelled, cancel_futures=self.cancelled)

