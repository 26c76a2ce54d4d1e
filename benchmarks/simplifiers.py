"""onnxsim vs onnxslim on the whole zoo: nodes, simplification time, ONNX Runtime latency, exactness.

Each model is created, reparameterized and exported once (deployconv's exporter, standard lowering); both
simplifiers then run on the same raw graph. Latency: ORT CPU, batch 1, median of interleaved runs.
Usage: python -m benchmarks.simplifiers [--models a,b] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks._env import package_version
from deployconv.core.fsio import write_text_atomic
from deployconv.validate.fingerprint import collect

RESULTS = Path(__file__).parent / "results" / "simplifiers_cpu.json"


def main() -> None:
    import onnxruntime as ort

    from deployconv.core.target import get_target
    from deployconv.export.onnx_export import export_onnx
    from deployconv.export.simplify import simplify
    from deployconv.models import create_model, get_model_spec, list_models
    from deployconv.reparam import reparameterize

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = args.models.split(",") if args.models else list_models()
    target = get_target("onnx")
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = args.threads, 1
    rows = []
    for name in names:
        size = get_model_spec(name).info.input_size
        deploy = reparameterize(create_model(name), verify=False)
        raw, _ = export_onnx(deploy, torch.randn(2, *size), target, target.opset)
        x = np.random.default_rng(0).standard_normal((1, *size), dtype=np.float32)
        graphs, row = {"raw": raw}, {"model": name, "nodes": {"raw": len(raw.graph.node)}, "seconds": {},
                                      "error": {}}
        for tool in ("onnxsim", "onnxslim"):
            g, info = simplify(raw, tool)
            row["seconds"][tool] = round(info.seconds, 2)
            row["nodes"][tool] = info.nodes_after
            row["error"][tool] = info.error
            if not info.error:
                graphs[tool] = g
        sessions = {k: ort.InferenceSession(g.SerializeToString(), so, providers=["CPUExecutionProvider"])
                    for k, g in graphs.items()}
        ref = sessions["raw"].run(None, {"input": x})[0]
        row["max_rel_vs_raw"] = {k: float(np.abs(s.run(None, {"input": x})[0] - ref).max() / np.abs(ref).max())
                                 for k, s in sessions.items() if k != "raw"}
        samples: dict[str, list[float]] = {k: [] for k in sessions}
        for _ in range(3):
            for s in sessions.values():
                s.run(None, {"input": x})
        for _ in range(args.iters):
            for k, s in sessions.items():
                t0 = time.perf_counter_ns()
                s.run(None, {"input": x})
                samples[k].append((time.perf_counter_ns() - t0) / 1e6)
        row["ort_median_ms_b1"] = {k: round(float(np.median(v)), 3) for k, v in samples.items()}
        rows.append(row)
        print(json.dumps(row), flush=True)
    tot = {t: sum(r["seconds"].get(t, 0) for r in rows) for t in ("onnxsim", "onnxslim")}
    fails = {t: [r["model"] for r in rows if r["error"].get(t)] for t in ("onnxsim", "onnxslim")}
    payload = {"benchmark": "simplifiers", "conditions": {"threads": args.threads, "batch": 1, "iters": args.iters,
               "onnxsim": package_version("onnxsim"), "onnxslim": package_version("onnxslim"), "onnxruntime": ort.__version__},
               "env": collect(runtime="onnxruntime", runtime_version=ort.__version__, threads=args.threads).to_dict(),
               "total_seconds": tot, "failures": fails, "results": rows}
    write_text_atomic(args.out, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}; total simplify seconds {tot}; failures {fails}")


if __name__ == "__main__":
    main()
