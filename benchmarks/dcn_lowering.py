"""CPU cost of the standard DCN lowering at detection resolution, against the plain alternatives.

    .venv/bin/python -m benchmarks.dcn_lowering [--threads 2] [--reps 5] [--out results/dcn_lowering_cpu.json]

Shapes: the 3x3 modulated deformable convs of resnet50_dcn_backbone at an 800x1344 input (layer2: 128 ch at
100x168, layer3: 256 ch at 50x84, layer4: 512 ch at 25x42; stride 1, padding 1, one offset group), batch 1.
Candidates, each an ONNX graph on ONNX Runtime CPU (sequential, fixed intra-op threads), each checked against
deployconv's fp64 reference before timing:
  - `onnx DeformConv`: the `standard` lowering (one opset-19 DeformConv node), what model.onnx holds;
  - `gather + matmul`: what a user gets without the op: deployconv's reference math (bilinear gathers, im2col
    columns, matmul) exported by torch.onnx with its default decompositions (torchvision has no ONNX export
    for deform_conv2d);
  - `plain Conv 3x3`: the same layer without deformation (the floor: what the DCN costs over a conv).
Also PyTorch eager, side by side: deployconv's reference (`deform_conv2d`, the gather formulation) and
torchvision.ops.deform_conv2d (its CPU kernel: bilinear im2col + GEMM; the `bench` extra), when its compiled
op loads (else the JSON says why it was skipped). `agreement` holds the max abs difference of every pair of
outputs (ORT fp32, reference fp32/fp64, torchvision fp32/fp64).
Timing: median of --reps runs after 2 warm-up runs, candidates interleaved per round. The machine is shared:
the load average at start and end is recorded beside the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "dcn_lowering_cpu.json"
LAYERS = {"layer2 (128ch @100x168)": (128, 100, 168), "layer3 (256ch @50x84)": (256, 50, 84),
          "layer4 (512ch @25x42)": (512, 25, 42)}


def _deformconv_graph(c: int, h: int, w: int) -> bytes:
    from onnx import TensorProto, helper

    f = TensorProto.FLOAT
    node = helper.make_node("DeformConv", ["x", "w", "offset", "", "mask"], ["y"], kernel_shape=[3, 3],
                            pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1, offset_group=1)
    g = helper.make_graph([node], "dcn", [helper.make_tensor_value_info("x", f, [1, c, h, w]),
                                          helper.make_tensor_value_info("w", f, [c, c, 3, 3]),
                                          helper.make_tensor_value_info("offset", f, [1, 18, h, w]),
                                          helper.make_tensor_value_info("mask", f, [1, 9, h, w])],
                          [helper.make_tensor_value_info("y", f, [1, c, h, w])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)]).SerializeToString()


def _conv_graph(c: int, h: int, w: int) -> bytes:
    from onnx import TensorProto, helper

    f = TensorProto.FLOAT
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    g = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", f, [1, c, h, w]),
                                           helper.make_tensor_value_info("w", f, [c, c, 3, 3])],
                          [helper.make_tensor_value_info("y", f, [1, c, h, w])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)]).SerializeToString()


def _gather_graph(c: int, h: int, w: int) -> bytes:
    import io

    import torch

    from deployconv.ops.deform_conv import deform_conv2d

    class Plain(torch.nn.Module):
        def forward(self, x, weight, offset, mask):
            return deform_conv2d(x, offset, weight, None, 1, 1, 1, mask)

    args = (torch.randn(1, c, h, w), torch.randn(c, c, 3, 3), torch.randn(1, 18, h, w), torch.rand(1, 9, h, w))
    buf = io.BytesIO()
    torch.onnx.export(Plain(), args, buf, dynamo=False, opset_version=19, input_names=["x", "w", "offset", "mask"],
                      output_names=["y"])
    return buf.getvalue()


def _session(model: bytes, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


REF = "torch eager deform_conv2d (reference)"
TV = "torchvision.ops.deform_conv2d (PyTorch CPU)"


def load_torchvision() -> tuple[Callable | None, str]:
    """(torchvision.ops.deform_conv2d, version), or (None, why it cannot run here). Its C++ op must load: a
    CUDA torchvision wheel beside a CPU torch imports as far as its op registrations and fails there."""
    try:
        import torch
        import torchvision
        from torchvision.ops import deform_conv2d

        torch.ops.torchvision.deform_conv2d  # noqa: B018  (the compiled op itself, not just the Python wrapper)
    except Exception as e:  # ImportError, or the RuntimeError of a wheel whose _C.so does not load
        from importlib.metadata import PackageNotFoundError, version

        try:
            what = f"torchvision {version('torchvision')} is installed but its C++ ops do not load"
        except PackageNotFoundError:
            what = "torchvision is not installed (pip install '.[bench]', a build matching torch's)"
        first = (str(e).strip().splitlines() or [""])[0]
        return None, f"{what}: {type(e).__name__}: {first}"
    return deform_conv2d, torchvision.__version__


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def run(threads: int, reps: int, layers: dict[str, tuple[int, int, int]] | None = None,
        torchvision_op: tuple[Callable | None, str] | None = None) -> dict:
    import torch

    from benchmarks._env import fingerprint
    from deployconv.ops.deform_conv import deform_conv2d

    torch.set_num_threads(threads)
    tv, tv_version = torchvision_op if torchvision_op is not None else load_torchvision()
    if tv is None:
        print(f"torchvision column skipped: {tv_version}")
    rows, agreement = [], []
    load_start = os.getloadavg()
    for label, (c, h, w) in (layers or LAYERS).items():
        rng = np.random.default_rng(0)
        feed = {"x": rng.standard_normal((1, c, h, w), dtype=np.float32),
                "w": (rng.standard_normal((c, c, 3, 3), dtype=np.float32) / np.sqrt(9 * c)).astype(np.float32),
                "offset": (rng.standard_normal((1, 18, h, w), dtype=np.float32) * 2).astype(np.float32),
                "mask": rng.random((1, 9, h, w), dtype=np.float32)}
        t = {k: torch.from_numpy(v) for k, v in feed.items()}
        t64 = {k: v.double() for k, v in t.items()}
        with torch.inference_mode():
            outs = {"reference fp64": deform_conv2d(t64["x"], t64["offset"], t64["w"], None, 1, 1, 1,
                                                    t64["mask"]).numpy(),
                    "reference fp32": deform_conv2d(t["x"], t["offset"], t["w"], None, 1, 1, 1, t["mask"]).numpy()}
            if tv is not None:  # same semantics: (dy, dx) pairs per tap, mask per tap, padding 1
                outs["torchvision fp64"] = tv(t64["x"], t64["offset"], t64["w"], None, (1, 1), (1, 1), (1, 1),
                                              t64["mask"]).numpy()
                outs["torchvision fp32"] = tv(t["x"], t["offset"], t["w"], None, (1, 1), (1, 1), (1, 1),
                                              t["mask"]).numpy()
        ref = outs["reference fp64"]
        scale = float(np.abs(ref).max())
        cands = {"onnx DeformConv (standard lowering)": (_session(_deformconv_graph(c, h, w), threads), feed),
                 "gather + matmul (reference math, exported)": (_session(_gather_graph(c, h, w), threads), feed),
                 "plain Conv 3x3 (no deformation)": (_session(_conv_graph(c, h, w), threads),
                                                     {"x": feed["x"], "w": feed["w"]})}
        err = {}
        for name, (sess, f) in cands.items():
            out = sess.run(None, f)[0]
            if "plain" not in name:
                err[name] = _max_abs(out, ref)
            if name.startswith("onnx DeformConv"):
                outs["onnx DeformConv fp32 (ORT)"] = out
        err[REF] = _max_abs(outs["reference fp32"], ref)
        if tv is not None:
            err[TV] = _max_abs(outs["torchvision fp32"], ref)
        names = sorted(outs)  # every pair, fp64 and fp32, side by side
        agreement.append({"layer": label, "shape": [1, c, h, w], "output_abs_max": scale,
                          "max_abs": {f"{a} vs {b}": _max_abs(outs[a], outs[b])
                                      for i, a in enumerate(names) for b in names[i + 1:]}})
        eager = [REF] + ([TV] if tv is not None else [])
        times: dict[str, list[float]] = {n: [] for n in [*cands, *eager]}
        for sess, f in cands.values():
            for _ in range(2):
                sess.run(None, f)
        with torch.inference_mode():
            if tv is not None:
                tv(t["x"], t["offset"], t["w"], None, (1, 1), (1, 1), (1, 1), t["mask"])  # warm-up
            for _ in range(reps):
                for name, (sess, f) in cands.items():
                    t0 = time.perf_counter()
                    sess.run(None, f)
                    times[name].append((time.perf_counter() - t0) * 1e3)
                t0 = time.perf_counter()
                deform_conv2d(t["x"], t["offset"], t["w"], None, 1, 1, 1, t["mask"])
                times[REF].append((time.perf_counter() - t0) * 1e3)
                if tv is not None:
                    t0 = time.perf_counter()
                    tv(t["x"], t["offset"], t["w"], None, (1, 1), (1, 1), (1, 1), t["mask"])
                    times[TV].append((time.perf_counter() - t0) * 1e3)
        med = {n: statistics.median(v) for n, v in times.items()}
        floor = med["plain Conv 3x3 (no deformation)"]
        for n, v in med.items():
            rows.append({"layer": label, "shape": [1, c, h, w], "candidate": n, "median_ms": round(v, 2),
                         "vs_plain_conv": round(v / floor, 2), "max_abs_vs_fp64": err.get(n),
                         "max_abs_over_scale_vs_fp64": None if n not in err else err[n] / scale})
            print(f"{label:26s} {n:46s} {v:10.1f} ms  x{v / floor:5.1f} conv"
                  + (f"  max abs {err[n]:.1e} vs fp64" if n in err else ""))
    return {"benchmark": "dcn_lowering", "threads": threads, "reps": reps, "rows": rows, "agreement": agreement,
            "load_avg_start": list(load_start), "load_avg_end": list(os.getloadavg()),
            "onnxruntime": __import__("onnxruntime").__version__, "torchvision": tv_version if tv else None,
            "torchvision_skipped": None if tv else tv_version, "env": fingerprint()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args()
    result = run(a.threads, a.reps)
    from deployconv.core.fsio import write_text_atomic

    write_text_atomic(a.out, json.dumps(result, indent=2) + "\n")
    print(f"saved {a.out}")


if __name__ == "__main__":
    main()
