"""Graph-pass reparameterization on hand-written multi-branch blocks (no methods): ONNX node count and
ONNX Runtime CPU latency, unfused train form vs deployconv's fused deploy form, side by side in one run.

The unfused graph is what a user would otherwise ship: the eval-mode model exported as is, and ONNX Runtime
then applies its own graph optimizations (ORT_ENABLE_ALL folds Conv+BatchNormalization, but not parallel
branches); node counts are given before and after ORT's optimizer. Models: tests/reparam/imitations.py
(RepVGG, Diverse Branch Block, ACNet, UniRepLKNet-style dilated), widths set by --width.
Usage: python -m benchmarks.graph_reparam [--width 64] [--size 160] [--threads 2] [--iters 40]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch

from deployconv.core.fsio import write_text_atomic
from deployconv.validate.fingerprint import collect

RESULTS = Path(__file__).parent / "results" / "graph_reparam_cpu.json"


def _ort_nodes_after_optimizer(proto: onnx.ModelProto, threads: int) -> int:
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as d:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.optimized_model_filepath = str(Path(d) / "opt.onnx")
        so.intra_op_num_threads = threads
        so.log_severity_level = 3  # the optimized file is only counted, never shipped
        ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return len(onnx.load(so.optimized_model_filepath).graph.node)


def main() -> None:
    import onnxruntime as ort

    from deployconv.core.target import get_target
    from deployconv.export.onnx_export import export_onnx
    from deployconv.reparam import reparameterize
    from tests.helpers import randomize_
    from tests.reparam.imitations import IMITATIONS

    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    env = collect(runtime="onnxruntime", runtime_version=ort.__version__, threads=args.threads).to_dict()
    target = get_target("onnx")
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = args.threads, 1
    shape = (1, 3, args.size, args.size)
    rows = []
    for name, factory in IMITATIONS.items():
        torch.manual_seed(0)
        train = randomize_(factory(args.width)).eval()
        t0 = time.perf_counter()
        deploy = reparameterize(train, probe=torch.randn(*shape))
        reparam_s = time.perf_counter() - t0
        rep = deploy.reparam_report
        protos = {"unfused": export_onnx(train, torch.randn(*shape), target, target.opset)[0],
                  "fused": export_onnx(deploy, torch.randn(*shape), target, target.opset)[0]}
        sessions = {k: ort.InferenceSession(p.SerializeToString(), so, providers=["CPUExecutionProvider"])
                    for k, p in protos.items()}
        x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        feed = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
        outs = {k: s.run(None, feed[k])[0] for k, s in sessions.items()}
        for _ in range(5):
            for k, s in sessions.items():
                s.run(None, feed[k])
        samples: dict[str, list[float]] = {k: [] for k in sessions}
        for _ in range(args.iters):  # interleaved, so load on a shared machine hits both alike
            for k, s in sessions.items():
                t = time.perf_counter_ns()
                s.run(None, feed[k])
                samples[k].append((time.perf_counter_ns() - t) / 1e6)
        med = {k: round(float(np.median(v)), 3) for k, v in samples.items()}
        ops = {k: {t: sum(n.op_type == t for n in p.graph.node) for t in ("Conv", "BatchNormalization", "Add")}
               for k, p in protos.items()}
        row = {
            "model": name,
            "blocks": len(train.blocks),
            "sites": [{"path": r.path, "pattern": r.module_type, "fp64_rel": r.max_rel_diff}
                      for r in rep.rewrites if r.rewrite.startswith("graph:")],
            "reparameterize_seconds": round(reparam_s, 2),
            "params": {"unfused": rep.params_before, "fused": rep.params_after},
            "onnx_nodes": {k: len(p.graph.node) for k, p in protos.items()},
            "ort_optimized_nodes": {k: _ort_nodes_after_optimizer(p, args.threads) for k, p in protos.items()},
            "ops": ops,
            "ort_median_ms": med,
            "speedup": round(med["unfused"] / med["fused"], 2),
            "fused_vs_unfused_max_rel": float(np.abs(outs["fused"] - outs["unfused"]).max()
                                              / np.abs(outs["unfused"]).max()),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    payload = {"benchmark": "graph_reparam",
               "conditions": {"width": args.width, "input": list(shape), "threads": args.threads, "batch": 1,
                              "iters": args.iters, "warmup": 5, "statistic": "median of interleaved runs",
                              "exporter": "deployconv export_onnx (dynamo), target onnx",
                              "ort_graph_optimization": "ORT_ENABLE_ALL (default)",
                              "torch": torch.__version__, "onnxruntime": ort.__version__},
               "env": env, "results": rows}
    write_text_atomic(args.out, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
