"""SKA as ONNX-domain ops: candidate formulations timed in ONNX Runtime CPU, each checked against the reference.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.ska_formulations [--threads 1,2] [--seconds 1.0]

Every candidate is a translation function for `torch.ops.deployconv.ska` (the same traced-onnxscript form the
exporter uses); the script exports a module holding nothing but that op (dynamic batch) with each candidate, so
each graph is exactly what the exporter would put into a model. The `unfold_einsum` row is instead what a user
gets without deployconv: an F.unfold + einsum SKA exported by torch.onnx with its default decompositions.

Shapes: lsnet_t's SKA calls at 224 px (128 ch at 14x14, 256 ch at 7x7; G = C / 8), batch 1 and 16. Timing: ORT
CPU sessions with fixed intra-op threads (inter-op 1, sequential, default graph optimisations), inputs and output
bound through IOBinding; candidates interleaved in rounds (so a burst of load from other processes hits all of
them alike); each stretch of timed runs in a fresh session after 50 ms of warm-up runs (idle sessions' intra-op
threads spin-wait and, with 2 threads on 2 cores, made the next session timed up to 3x slower); the median of
every timed run reported. Each row also records how many cores other processes kept busy while it was measured
(from /proc/stat).
Results: a table on stdout, JSON with the environment fingerprint (load average included) in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "ska_formulations_cpu.json"
SHAPES = ((128, 14, 14), (256, 7, 7))  # (C, H, W); G = C / 8
BATCHES = (1, 16)
_INT_MAX = 2**62


# --- candidate formulations (traced onnxscript, like every lowering) ----------------------------------------


def _op():
    from onnxscript import opset18

    return opset18


def _dims(x, w) -> tuple[int, int, int, int]:
    c, g, h, wd = x.shape[1], w.shape[1], x.shape[2], x.shape[3]
    return int(c), int(g), int(h), int(wd)


def _end(k: int) -> int:
    """Slice end for tap offset k in 0..2 of a 1-padded axis: k - 2 from the end, or to the end."""
    return k - 2 if k < 2 else _INT_MAX


def _add_chain(op, terms: list):
    """Add the terms in order, emitted after all of them: ORT then runs each Add right after its product (see
    deployconv.ops.ska.lower_standard on node order), which keeps the working set small."""
    out = terms[0]
    for t in terms[1:]:
        out = op.Add(out, t)
    return out


def _taps_2d(op, x, w) -> list:
    """The 9 products of (a): x as (B, C/G, G, 1, H+2, W+2) padded, a 2-D window per tap, w split in taps."""
    c, g, _, _ = _dims(x, w)
    x6 = op.Reshape(op.Unsqueeze(x, [1, 2]), [0, c // g, g, 1, 0, 0])  # zeros copy B, H, W
    xp = op.Pad(x6, [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1])
    taps = op.Split(op.Unsqueeze(w, [1]), axis=3, num_outputs=9)  # 9 x (B, 1, G, 1, H, W)
    return [op.Mul(op.Slice(xp, [i, j], [_end(i), _end(j)], [4, 5]), taps[3 * i + j])
            for i in range(3) for j in range(3)]


def taps_chain(x, w):
    """(a) Pad, 9 2-D Slices of x, w split into its 9 taps, Mul, Add chain."""
    op = _op()
    return op.Reshape(_add_chain(op, _taps_2d(op, x, w)), op.Shape(x))


def taps_sum(x, w):
    """(a') (a) with one variadic Sum instead of the 8-Add chain."""
    op = _op()
    return op.Reshape(op.Sum(*_taps_2d(op, x, w)), op.Shape(x))


def concat_reducesum(x, w):
    """(b) Pad, 9 Slices concatenated into a 9x buffer (B, C/G, G, 9, H, W), one Mul, ReduceSum over taps."""
    op = _op()
    c, g, _, _ = _dims(x, w)
    x6 = op.Reshape(op.Unsqueeze(x, [1, 2]), [0, c // g, g, 1, 0, 0])
    xp = op.Pad(x6, [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1])
    cols = op.Concat(*[op.Slice(xp, [i, j], [_end(i), _end(j)], [4, 5]) for i in range(3) for j in range(3)],
                     axis=3)
    out = op.ReduceSum(op.Mul(cols, op.Unsqueeze(w, [1])), [3], keepdims=0)
    return op.Reshape(out, op.Shape(x))


def onehot_conv(x, w):
    """(c) A grouped Conv with a fixed one-hot 3x3 kernel makes the 9 shifted copies (B, 9C, H, W) in
    (c, tap) order; then one Mul with w and ReduceSum over taps."""
    import numpy as np
    from onnx_ir import tensor

    op = _op()
    c, g, _, _ = _dims(x, w)
    k = np.zeros((9 * c, 1, 3, 3), np.float32)
    for t in range(9):
        k[t::9, 0, t // 3, t % 3] = 1.0
    cols = op.Conv(x, op.Constant(value=tensor(k)), group=c, pads=[1, 1, 1, 1])
    cols = op.Reshape(op.Unsqueeze(cols, [1, 2]), [0, c // g, g, 9, 0, 0])
    out = op.ReduceSum(op.Mul(cols, op.Unsqueeze(w, [1])), [3], keepdims=0)
    return op.Reshape(out, op.Shape(x))


def flat_colpad(x, w):
    """(e1) (a) on a flattened padded plane: with rows padded to W+2, tap (i, j) is ONE contiguous 1-D slice at
    offset i*(W+2)+j of length H*(W+2); w is padded to W+2 columns to match and the 2 junk columns per row are
    cut from the result once. Needs static H, W."""
    op = _op()
    c, g, h, wd = _dims(x, w)
    wp = wd + 2
    n = h * wp
    # Pad x: 1 row on top, 2 below (room for the last tap's overrun), 1 column either side; then flatten.
    xf = op.Reshape(op.Pad(x, [0, 0, 1, 1, 0, 0, 2, 1]), [0, c // g, g, 1, (h + 3) * wp])
    wf = op.Reshape(op.Pad(w, [0, 0, 0, 0, 0, 0, 0, 0, 0, 2]), [0, 1, g, 9, n])
    taps = op.Split(wf, axis=3, num_outputs=9)  # 9 x (B, 1, G, 1, n)
    terms = [op.Mul(op.Slice(xf, [t // 3 * wp + t % 3], [t // 3 * wp + t % 3 + n], [4]), taps[t]) for t in range(9)]
    out = op.Reshape(_add_chain(op, terms), [0, c, h, wp])
    return op.Slice(out, [0], [wd], [3])


def flat_masked_sum(x, w):
    """(e2') (e2) with one variadic Sum instead of the Add chain."""
    import numpy as np

    from deployconv.ops.ska import _static_dims, _tap_products

    op = _op()
    return op.Reshape(op.Sum(*_tap_products(op, x, w, _static_dims(x, w), np.float32)), op.Shape(x))


def flat_masked_add_inline(x, w):
    """(e2'') (e2) with each Add emitted right after its product: only the graph's node order differs."""
    import numpy as np

    from deployconv.ops.ska import _static_dims, _tap_products

    op = _op()
    out = None
    for t, p in enumerate(_tap_products(op, x, w, _static_dims(x, w), np.float32)):
        out = p if t == 0 else op.Add(out, p)
    return op.Reshape(out, op.Shape(x))


def flat_masked(x, w):
    """(e2) The shipped `standard` lowering, deployconv.ops.ska.lower_standard: contiguous tap slices of a
    flat padded x (centre tap = x), weight taps masked at the edge columns, products then an Add chain."""
    from deployconv.ops.ska import lower_standard

    return lower_standard(x, w)


CANDIDATES: dict[str, Callable] = {
    "taps_chain": taps_chain,
    "taps_sum": taps_sum,
    "concat_reducesum": concat_reducesum,
    "onehot_conv": onehot_conv,
    "flat_colpad": flat_colpad,
    "flat_masked_sum": flat_masked_sum,
    "flat_masked_add_inline": flat_masked_add_inline,
    "flat_masked": flat_masked,
}
BASELINE = "unfold_einsum"
SHIPPED = "flat_masked"


# --- building the graphs ------------------------------------------------------------------------------------


def _example(b: int, c: int, h: int, w: int, seed: int = 0):
    import torch

    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, h, w, generator=gen), torch.randn(b, c // 8, 9, h, w, generator=gen)


def _export(module, args, table: dict | None) -> bytes:
    import torch

    batch = torch.export.Dim("batch", min=1, max=1024)
    dyn = tuple({0: batch} for _ in args)
    prog = torch.onnx.export(module, args, dynamo=True, custom_translation_table=table, dynamic_shapes=dyn,
                             opset_version=18, verbose=False)
    return prog.model_proto.SerializeToString()


def build(name: str, c: int, h: int, w: int) -> bytes:
    import torch
    import torch.nn.functional as F
    from torch import nn

    import deployconv.ops.ska  # noqa: F401  (registers torch.ops.deployconv.ska)

    if name == BASELINE:

        class UnfoldSKA(nn.Module):  # the obvious PyTorch SKA a user would write to get an exportable model
            def forward(self, x, wt):
                b, c, h, w = x.shape
                g = wt.shape[1]
                cols = F.unfold(x, 3, padding=1).view(b, c // g, g, 9, h, w)
                return torch.einsum("brgkhw,bgkhw->brghw", cols, wt).reshape(b, c, h, w)

        return _export(UnfoldSKA(), _example(2, c, h, w), None)

    class Op(nn.Module):
        def forward(self, x, wt):
            return torch.ops.deployconv.ska(x, wt)

    return _export(Op(), _example(2, c, h, w), {torch.ops.deployconv.ska.default: CANDIDATES[name]})


def _node_counts(model_bytes: bytes) -> dict[str, int]:
    import onnx

    counts: dict[str, int] = {}
    for n in onnx.load_from_string(model_bytes).graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


# --- timing ---------------------------------------------------------------------------------------------------


def _cpu_seconds() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, CPU seconds of this process) so far: their deltas over a timed
    stretch tell how many cores other processes kept busy meanwhile (Linux; NaN elsewhere)."""
    me = os.times()
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    except (OSError, ValueError, IndexError):
        busy = float("nan")
    return busy, me.user + me.system


class _Timed:
    """One graph at one thread count. Every stretch of timed runs gets a fresh session that is closed after it,
    so no other session's intra-op threads (which spin-wait after their runs) compete for the cores."""

    def __init__(self, model_bytes: bytes, threads: int, x, w):
        self.model_bytes, self.threads, self.inputs = model_bytes, threads, (x, w)
        self.times: list[float] = []

    def _session(self):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(self.model_bytes, so, providers=["CPUExecutionProvider"])
        binding = sess.io_binding()
        values = [ort.OrtValue.ortvalue_from_numpy(a) for a in self.inputs]
        for i, v in zip(sess.get_inputs(), values):
            binding.bind_ortvalue_input(i.name, v)
        binding.bind_output(sess.get_outputs()[0].name, "cpu")
        return sess, binding, values

    def output(self):
        sess, binding, _ = self._session()
        sess.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def stretch(self, seconds: float, warmup_s: float = 0.05, min_iters: int = 5) -> None:
        sess, binding, _values = self._session()
        end = time.perf_counter() + warmup_s
        while time.perf_counter() < end:
            sess.run_with_iobinding(binding)
        end = time.perf_counter() + seconds
        i = 0
        while i < min_iters or time.perf_counter() < end:
            t0 = time.perf_counter_ns()
            sess.run_with_iobinding(binding)
            self.times.append((time.perf_counter_ns() - t0) / 1e3)
            i += 1
        del sess, binding


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated ORT intra-op thread counts")
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per candidate, config and thread count")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds the seconds are split into")
    ap.add_argument("--only", default="", help="comma-separated candidate names (default: all)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    import numpy as np
    import onnxruntime as ort
    import torch

    from benchmarks._env import fingerprint
    from deployconv.core.fsio import write_text_atomic
    from deployconv.ops.ska import ska

    torch.set_num_threads(1)
    names = [*CANDIDATES, BASELINE]
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    load_before = [round(v, 2) for v in os.getloadavg()]

    rows = []
    for c, h, w in SHAPES:
        graphs = {}
        for n in names:
            t0 = time.perf_counter()
            graphs[n] = build(n, c, h, w)
            print(f"built {n:18s} C={c} {h}x{w} in {time.perf_counter() - t0:.1f} s", flush=True)
        for b in BATCHES:
            x, wt = _example(b, c, h, w, seed=b)
            ref = ska(x.double(), wt.double()).numpy()
            scale = float(np.abs(ref).max())
            for th in threads:
                timed = {n: _Timed(graphs[n], th, x.numpy(), wt.numpy()) for n in names}
                errs = {n: float(np.abs(timed[n].output() - ref).max()) / scale for n in names}
                wall0, (busy0, mine0) = time.perf_counter(), _cpu_seconds()
                for _ in range(args.rounds):
                    for t in timed.values():
                        t.stretch(args.seconds / args.rounds)
                busy1, mine1 = _cpu_seconds()
                others = max(0.0, (busy1 - busy0) - (mine1 - mine0)) / (time.perf_counter() - wall0)
                base = statistics.median(timed[BASELINE].times) if BASELINE in timed else None
                for n in names:
                    ts = timed[n].times
                    med = statistics.median(ts)
                    rows.append(dict(
                        candidate=n, shipped=n == SHIPPED, channels=c, groups=c // 8, height=h, width=w, batch=b,
                        threads=th, median_us=round(med, 1), p10_us=round(float(np.percentile(ts, 10)), 1),
                        p90_us=round(float(np.percentile(ts, 90)), 1), runs=len(ts),
                        speedup_vs_baseline=round(base / med, 2) if base else None,
                        max_rel_err=float(f"{errs[n]:.2e}"), correct=errs[n] <= 1e-5,
                        other_processes_busy_cores=round(others, 2), nodes=_node_counts(graphs[n]),
                    ))
                print(f"C={c} {h}x{w} batch {b} threads {th} (other processes busy {others:.2f} cores): "
                      + ", ".join(f"{n} {statistics.median(timed[n].times):.0f}us" for n in names), flush=True)

    env = fingerprint()
    env["load_avg_before"] = load_before
    result = dict(
        benchmark="ska_formulations",
        conditions=dict(onnxruntime=ort.__version__, provider="CPUExecutionProvider", opset=18, dtype="float32",
                        graph_optimization="ORT default (ORT_ENABLE_ALL)", inter_op_threads=1,
                        timing="IOBinding; candidates interleaved in rounds; each timed stretch in a fresh session "
                               "after 50 ms of warm-up runs; median of all timed runs",
                        seconds_per_config=args.seconds, rounds=args.rounds),
        env=env,
        rows=rows,
    )
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")

    print(f"\nONNX Runtime {ort.__version__} CPU, {env['cpu_model']}, {env['cpu_usable']} usable cores, load "
          f"before/after {load_before}/{env['load_avg_1_5_15']}; fp32; median us (speed-up vs {BASELINE})")
    print(_table(rows, names, threads))
    print(f"* = the shipped `standard` lowering (deployconv.ops.ska.lower_standard); ! = wrong result\n"
          f"written {args.out}")


def _table(rows: list[dict], names: list[str], threads: list[int]) -> str:
    cols = [(c, b, th) for c, _, _ in SHAPES for b in BATCHES for th in threads]
    size = {c: f"{h}x{w}" for c, h, w in SHAPES}
    lines = [f"{'candidate':24s} " + " ".join(f"{f'C{c} {size[c]} b{b} t{th}':>20s}" for c, b, th in cols)]
    for n in names:
        cells = []
        for c, b, th in cols:
            r = next(r for r in rows if (r["candidate"], r["channels"], r["batch"], r["threads"]) == (n, c, b, th))
            speed = r["speedup_vs_baseline"]
            cells.append(f"{r['median_us']:8.0f}" + (f" ({speed:4.1f}x)" if speed else " " * 8)
                         + ("" if r["correct"] else "!"))
        lines.append(f"{n + (' *' if n == SHIPPED else ''):24s} " + " ".join(f"{c:>20s}" for c in cells))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
