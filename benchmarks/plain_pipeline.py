"""deployconv's ONNX vs the plain pipeline a user would otherwise run, on ONNX Runtime CPU, side by side.

Plain pipeline (what the official repos and a typical user do):
  * official-style fusion only: LSNet `replace_batchnorm` fuses Conv2d_BN, BN_Linear and RepVGGDW (LSConv's BN,
    the attention bias gather and heads stay as they are); RepVGG / UniRepLKNet use their official converters,
    which deployconv's reparameterization reproduces exactly (tests/models/test_golden_official.py);
  * SKA written with unfold (the only portable formulation users have: the official SKA is a Triton kernel);
  * `torch.onnx.export` with its defaults, then onnxsim.
deployconv: `deployconv.pipeline.export.export(model, "onnx")` (full reparameterization, custom-op lowering,
onnxslim), i.e. exactly what `deployconv export` writes.

Both graphs are timed in the same process, interleaved round by round, same threads, same inputs; PyTorch eager
deploy form is timed alongside. Usage: python -m benchmarks.plain_pipeline [--models lsnet_t,...] [--batches 1,16]
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F

from deployconv.core.fsio import write_text_atomic
from deployconv.validate.fingerprint import collect

RESULTS = Path(__file__).parent / "results" / "plain_pipeline_cpu.json"


def unfold_ska(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """SKA as a user writes it without a kernel: unfold the 3x3 neighbourhood, multiply, sum."""
    b, c, h, wd = x.shape
    g = w.shape[1]
    cols = F.unfold(x, 3, padding=1).view(b, c // g, g, 9, h, wd)
    return (cols * w.view(b, 1, g, 9, h, wd)).sum(3).view(b, c, h, wd)


def plain_model(name: str) -> torch.nn.Module:
    from deployconv.pipeline.export import create_seeded
    from deployconv.reparam import reparameterize

    model = create_seeded(name, None, (), 0)  # the weights deployconv's export uses (seed 0)
    if not name.startswith("lsnet"):
        return reparameterize(model)  # equals the official converters (golden tests)
    from deployconv.models import lsnet

    official = (lsnet.Conv2d_BN, lsnet.BN_Linear, lsnet.RepVGGDW)

    def walk(m: torch.nn.Module) -> torch.nn.Module:  # LSNet's replace_batchnorm, re-stated
        for n, child in list(m.named_children()):
            if isinstance(child, official):
                setattr(m, n, child.fuse() if hasattr(child, "fuse") else child)
                child = getattr(m, n)
                if isinstance(child, lsnet.RepVGGDW) and hasattr(child, "reparameterize"):
                    child.reparameterize()
            walk(getattr(m, n))
        return m

    model = walk(model)
    for m in model.modules():
        if type(m).__name__ == "SKA":
            m.forward = unfold_ska
    return model.eval()


def export_plain(model: torch.nn.Module, size: tuple[int, ...]) -> onnx.ModelProto:
    import onnxsim

    buf = io.BytesIO()
    x = torch.randn(2, *size)
    torch.onnx.export(model, (x,), buf, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    proto, ok = onnxsim.simplify(onnx.load_from_string(buf.getvalue()))
    assert ok
    return proto


def time_sessions(sessions: dict, feed: np.ndarray, rounds: int, iters: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {k: [] for k in sessions}
    for fn in sessions.values():  # warm-up
        for _ in range(3):
            fn(feed)
    for _ in range(rounds):
        for k, fn in sessions.items():
            for _ in range(iters):
                t0 = time.perf_counter_ns()
                fn(feed)
                samples[k].append((time.perf_counter_ns() - t0) / 1e6)
    return samples


def main() -> None:
    import onnxruntime as ort

    from deployconv.models import get_model_spec
    from deployconv.pipeline.export import ExportOptions, export

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="lsnet_t,unireplknet_a,repvgg_a0")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for name in args.models.split(","):
        size = get_model_spec(name).info.input_size
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            ours = export(name, "onnx", Path(tmp) / "o", options=ExportOptions(bench=False))
            ours_s = time.perf_counter() - t0
            ours_proto = onnx.load(str(ours.out / "model.onnx"))
        plain = plain_model(name)
        t0 = time.perf_counter()
        plain_proto = export_plain(plain, size)
        plain_s = time.perf_counter() - t0
        from deployconv.pipeline.export import create_seeded
        from deployconv.reparam import reparameterize

        deploy = reparameterize(create_seeded(name, None, (), 0))
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        sess = {k: ort.InferenceSession(p.SerializeToString(), so, providers=["CPUExecutionProvider"])
                for k, p in (("deployconv", ours_proto), ("plain", plain_proto))}
        for b in [int(v) for v in args.batches.split(",")]:
            x = np.random.default_rng(0).standard_normal((b, *size), dtype=np.float32)
            ref = plain(torch.from_numpy(x)).detach().numpy()
            outs = {k: s.run(None, {"input": x})[0] for k, s in sess.items()}
            errs = {k: float(np.abs(o - ref).max() / np.abs(ref).max()) for k, o in outs.items()}

            def torch_deploy(a, m=deploy):
                with torch.no_grad():
                    return m(torch.from_numpy(a))

            fns = {"deployconv ort": lambda a, s=sess["deployconv"]: s.run(None, {"input": a}),
                   "plain ort": lambda a, s=sess["plain"]: s.run(None, {"input": a}),
                   "torch eager deploy": torch_deploy}
            iters = 20 if b == 1 else 4
            samples = time_sessions(fns, x, args.rounds, iters)
            med = {k: float(np.median(v)) for k, v in samples.items()}
            row = {"model": name, "batch": b, "median_ms": med,
                   "p90_ms": {k: float(np.percentile(v, 90)) for k, v in samples.items()},
                   "speedup_vs_plain": med["plain ort"] / med["deployconv ort"],
                   "speedup_vs_torch_deploy": med["torch eager deploy"] / med["deployconv ort"],
                   "nodes": {"deployconv": len(ours_proto.graph.node), "plain": len(plain_proto.graph.node)},
                   "max_rel_err_vs_plain_torch": errs, "export_s": {"deployconv_full_pipeline": ours_s,
                                                                    "plain": plain_s},
                   "samples_per_runtime": len(samples["plain ort"])}
            results.append(row)
            print(f"{name:14s} b={b:<3d} deployconv {med['deployconv ort']:8.2f} ms  plain {med['plain ort']:8.2f} ms  "
                  f"torch-deploy {med['torch eager deploy']:8.2f} ms  -> {row['speedup_vs_plain']:.2f}x vs plain, "
                  f"{row['speedup_vs_torch_deploy']:.2f}x vs torch; nodes {row['nodes']}", flush=True)
    env = collect(runtime="onnxruntime", runtime_version=ort.__version__, threads=args.threads).to_dict()
    payload = {"benchmark": "plain_pipeline", "conditions": {"threads": args.threads, "rounds": args.rounds,
               "timing": "median of per-call wall times, runtimes interleaved round by round",
               "torch": torch.__version__, "onnxruntime": ort.__version__, "onnx": onnx.__version__},
               "env": env, "results": results}
    write_text_atomic(args.out, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
