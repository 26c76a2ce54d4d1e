"""fp32 -> mixed fp16 ONNX converters on the zoo: does the graph check and run on ONNX Runtime CPU, how close
is it to fp32, how many Casts (and doubled ones), which sensitive ops were left in fp16, how long it took.

Converters:
- onnxconverter-common `float16.convert_float_to_float16(keep_io_types=True)`, as shipped (its default block
  list) and with deployconv's fp32 op list (normalisations, softmax, reductions, exp/pow/log/erf, sampling);
- NVIDIA ModelOpt AutoCast `convert_to_mixed_precision(keep_io_types=True)`, default and with the same
  op list. ModelOpt pins onnx and pulls onnxruntime-gpu and cupy, so it lives in its own venv and runs in a
  subprocess (--modelopt-python; absent -> recorded as not run, with why);
- deployconv `to_fp16` (the rules) and `guard_fp16` (rules + measured fallback, FP16_BUDGET).

Each model is exported once as deployconv's `onnx` target does (seeded weights, reparameterized, dynamo
export, onnxslim), cached in --cache. Accuracy is measured two ways against the fp32 graph on ORT CPU:
`ort`: the converted graph as ORT CPU runs it (ORT has almost no fp16 CPU kernels and computes fp16 islands in
fp32, dropping the rounding between nodes: optimistic); `emulated`: the fp16 emulation twin (every fp16 tensor
rounded to fp16, fp32 arithmetic inside ops: what an fp16 device stores). Inputs: N(0,1), 2 batches of 2.
Usage: python -m benchmarks.fp16_converters [--models a,b] [--modelopt-python /tmp/modelopt-venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import onnx

from benchmarks._env import fingerprint as env_fingerprint
from benchmarks._env import package_version
from deployconv.core.fsio import write_text_atomic

RESULTS = Path(__file__).parent / "results" / "fp16_converters_cpu.json"
CORE = ("lsnet_t", "unireplknet_a", "repvgg_a0", "resnet50_dcn", "dcnv4_tiny")
GEMM_LIKE = ("Conv", "ConvTranspose", "MatMul", "Gemm", "Einsum")
_MODELOPT = r"""
import json, sys, time
t0 = time.perf_counter()
from modelopt.onnx.autocast import convert_to_mixed_precision
import onnx
t1 = time.perf_counter()
exclude = json.loads(sys.argv[3]) or None
m = convert_to_mixed_precision(sys.argv[1], low_precision_type="fp16", keep_io_types=True,
                               op_types_to_exclude=exclude, providers=["cpu"])
