"""int8 explicit Q/DQ on ONNX Runtime CPU: accuracy vs fp32 and latency vs deployconv's own fp32 graph.

For each model, deployconv's fp32 ONNX (what `deployconv export --target onnx` writes) is quantized with the
default settings (minmax calibration, per-channel symmetric int8 weights, the INT8_BUDGET sensitivity search
that keeps the most sensitive layers float) in three forms:
  * ort-cpu-int8 — activation "uint8" (U8S8, ONNX Runtime's placement): the CPU deployment graph;
  * onnx-int8    — activation "int8-symmetric" (S8S8, TensorRT placement): the TensorRT graph; its ORT CPU
                   latency is recorded for information only (TensorRT is what it is for);
  * s8s8-ort     — activation "int8-asymmetric": ort-cpu-int8's structure with S8 activations, every layer
                   quantized: with u8s8-all (the same, U8) it is the S8S8-vs-U8S8 measurement on this CPU.
Accuracy: deployconv.validate.metrics.compare vs the fp32 graph on evaluation samples (synthetic unless
--images). Latency: batch 8, `--threads` intra-op threads, every session timed in turn within each round
(interleaved), median of per-call wall times. The machine may be shared: load average is recorded.

Usage: python -m benchmarks.int8_cpu [--models repvgg_a0,unireplknet_a,lsnet_t] [--calib DIR] [--images DIR]
       [--exported DIR (reuse DIR/<model>/model.onnx)] [--rounds 5] [--iters 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from deployconv.core.errors import CheckFailedError
from deployconv.core.fsio import write_text_atomic
from deployconv.export.precision.calibration import calibration_from_images, load_calibration
from deployconv.export.precision.int8 import quantize_int8
from deployconv.export.precision.sensitivity import INT8_BUDGET, ort_runner, quantize_within_budget
from deployconv.validate.fingerprint import collect
from deployconv.validate.metrics import compare

RESULTS = Path(__file__).parent / "results" / "int8_cpu.json"
SPEEDUP_TARGET = 1.8
COSINE_TARGET = 0.99
VARIANTS = {  # name -> (activation, search the budget?)
    "ort-cpu-int8": ("uint8", True),
    "onnx-int8": ("int8-symmetric", True),
    "u8s8-all": ("uint8", False),
    "s8s8-ort": ("int8-asymmetric", False),
}


def fp32_graph(name: str, exported: Path | None) -> onnx.ModelProto:
    if exported and (exported / name / "model.onnx").is_file():
        return onnx.load(str(exported / name / "model.onnx"))
    from deployconv.pipeline.export import ExportOptions, export

    with tempfile.TemporaryDirectory() as tmp:
        res = export(name, "onnx", Path(tmp) / name, options=ExportOptions(bench=False))
        return onnx.load(str(res.out / "model.onnx"))


def session(proto: onnx.ModelProto, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])


# fp32 kernels that int8 replaces (ORT's optimised-graph names): the rest of the time stays float whatever int8 does
WEIGHTED_KERNELS = frozenset({"Conv", "FusedConv", "MatMul", "FusedMatMul", "Gemm"})
KERNELS = ("Conv", "FusedConv", "QLinearConv", "MatMul", "QLinearMatMul", "MatMulIntegerToFloat", "QLinearAdd",
           "QuantizeLinear", "DequantizeLinear")


def ort_kernels(proto: onnx.ModelProto, threads: int) -> dict[str, int]:
    """What ONNX Runtime made of the graph: op counts of its optimised graph (a Conv left next to Q/DQ is a
    node group it did not fuse into an integer kernel)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        so.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
        ops = [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]
    return {k: ops.count(k) for k in KERNELS if ops.count(k)}


def time_interleaved(sessions: dict[str, Any], x: np.ndarray, rounds: int, iters: int) -> dict[str, list[float]]:
    name = {k: s.get_inputs()[0].name for k, s in sessions.items()}
    for k, s in sessions.items():  # warm-up
        s.run(None, {name[k]: x})
    samples: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(rounds):
        for k, s in sessions.items():
            for _ in range(iters):
                t0 = time.perf_counter_ns()
                s.run(None, {name[k]: x})
                samples[k].append((time.perf_counter_ns() - t0) / 1e6)
    return samples


