"""The same matrix three ways on this machine: serial (one job at a time, all CPUs to it), the local executor
(one process per CPU, pinned, one thread each) and Ray (a local Ray with as many CPUs, one per job).

Per configuration: wall time, cells per hour, the sum of job times (busy time) and per-step mean job cost,
load average at start and end (the machine may be shared: read the load before the speed-ups), and every
cell's status (the three must agree). Results: benchmarks/results/matrix_scaling_cpu.json.

Usage: python -m benchmarks.matrix_scaling [--models a,b] [--targets onnx,ort-cpu-int8,trt-fp16]
       [--configs serial,local,ray] [--bench-seconds 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from benchmarks._env import fingerprint, package_version
from deployconv.core.fsio import write_text_atomic
from deployconv.matrix.run import run_matrix
from deployconv.matrix.spec import MatrixSpec
from deployconv.matrix.steps import StepOptions

RESULTS = Path(__file__).parent / "results" / "matrix_scaling_cpu.json"
SMALL = str(Path(__file__).resolve().parent / "matrix_models.py")
DEFAULT_MODELS = ",".join(f"{SMALL}:net_{k}" for k in "abcd")
CONFIGS = {"serial": ("local", 1), "local": ("local", None), "ray": ("ray", None)}


def measure(spec: MatrixSpec, config: str, opts: StepOptions, root: Path) -> dict:
    executor, workers = CONFIGS[config]
    run = run_matrix(spec, root / config, executor=executor, workers=workers, options=opts)
    doc = run.document
    cond = doc["conditions"]
    by_step: dict[str, list[float]] = {}
    for rec in run.records.values():
        if rec.seconds:
            by_step.setdefault(rec.step, []).append(rec.seconds)
    busy = sum(sum(v) for v in by_step.values())
    return {"config": config, "executor": cond["executor"], "workers": cond["workers"],
            "threads_per_job": cond["threads_per_job"], "wall_s": cond["wall_s"],
            "cells": len(doc["cells"]), "jobs": doc["jobs"],
            "cells_per_hour": round(len(doc["cells"]) * 3600 / cond["wall_s"], 1),
            "busy_s": round(busy, 1), "parallelism": round(busy / cond["wall_s"], 2),
            "step_mean_s": {k: round(statistics.mean(v), 2) for k, v in by_step.items()},
            "step_n": {k: len(v) for k, v in by_step.items()},
            "load_avg_start": cond["load_avg_start"], "load_avg_end": cond["load_avg_end"],
            "cell_status": {f"{c['model'].rsplit('/', 1)[-1]}|{c['target']}": c["status"] for c in doc["cells"]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default=DEFAULT_MODELS, help="zoo names or file.py:factory (default: the four "
                                                              "small nets of benchmarks/matrix_models.py)")
    ap.add_argument("--targets", default="onnx,ort-cpu-int8,trt-fp16")
    ap.add_argument("--configs", default="serial,local,ray")
    ap.add_argument("--bench-seconds", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    models = tuple(args.models.split(","))
    spec = MatrixSpec(models=models, targets=tuple(args.targets.split(",")),
                      steps=("export", "validate", "bench", "check", "build-engine"),
                      user_models=tuple(m for m in models if ":" in m))
    opts = StepOptions(bench_warmup_s=0.3, bench_duration_s=args.bench_seconds, bench_repeat=2)
    runs = []
    with tempfile.TemporaryDirectory(prefix="matrix-scaling-") as tmp:
        for config in args.configs.split(","):
            r = measure(spec, config, opts, Path(tmp))
            print(json.dumps({k: r[k] for k in ("config", "wall_s", "cells_per_hour", "parallelism",
                                                 "load_avg_start", "load_avg_end")}), flush=True)
            runs.append(r)
    base = next((r for r in runs if r["config"] == "serial"), None)
    for r in runs:
        r["speedup_vs_serial"] = round(base["wall_s"] / r["wall_s"], 2) if base else None
    statuses = {json.dumps(r["cell_status"], sort_keys=True) for r in runs}
    result = {
        "benchmark": "matrix_scaling",
        "what": "one matrix (models x targets, host device; steps export, validate, bench, check, build-engine) "
                "run serially, by the local executor and by a local Ray; wall time and per-job costs",
        "spec": {"models": [m.rsplit("/", 1)[-1] for m in models], "input": "3x64x64 for the small nets", "targets": list(spec.targets),
                 "steps": list(spec.steps), "bench_s": args.bench_seconds, "bench_repeat": 2, "batch": 1},
        "runs": runs,
        "same_cell_statuses": len(statuses) == 1,
        "env": {**fingerprint(), "ray": package_version("ray"), "onnxruntime": package_version("onnxruntime")},
        "conditions": "a 2-vCPU VM shared with other agents' jobs during the run: the load average (start/end per "
                      "run) shows how busy it was; speed-ups are lower bounds of what an idle machine gives",
    }
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
