"""The Ray executor: the same jobs on a Ray cluster. The only module of deployconv that imports ray.

`ray.init(address=...)` joins an existing cluster; without an address a local Ray starts on this machine
(how the tests run it). Devices are Ray custom resources: a Jetson joins with
`ray start --address=HEAD --num-cpus=0 --resources='{"jetson-orin": 1}'` and its jobs ask for
`{"jetson-orin": 1}` and no CPU, so they land only there, one at a time, and no CPU job (an export) lands on
it. Export, bundle and host jobs ask for `threads` CPUs.

Outputs travel through Ray's object store as payloads (transfer.py): a bundle reaches the device node as the
argument of its job and is checked by its manifest hash on arrival. The driver writes every record and copies
every output into OUT, so the layout is the one the local executor writes.

Faults: a job whose worker process or node dies is retried by Ray (max_retries) on any node that has its
resources; an exception inside a step is a result (the cell failed), never retried. Each job's result is taken
once, from its single ObjectRef, so a retry cannot duplicate a cell.

Security: token authentication stays as Ray configures it. Local clusters started by ray.init() use token
authentication by default from Ray 2.59, and `ray start` clusters from 2.61; for a cluster started by
`ray start` with an older Ray, start every node with RAY_AUTH_MODE=token. This module refuses to run with
RAY_AUTH_MODE=disabled. Run the cluster on a private network.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import ray

from deployconv.core.errors import BadInputError, MissingEnvironmentError
from deployconv.core.fsio import atomic_dir
from deployconv.core.target import builtin_targets
from deployconv.matrix.results import job_dir
from deployconv.matrix.spec import JobSpec, validate_job
from deployconv.matrix.steps import StepOptions, StepOutcome, run_step
from deployconv.matrix.transfer import pack, unpack
from deployconv.models.registry import list_models

MAX_RETRIES = 3


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())


def auth_note(address: str | None, version: str = ray.__version__, env: dict[str, str] | None = None) -> str | None:
    """Refuse a disabled token authentication; say when a joined cluster may run without it."""
    mode = (env if env is not None else os.environ).get("RAY_AUTH_MODE", "").lower()
    if mode == "disabled":
        raise BadInputError("RAY_AUTH_MODE=disabled: deployconv matrix does not run Ray without token authentication",
                            why="without it anyone who reaches the cluster's ports can run code on every node",
                            fix="unset RAY_AUTH_MODE (or set it to token) on the driver and every node")
    if address is not None and mode != "token" and _version_tuple(version) < (2, 61):
        return (f"Ray {version} enables token authentication by default only for local clusters; make sure the "
                "cluster at --address was started with RAY_AUTH_MODE=token, on a private network")
    return None


def _run_remote(job_d: dict[str, Any], opts_d: dict[str, Any], user_models: list[str],
                *payloads: Any) -> tuple[dict[str, Any], Any]:
    """Runs on a Ray worker: re-validate the spec, unpack and check inputs, run the step, pack the output."""

    job = JobSpec(**{k: v for k, v in job_d.items() if k != "id"} | {"deps": tuple(job_d["deps"]),
                                                                    "soft": tuple(job_d["soft"])})
    zoo = None
    if job.step == "export":

        zoo = list_models()
    validate_job(job, zoo, user_models, builtin_targets())
    opts = StepOptions(**opts_d)
    with tempfile.TemporaryDirectory(prefix="deployconv-matrix-") as tmp:
        inputs = [unpack(p, Path(tmp) / f"in{i}") for i, p in enumerate(payloads)]
        out = Path(tmp) / "out"
        outcome = run_step(job, inputs, out, opts)
        ctx = ray.get_runtime_context()
        outcome.worker.update(executor="ray", node_id=ctx.get_node_id(), ray_task_id=ctx.get_task_id())
        payload = pack(out) if out.is_dir() else None
    return outcome.to_dict(), payload


_remote = ray.remote(num_returns=2, max_retries=MAX_RETRIES, retry_exceptions=False)(_run_remote)


class RayExecutor:
    name = "ray"
    exclusive_host_bench = False  # a host bench shares its node with other jobs (device benches do not)

    def __init__(self, out: Path, *, address: str | None = None, workers: int | None = None, threads: int = 1,
                 devices: tuple[str, ...] = (), user_models: tuple[str, ...] = ()):
        self.note = auth_note(address)
        self.out, self.threads, self.user_models = Path(out), threads, list(user_models)
        self.owned = not ray.is_initialized()
        if self.owned:
            if address is None:
                ray.init(num_cpus=(workers or os.cpu_count() or 1) * threads, include_dashboard=False,
                         log_to_driver=False, configure_logging=False)
            else:
                ray.init(address=address, log_to_driver=False)
        have = ray.cluster_resources()
        missing = [d for d in devices if have.get(d, 0) < 1]
        if missing:
            self.close()
            raise MissingEnvironmentError(
                f"no node of the Ray cluster has the device resource(s) {', '.join(missing)}",
                why="device jobs run only on nodes that declare their device",
                fix="on each device: ray start --address=HEAD:6379 --num-cpus=0 "
                    f"--resources='{{\"{missing[0]}\": 1}}'")
        self.workers = int(have.get("CPU", 1) // max(threads, 1)) or 1
        self.payloads: dict[str, Any] = {}
        self.pending: dict[Any, tuple[JobSpec, Any]] = {}

    def _options(self, job: JobSpec) -> dict[str, Any]:
        if job.resource is not None:
            return {"num_cpus": 0, "resources": {job.resource: 1}}
        return {"num_cpus": self.threads}

    def submit(self, job: JobSpec, deps: list[JobSpec], opts: StepOptions) -> None:
        args = [self.payloads[d.id] for d in deps]
        outcome_ref, payload_ref = _remote.options(**self._options(job), name=f"deployconv:{job.step}").remote(
            job.to_dict(), opts.to_dict(), self.user_models, *args)
        self.payloads[job.id] = payload_ref
        self.pending[outcome_ref] = (job, payload_ref)

    def adopt(self, job: JobSpec) -> None:
        d = self.out / job_dir(job)
        if d.is_dir():
            self.payloads[job.id] = ray.put(pack(d))

    def wait_any(self, timeout: float) -> list[tuple[JobSpec, StepOutcome]]:
        if not self.pending:
            return []
        ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=timeout)
        if ready:
            more, _ = ray.wait([r for r in self.pending if r not in ready], num_returns=len(self.pending) - 1 or 1,
                               timeout=0) if len(self.pending) > 1 else ([], [])
            ready = list(ready) + list(more)
        done = []
        for ref in ready:
            job, payload_ref = self.pending.pop(ref)
            try:
                outcome = StepOutcome(**ray.get(ref))
                payload = ray.get(payload_ref)
                if payload is not None:
                    self._store(job, payload)
            except Exception as e:  # retries exhausted (node lost for good), or the payload was lost
                outcome = StepOutcome(status="error", error={
                    "what": f"lost on the cluster: {type(e).__name__}: {str(e)[:500]}",
                    "why": f"the job's worker or node died {MAX_RETRIES + 1} times, or no node with its resources "
                           "is left", "fix": "re-run with --resume once the nodes are back", "exit_code": 2,
                    "kind": "worker-lost"})
            done.append((job, outcome))
        return done

    def _store(self, job: JobSpec, payload: Any) -> None:
        """Copy a job's output into OUT (atomically replacing an older one), checked like any arrival."""

        dest = self.out / job_dir(job)
        with atomic_dir(dest, force=True) as tmp:
            shutil.rmtree(tmp)
            unpack(payload, tmp)

    def cancel(self) -> None:
        for ref in list(self.pending):
            ray.cancel(ref, force=True)
        self.pending.clear()

    def close(self) -> None:
        if self.owned and ray.is_initialized():
            ray.shutdown()
