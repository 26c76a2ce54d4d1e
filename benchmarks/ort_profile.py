"""Where ONNX Runtime CPU spends its time in deployconv's graph and in the plain pipeline's, op type by op type.

Why: the issue's lsnet_t target (>= 2x the plain pipeline at batch 16) assumed the plain SKA costs ~60% of the
model; this profile measures what each graph's time is made of with the exporter of the day, and so the ceiling
of any graph-level rewrite: the convolutions are the same in both graphs, so plain / conv time bounds the speed-up
of a graph whose every other op were free.

Both graphs come from benchmarks.plain_pipeline (same seeded weights). ORT's own profiler (enable_profiling)
gives per-node kernel times; each session runs `--runs` profiled calls after two warm-ups, and the per-op times are
averaged over the profiled calls. Wall medians come from separate, unprofiled calls, interleaved, with
thread-pool spinning off (see _session).
Usage: python -m benchmarks.ort_profile [--model lsnet_t] [--batch 16] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx

from deployconv.core.fsio import write_text_atomic
from deployconv.validate.fingerprint import collect

RESULTS = Path(__file__).parent / "results" / "ort_profile_cpu.json"


def _session(proto: onnx.ModelProto, threads: int, profile_prefix: str | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not profile_prefix:
        # Interleaved sessions on a 2-core machine: a session's pool threads spin-wait after each run and would
        # steal the cores from the next session's run; without spinning each run has the machine to itself.
        # Profiled sessions run one at a time and keep ORT's default (spinning), which their kernel times need.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])


def op_times(proto: onnx.ModelProto, x: np.ndarray, threads: int, runs: int) -> dict[str, dict[str, float]]:
    """{op type: {ms per call, nodes}} from ORT's profiler (kernel time of its optimised graph's nodes)."""
    with tempfile.TemporaryDirectory() as tmp:
        sess = _session(proto, threads, str(Path(tmp) / "p"))
        name = sess.get_inputs()[0].name
        for _ in range(2):
            sess.run(None, {name: x})
        for _ in range(runs):
            sess.run(None, {name: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    total, count = Counter(), Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            total[e["args"]["op_name"]] += e["dur"]
            count[e["args"]["op_name"]] += 1
    calls = runs + 2
    return {op: {"ms": us / calls / 1000, "nodes": count[op] // calls} for op, us in total.most_common()}


def wall_medians(protos: dict[str, onnx.ModelProto], x: np.ndarray, threads: int, rounds: int) -> dict[str, float]:
    sessions = {k: _session(p, threads) for k, p in protos.items()}
    samples: dict[str, list[float]] = {k: [] for k in sessions}
    for s in sessions.values():
        s.run(None, {s.get_inputs()[0].name: x})
    for _ in range(rounds):
        for k, s in sessions.items():
            t0 = time.perf_counter_ns()
            s.run(None, {s.get_inputs()[0].name: x})
            samples[k].append((time.perf_counter_ns() - t0) / 1e6)
    return {k: float(np.median(v)) for k, v in samples.items()}


def main() -> None:
    import onnxruntime as ort

    from benchmarks.plain_pipeline import export_plain, plain_model
    from deployconv.models import get_model_spec
    from deployconv.pipeline.export import ExportOptions, export

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="lsnet_t")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    size = get_model_spec(args.model).info.input_size
    with tempfile.TemporaryDirectory() as tmp:
        res = export(args.model, "onnx", Path(tmp) / "o", options=ExportOptions(bench=False))
        ours = onnx.load(str(res.out / "model.onnx"))
    protos = {"deployconv": ours, "plain": export_plain(plain_model(args.model), size)}
    x = np.random.default_rng(0).standard_normal((args.batch, *size), dtype=np.float32)
    profiles = {k: op_times(p, x, args.threads, args.runs) for k, p in protos.items()}
    walls = wall_medians(protos, x, args.threads, args.rounds)
    rows = {}
    for k, prof in profiles.items():
        kernel = sum(v["ms"] for v in prof.values())
        conv = prof.get("Conv", {}).get("ms", 0.0)
        rows[k] = {"wall_median_ms": walls[k], "kernel_ms": kernel, "conv_ms": conv,
                   "conv_share": conv / kernel if kernel else None, "non_conv_ms": kernel - conv, "ops": prof}
    plain_kernel = rows["plain"]["kernel_ms"]
    summary = {
        "speedup_wall": walls["plain"] / walls["deployconv"],
        "ceiling_if_every_non_conv_op_were_free": plain_kernel / rows["deployconv"]["conv_ms"],
        "non_conv_ms_allowed_for_2x": plain_kernel / 2 - rows["deployconv"]["conv_ms"],
    }
    for k, r in rows.items():
        print(f"{k:10s} wall {r['wall_median_ms']:7.1f} ms | kernels {r['kernel_ms']:6.1f} ms: Conv {r['conv_ms']:6.1f} "
              f"ms ({r['conv_share']:.0%}), rest {r['non_conv_ms']:5.1f} ms | top: " + ", ".join(
                  f"{op} {v['ms']:.1f}" for op, v in list(r["ops"].items())[:6]))
    print(json.dumps(summary, indent=1))
    env = collect(runtime="onnxruntime", runtime_version=ort.__version__, threads=args.threads,
                  batch=args.batch).to_dict()
    import torch

    payload = {"benchmark": "ort_profile", "model": args.model,
               "conditions": {"batch": args.batch, "threads": args.threads, "profiled_runs": args.runs,
                              "wall_rounds": args.rounds, "input": [args.batch, *size], "precision": "fp32",
                              "torch": torch.__version__, "onnxruntime": ort.__version__, "onnx": onnx.__version__,
                              "plain": "benchmarks.plain_pipeline: official-style fusion, unfold SKA, "
                                       "torch.onnx.export defaults, onnxsim"},
               "env": env, "summary": summary, "graphs": rows}
    write_text_atomic(args.out, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