t2 = time.perf_counter()
onnx.save(m, sys.argv[2])
import modelopt
print(json.dumps({"seconds": t2 - t1, "version": modelopt.__version__}))
"""


def sensitive_ops() -> list[str]:
    from deployconv.export.precision import fp16_rules as r

    return sorted(r.NORMALISATION | r.SOFTMAX | r.REDUCTION | r.RANGE | r.SAMPLING)


def export_zoo_model(name: str, cache: Path) -> onnx.ModelProto:
    path = cache / f"{name}.onnx"
    if path.exists():
        return onnx.load(str(path))
    import torch

    from deployconv.core.target import get_target
    from deployconv.export.onnx_export import export_onnx
    from deployconv.export.simplify import simplify
    from deployconv.models import get_model_spec
    from deployconv.pipeline.export import create_seeded
    from deployconv.reparam import reparameterize

    target = get_target("onnx")
    size = get_model_spec(name).info.input_size
    deploy = reparameterize(create_seeded(name, None, (), 0), verify=False)
    raw, _ = export_onnx(deploy, torch.randn(2, *size), target, target.opset)
    proto, _ = simplify(raw, "onnxslim")
    cache.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    return proto


def _run(proto: onnx.ModelProto, feeds: list[np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
    return np.concatenate([np.asarray(sess.run(None, {inp.name: f.astype(dtype)})[0], np.float64) for f in feeds])


def graph_stats(proto: onnx.ModelProto, sensitive: set[str]) -> dict:
    """Casts, Cast->Cast chains, tensors cast to the same dtype more than once, fp16 share of GEMM-like nodes,
    sensitive ops computing in fp16; checker and strict shape inference."""
    from deployconv.export.precision.fp16 import typing_view

    g = proto.graph
    producer = {o: n for n in g.node for o in n.output}
    casts = [n for n in g.node if n.op_type == "Cast"]
    chains = sum(1 for c in casts if c.input[0] in producer and producer[c.input[0]].op_type == "Cast")
    per_boundary = Counter((c.input[0], next(a.i for a in c.attribute if a.name == "to")) for c in casts)
    stats: dict = {"nodes": len(g.node), "casts": len(casts), "cast_chains": chains,
                   "duplicate_casts": sum(v - 1 for v in per_boundary.values() if v > 1)}
    try:
        onnx.checker.check_model(proto)
        inferred = onnx.shape_inference.infer_shapes(typing_view(proto), strict_mode=True)
        stats["checker_and_shape_inference"] = "ok"
    except Exception as e:
        stats["checker_and_shape_inference"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        inferred = onnx.shape_inference.infer_shapes(typing_view(proto))
    ig = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*ig.input, *ig.output, *ig.value_info)}
    types.update({t.name: t.data_type for t in g.initializer})
    f16 = onnx.TensorProto.FLOAT16

    def in_fp16(n: onnx.NodeProto) -> bool:
        return bool(n.input) and types.get(n.input[0]) == f16

    gemm = [n for n in g.node if n.op_type in GEMM_LIKE]
    stats["gemm_like_fp16"] = f"{sum(map(in_fp16, gemm))}/{len(gemm)}"
    stats["sensitive_in_fp16"] = dict(Counter(n.op_type for n in g.node if n.op_type in sensitive and in_fp16(n)))
    return stats


def evaluate(proto: onnx.ModelProto, ref: np.ndarray, feeds: list[np.ndarray], sensitive: set[str]) -> dict:
    from deployconv.export.precision.fp16_emulate import emulation_twin
    from deployconv.validate.metrics import compare

    row = graph_stats(proto, sensitive)
    for key, make in (("ort", lambda: proto), ("emulated", lambda: emulation_twin(proto))):
        try:
            c = compare(ref, _run(make(), feeds))
            row[key] = {"cosine": c.cosine, "max_abs_rel_scale": c.max_abs_rel_scale,
                        "top1_agreement": c.top1_agreement, "nonfinite_out": c.nonfinite_out}
        except Exception as e:
            row[key] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][-300:]}"}
    return row


def _single_op(op: str, shapes: list[list[int]], attrs: dict, inits: dict) -> onnx.ModelProto:
    from onnx import TensorProto, helper, numpy_helper

    f16 = TensorProto.FLOAT16
    names = [f"in{i}" for i in range(len(shapes))]
    node = helper.make_node(op, names + list(inits), ["y"], **attrs)
    tensors = [numpy_helper.from_array(a.astype(np.float16) if a.dtype == np.float32 and k != "scales" else a, k)
               for k, a in inits.items()]
    g = helper.make_graph([node], op, [helper.make_tensor_value_info(n, f16, s) for n, s in zip(names, shapes)],
                          [helper.make_tensor_value_info("y", f16, None)], tensors)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)


def ort_fp16_kernels() -> dict[str, str]:
    """For each op the zoo uses (and the rules name): does ORT CPU run it in fp16 natively, or through the
    Casts its InsertCastTransformer adds (fp32 compute), or not at all. Read from ORT's own optimized graph."""
    import onnxruntime as ort

    x, r = [1, 8, 6, 6], np.random.default_rng(0)

    def f(*shape):
        return r.standard_normal(shape).astype(np.float32)

    ax = {"ax": np.array([1], np.int64)}
    cases = {
        "Conv": ([x], {"pads": [1, 1, 1, 1]}, {"w": f(8, 8, 3, 3)}), "MatMul": ([[2, 4, 8]], {}, {"w": f(8, 5)}),
        "Gemm": ([[2, 8]], {"transB": 1}, {"w": f(5, 8)}), "Einsum": ([[2, 3, 4], [2, 4, 5]],
                                                                     {"equation": "bij,bjk->bik"}, {}),
        "Add": ([x, x], {}, {}), "Mul": ([x, x], {}, {}), "Div": ([x, x], {}, {}), "Relu": ([x], {}, {}),
        "Sigmoid": ([x], {}, {}), "Gelu": ([x], {}, {}), "Erf": ([x], {}, {}), "Exp": ([x], {}, {}),
        "Pow": ([x], {}, {"p": np.array([2.0], np.float32)}), "Sqrt": ([x], {}, {}), "Clip": ([x], {}, {}),
        "Softmax": ([x], {"axis": 1}, {}),
        "LayerNormalization": ([x], {"axis": -1}, {"s": f(6), "b": f(6)}),
        "InstanceNormalization": ([x], {}, {"s": f(8), "b": f(8)}),
        "BatchNormalization": ([x], {}, {"s": f(8), "b": f(8), "m": f(8), "v": np.ones(8, np.float32)}),
        "ReduceMean": ([x], {}, ax), "ReduceL2": ([x], {}, ax), "GlobalAveragePool": ([x], {}, {}),
        "MaxPool": ([x], {"kernel_shape": [2, 2]}, {}), "AveragePool": ([x], {"kernel_shape": [2, 2]}, {}),
        "Transpose": ([x], {"perm": [0, 2, 3, 1]}, {}), "Reshape": ([x], {}, {"s": np.array([1, -1], np.int64)}),
        "Concat": ([x, x], {"axis": 1}, {}), "Pad": ([x], {}, {"p": np.array([0, 0, 1, 1] * 2, np.int64)}),
        "Resize": ([x], {"mode": "nearest"}, {"roi": np.zeros(0, np.float32),
                                             "scales": np.array([1, 1, 2, 2], np.float32)}),
        "GridSample": ([x, [1, 6, 6, 2]], {}, {}),
        "DeformConv": ([x, [8, 8, 3, 3], [1, 18, 6, 6]], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, {}),
    }
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for op, (shapes, attrs, inits) in cases.items():
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            so.optimized_model_filepath = str(Path(tmp) / f"{op}.onnx")
            so.log_severity_level = 3
            try:
                sess = ort.InferenceSession(_single_op(op, shapes, attrs, inits).SerializeToString(), so,
                                            providers=["CPUExecutionProvider"])
                sess.run(None, {f"in{i}": r.standard_normal(s).astype(np.float16) for i, s in enumerate(shapes)})
                casts = sum(n.op_type == "Cast" for n in onnx.load(so.optimized_model_filepath).graph.node)
                out[op] = "native fp16" if casts == 0 else f"fp32 between {casts} ORT-inserted Casts"
            except Exception as e:
                out[op] = f"fails: {str(e).splitlines()[0][-200:]}"
    return out