def quantize_variant(fp32: onnx.ModelProto, calib, activation: str, search: bool, eval_x: np.ndarray,
                     ref: np.ndarray) -> tuple[onnx.ModelProto, dict[str, Any]]:
    t0 = time.perf_counter()
    row: dict[str, Any] = {"activation": activation, "method": "minmax", "budget_search": search}
    if search:
        try:
            q, rep, sens = quantize_within_budget(fp32, calib, INT8_BUDGET, eval_data=eval_x, activation=activation)
        except CheckFailedError as e:
            row["error"] = e.render()
            return fp32, row
        row.update(all_quantized=_metrics(sens.all_quantized), final=_metrics(sens.final),
                   kept_float=[{k: c[k] for k in ("node", "op_type", "weight", "role", "error_alone")}
                               for c in sens.chosen],
                   graphs_evaluated=sens.graphs_evaluated, top_ranked=[
                       {"node": e.node, "op_type": e.op_type, "weight": e.weight, "role": e.role,
                        "error_alone": e.error_alone}
                       for e in sens.ranked[:8]])
    else:
        q, rep = quantize_int8(fp32, calib, activation=activation)
        row.update(all_quantized=_metrics(compare(ref, ort_runner(2)(q, eval_x)).to_dict()))
        row["final"] = row["all_quantized"]
    row.update(profile=rep.profile, quantized=len(rep.quantized_nodes), weighted_total=rep.weighted_total,
               excluded=rep.excluded_nodes, qdq_nodes=rep.qdq_nodes, placement_violations=rep.placement_violations,
               seconds=round(time.perf_counter() - t0, 1))
    return q, row


