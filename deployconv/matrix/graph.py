"""The job graph: which jobs a matrix has and what each waits for. Pure.

export(m, t) runs once per model and target on a CPU node. Device steps consume it directly on the host, or
the bundle made from it on any other device (bundle(m, t) runs on a CPU node, and the device gets it through
the executor). For TensorRT targets, validate and bench wait for build-engine when it is in the matrix and run the
engine; where build-engine was skipped (no TensorRT there) they run on the export instead (validate checks
the ONNX Runtime twin; bench then skips for want of TensorRT). check reads the bundle, not the engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from deployconv.matrix.spec import HOST, STEPS, JobSpec, MatrixSpec


def build_jobs(spec: MatrixSpec, runtime_of: Mapping[str, str]) -> list[JobSpec]:
    """Every job of the matrix in a topological order (a job comes after everything it depends on).
    `runtime_of` maps each target to its runtime ('onnxruntime' | 'tensorrt')."""
    jobs: list[JobSpec] = []
    device_steps = [s for s in spec.steps if STEPS[s].scope == "device"]
    for model in spec.models:
        for target in spec.targets:
            export = JobSpec(model, target, "export")
            jobs.append(export)
            bundle = None
            if device_steps and any(d != HOST for d in spec.devices):
                bundle = JobSpec(model, target, "bundle", deps=(export.id,))
                jobs.append(bundle)
            runtime = runtime_of[target]
            for device in spec.devices:
                src = export if device == HOST or bundle is None else bundle
                engine = None
                if "build-engine" in device_steps and runtime in STEPS["build-engine"].runtimes:
                    engine = JobSpec(model, target, "build-engine", device, deps=(src.id,))
                    jobs.append(engine)
                for step in device_steps:
                    if step == "build-engine":
                        continue
                    if engine is not None and step in ("validate", "bench"):
                        # the engine when it was built; the ONNX (its ORT twin, or a skip for bench) when
                        # TensorRT is missing here
                        jobs.append(JobSpec(model, target, step, device, deps=(src.id, engine.id),
                                            soft=(engine.id,)))
                    else:
                        jobs.append(JobSpec(model, target, step, device, deps=(src.id,)))
    return jobs


def check_graph(jobs: Sequence[JobSpec]) -> None:
    """Ids unique, every dependency present and earlier in the list (so the list is topological)."""
    seen: set[str] = set()
    for job in jobs:
        if job.id in seen:
            raise ValueError(f"duplicate job {job.id}")
        missing = [d for d in job.deps if d not in seen]
        if missing:
            raise ValueError(f"job {job.id} depends on {missing}, which do not come before it")
        seen.add(job.id)


def dependents(jobs: Sequence[JobSpec], job_id: str) -> list[str]:
    """Every job that waits, directly or through others, on `job_id` (in topological order)."""
    hit = {job_id}
    out = []
    for job in jobs:
        if any(d in hit for d in job.deps):
            hit.add(job.id)
            out.append(job.id)
    return out