def converters(modelopt_python: str | None, sensitive: list[str]) -> dict:
    from deployconv.export.precision.fp16 import convert_fp16
    from deployconv.export.precision.fp16_guard import FP16_BUDGET, guard_fp16

    def occ(block: list[str] | None):
        def run(proto, feeds, path):
            from onnxconverter_common import float16

            kwargs = {"op_block_list": float16.DEFAULT_OP_BLOCK_LIST + block} if block else {}
            t0 = time.perf_counter()
            with warnings.catch_warnings():  # one warning per clamped tensor
                warnings.simplefilter("ignore")
                m = float16.convert_float_to_float16(proto, keep_io_types=True, **kwargs)
            return m, time.perf_counter() - t0, {}
        return run

    def modelopt(exclude: list[str] | None):
        def run(proto, feeds, path):
            if not modelopt_python:
                raise RuntimeError("not run: pass --modelopt-python (ModelOpt needs its own venv: it pins onnx "
                                   "and installs onnxruntime-gpu and cupy)")
            out = Path(path).with_suffix(".modelopt.onnx")
            r = subprocess.run([modelopt_python, "-c", _MODELOPT, str(path), str(out), json.dumps(exclude or [])],
                               capture_output=True, text=True, timeout=1800)
            if r.returncode:
                raise RuntimeError(r.stderr.strip().splitlines()[-1][:300])
            meta = json.loads(r.stdout.strip().splitlines()[-1])
            return onnx.load(str(out)), meta["seconds"], {"modelopt": meta["version"]}
        return run

    def ours(proto, feeds, path):
        t0 = time.perf_counter()
        m, info = convert_fp16(proto)
        return m, time.perf_counter() - t0, {"kept_fp32": len(info.kept_fp32), "clamped_values": info.clamped_values,
                                             "underflowed_values": info.underflowed_values}

    def guarded(proto, feeds, path):
        t0 = time.perf_counter()
        m, rep = guard_fp16(proto, feeds, FP16_BUDGET)
        return m, time.perf_counter() - t0, {"kept_fp32": len(rep.kept_fp32), "rounds": len(rep.rounds),
                                             "measured_kept": [k["name"] for k in rep.kept_fp32
                                                               if k["reason"].startswith("measured")]}

    return {"onnxconverter-common (default)": occ(None),
            "onnxconverter-common + fp32 op list": occ(sensitive),
            "modelopt autocast (default)": modelopt(None),
            "modelopt autocast + fp32 op list": modelopt(sensitive),
            "deployconv to_fp16 (rules)": ours,
            "deployconv guard_fp16 (rules + measured)": guarded}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(CORE))
    ap.add_argument("--modelopt-python", default=None)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "deployconv_fp16_bench")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import onnxruntime as ort

    sens = sensitive_ops()
    kernels = ort_fp16_kernels()
    print(json.dumps(kernels, indent=1), flush=True)
    convs = converters(args.modelopt_python, sens)
    rows = []
    for name in args.models.split(","):
        proto = export_zoo_model(name, args.cache)
        rng = np.random.default_rng(0)
        shape = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim][1:]
        feeds = [rng.standard_normal((2, *shape), dtype=np.float32) for _ in range(2)]
        ref = _run(proto, feeds)
        row: dict = {"model": name, "fp32_nodes": len(proto.graph.node),
                     "ops": dict(Counter(n.op_type for n in proto.graph.node)), "converters": {}}
        for cname, conv in convs.items():
            try:
                m, seconds, extra = conv(proto, feeds, args.cache / f"{name}.onnx")
            except Exception as e:
                row["converters"][cname] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
                print(f"{name:14s} {cname:42s} FAILED {row['converters'][cname]['error'][:120]}", flush=True)
                continue
            r = {"seconds": round(seconds, 2), **extra, **evaluate(m, ref, feeds, set(sens))}
            row["converters"][cname] = r
            print(f"{name:14s} {cname:42s} {json.dumps({k: r[k] for k in ('seconds', 'casts', 'cast_chains', 'duplicate_casts', 'gemm_like_fp16', 'ort', 'emulated')})}", flush=True)
        rows.append(row)
    payload = {"benchmark": "fp16_converters",
               "conditions": {"threads": args.threads, "inputs": "N(0,1), 2 batches x 2, seed 0",
                              "weights": "seeded init (no checkpoints), as `deployconv export` without --weights",
                              "onnxruntime": ort.__version__, "onnx": onnx.__version__,
                              "onnxconverter_common": package_version("onnxconverter-common"),
                              "fp32_ops_list": sens, "modelopt_python": args.modelopt_python},
               "env": env_fingerprint(), "ort_cpu_fp16_kernels": kernels, "results": rows}
    write_text_atomic(args.out, json.dumps(payload, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