def _metrics(m: dict[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k in ("cosine", "cosine_min", "max_abs_rel_scale", "top1_agreement", "top5_agreement",
                              "nonfinite")}


def main() -> None:
    import onnxruntime as ort

    from deployconv.models import get_model_spec

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="repvgg_a0,unireplknet_a,lsnet_t")
    ap.add_argument("--calib", type=Path, default=None)
    ap.add_argument("--calib-samples", type=int, default=64)
    ap.add_argument("--images", type=Path, default=None, help="evaluation images (default: synthetic)")
    ap.add_argument("--eval-samples", type=int, default=16)
    ap.add_argument("--exported", type=Path, default=None)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    env = collect(runtime="onnxruntime", runtime_version=ort.__version__, providers=("CPUExecutionProvider",),
                  threads=args.threads, batch=args.batch).to_dict()
    from benchmarks._env import fingerprint

    host = fingerprint()
    results = []
    for name in args.models.split(","):
        info = get_model_spec(name).info
        t0 = time.perf_counter()
        fp32 = fp32_graph(name, args.exported)
        export_s = time.perf_counter() - t0
        calib = load_calibration(args.calib, info, args.calib_samples, seed=0)
        if args.images:
            eval_x = calibration_from_images(args.images, info, args.eval_samples, seed=1).array
            eval_src = f"images {args.images}"
        else:
            eval_x = load_calibration(None, info, args.eval_samples, seed=1).array
            eval_src = "synthetic N(0,1), seed 1 (not the calibration samples)"
        ref = ort_runner(args.threads)(fp32, eval_x)
        graphs = {"fp32": fp32}
        rows: dict[str, Any] = {}
        for v in args.variants.split(","):
            activation, search = VARIANTS[v]
            print(f"{name}: quantizing {v} ({activation}{', budget search' if search else ''})", flush=True)
            graphs[v], rows[v] = quantize_variant(fp32, calib, activation, search, eval_x, ref)
            print(f"  {json.dumps(rows[v].get('final', rows[v].get('error')))}", flush=True)
        for k, g in graphs.items():
            if k in rows and "error" not in rows[k]:
                rows[k]["ort_kernels"] = ort_kernels(g, args.threads)
        fp32_kernels = ort_kernels(fp32, args.threads)
        x = np.random.default_rng(2).standard_normal((args.batch, *info.input_size), dtype=np.float32)
        sessions = {k: session(g, args.threads) for k, g in graphs.items() if "error" not in rows.get(k, {})}
        samples = time_interleaved(sessions, x, args.rounds, args.iters)
        med = {k: float(np.median(v)) for k, v in samples.items()}
        for k in rows:
            if k in med:
                rows[k].update(median_ms=med[k], p90_ms=float(np.percentile(samples[k], 90)),
                               speedup_vs_fp32=med["fp32"] / med[k])
        from benchmarks.ort_profile import op_times

        profile = {k: op_times(graphs[k], x, args.threads, 2) for k in ("fp32", "ort-cpu-int8") if k in sessions}
        total = sum(v["ms"] for v in profile["fp32"].values())
        weighted = sum(v["ms"] for op, v in profile["fp32"].items() if op in WEIGHTED_KERNELS)
        amdahl = {"fp32_kernel_ms": total, "fp32_weighted_ms": weighted, "fp32_weighted_share": weighted / total,
                  "ceiling_if_weighted_ops_were_free": total / (total - weighted),
                  "ops_ms": {k: {op: round(v["ms"], 3) for op, v in p.items()} for k, p in profile.items()}}
        if "u8s8-all" in med and "s8s8-ort" in med:
            rows["s8s8-ort"]["u8s8_over_s8s8_speed"] = med["s8s8-ort"] / med["u8s8-all"]
        row = {"model": name, "fp32_graph_sha256": hashlib.sha256(fp32.SerializeToString()).hexdigest(),
               "fp32_export_s": round(export_s, 1), "calibration": calib.describe(), "evaluation": eval_src,
               "fp32_median_ms": med["fp32"], "fp32_ort_kernels": fp32_kernels, "fp32_p90_ms": float(np.percentile(samples["fp32"], 90)),
               "variants": rows, "timing_samples_per_graph": len(samples["fp32"]), "profile": amdahl}
        ok = rows.get("ort-cpu-int8", {})
        row["targets"] = {
            "speedup_ort_cpu_int8_vs_fp32": ok.get("speedup_vs_fp32"),
            "speedup_met": (ok.get("speedup_vs_fp32") or 0) >= SPEEDUP_TARGET,
            "cosine_all_quantized_onnx_int8": rows.get("onnx-int8", {}).get("all_quantized", {}).get("cosine"),
            "cosine_final_onnx_int8": rows.get("onnx-int8", {}).get("final", {}).get("cosine"),
            "cosine_final_ort_cpu_int8": ok.get("final", {}).get("cosine"),
        }
        results.append(row)
        print(f"{name}: weighted ops {amdahl['fp32_weighted_share']:.0%} of fp32 kernel time; ceiling "
              f"{amdahl['ceiling_if_weighted_ops_were_free']:.2f}x if they were free", flush=True)
        print(f"{name}: fp32 {med['fp32']:.1f} ms | " + " | ".join(
            f"{k} {med[k]:.1f} ms ({rows[k]['speedup_vs_fp32']:.2f}x, cos {rows[k]['final']['cosine']:.5f})"
            for k in rows if k in med), flush=True)
    payload = {
        "benchmark": "int8_cpu",
        "conditions": {"batch": args.batch, "threads": args.threads, "rounds": args.rounds, "iters": args.iters,
                       "timing": "median of per-call wall times; graphs interleaved round by round",
                       "weights": "seeded random initialisation (deployconv export default, seed 0): no "
                                  "pretrained checkpoints on this machine",
                       "calibration": "synthetic" if args.calib is None else str(args.calib),
                       "budget": {"max_abs_rel_scale": INT8_BUDGET.max_abs_rel_scale,
                                  "min_cosine": INT8_BUDGET.min_cosine,
                                  "min_top1_agreement": INT8_BUDGET.min_top1_agreement},
                       "targets": {"speedup_vs_fp32": SPEEDUP_TARGET, "cosine_vs_fp32": COSINE_TARGET},
                       "onnxruntime": ort.__version__, "onnx": onnx.__version__},
        "env": env, "host": host, "results": results}
    write_text_atomic(args.out, json.dumps(payload, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
