"""deployconv's CUDA kernels (plugins_cpp/kernels via deployconv.ops.cuda_ext) against what a user runs
today, on realistic shapes, on one GPU.

    python -m benchmarks.gpu_kernels [--kernels ska,dcnv2,dcnv4,dwconv] [--dtypes fp16,fp32] [--quick]
                                     [--budget-s S] [--out FILE | --out-dir DIR]

Kernels, shapes and baselines:
  ska     LSNet's LSConv (SKA + BN affine + residual, fused) at every lsnet_t/s/b stage shape that has one
          (224 px), batch 1 and 16; baseline: the PyTorch reference (pad + 9 fused multiply-adds) + affine + add.
          Plus "bandwidth" rows: lsnet_t's shapes at the smallest batch whose compulsory bytes are >= 4x the L2,
          so DRAM serves them (the 224 px rows fit in an H100/H200 L2); the SKA goal is judged on those.
  dcnv2   ResNet-50-DCN's 3x3 DCN convs, stage 3 and 4, at detection size (800x1333 input) batch 1 and at
          224 px batch 16; baseline: torchvision.ops.deform_conv2d (im2col + GEMM) when importable, else the
          deployconv reference.
  dcnv4   the DCNv4 core op at FlashInternImage-T's stage shapes (C = 64..512, group_channels 16), batch 1/16;
          baseline: the deployconv reference (gather + batched matmul; no official kernel is installed here).
  dwconv  large-kernel depthwise convs (7x7, 13x13, 31x31 at UniRepLKNet/RepLKNet stage shapes), batch 1/16;
          baselines: F.conv2d on NCHW tensors and on channels-last tensors (cuDNN), cudnn.benchmark on.
Timing: the median of `samples` CUDA-event samples, each several back-to-back calls replayed from a CUDA graph
(pure GPU time, no Python launch overhead; where a baseline cannot be captured it is timed eagerly and the row
says so), after warm-up. TF32 is off (fp32 means fp32 on both sides). Reported per row: median ms, GB/s on the
compulsory bytes (every input read once, the output written once), TFLOP/s, % of the device's measured DRAM
bandwidth (a large device-to-device copy in the same run) and of its measured fp32 peak (an fp32 SGEMM),
whether the working set fits in L2 (then GB/s can exceed DRAM bandwidth), speedup over each baseline, and the
max relative difference to the first baseline (a sanity check, not a tolerance test: tests/gpu does that).
Goals (benchmarks/gpu_goals.py, issue #10) are judged on the rows of the same run and recorded as met / not met
/ not evaluated with their numbers. --budget-s: cases that would start after the budget are skipped (and listed),
the JSON is written either way; an exception in one kernel family is recorded and the others still run.
Results: a table on stdout and JSON (device, torch/CUDA versions, shapes, conditions, environment) written
atomically to benchmarks/results/gpu_kernels_<gpu>.json or --out.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DTYPE_NAMES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


# --- shapes (pure data) -----------------------------------------------------------------------------------------

# (model, C, H, W) of every LSConv at 224 px; G = C / 8 weight groups.
SKA_SHAPES = [("lsnet_t", 128, 14, 14), ("lsnet_t", 256, 7, 7), ("lsnet_s", 192, 14, 14), ("lsnet_s", 320, 7, 7),
              ("lsnet_b", 128, 28, 28), ("lsnet_b", 256, 14, 14), ("lsnet_b", 384, 7, 7)]
# (name, N, C = O, H, W): ResNet-50-DCN's conv2 in stages 3 and 4 (3x3, stride 1, pad 1, mask, no bias).
DCN_SHAPES = [("r50dcn_stage3_det800", 1, 256, 50, 84), ("r50dcn_stage4_det800", 1, 512, 25, 42),
              ("r50dcn_stage3_224", 16, 256, 14, 14), ("r50dcn_stage4_224", 16, 512, 7, 7)]
# (name, H, W, G): FlashInternImage-T stages at 224 px, group_channels 16, 3x3, pad 1.
DCNV4_SHAPES = [("stage1", 56, 56, 4), ("stage2", 28, 28, 8), ("stage3", 14, 14, 16), ("stage4", 7, 7, 32)]
# (name, C, H, W, k): large-kernel depthwise convs, stride 1, "same" padding.
DW_SHAPES = [("unireplknet_s1_7x7", 96, 56, 56, 7), ("unireplknet_s3_7x7", 384, 14, 14, 7),
             ("replknet_s4_13x13", 1024, 7, 7, 13), ("unireplknet_s2_13x13", 192, 28, 28, 13),
             ("replknet31_s1_31x31", 128, 56, 56, 31), ("replknet31_s2_29x29", 256, 28, 28, 29)]
BATCHES = (1, 16)


@dataclass
class Row:
    kernel: str
    case: str
    dtype: str
    shape: dict
    ours_ms: float
    ours_p10_ms: float
    ours_p90_ms: float
    baselines_ms: dict[str, float]
    speedup: dict[str, float]
    compulsory_bytes: int
    flops: int
    gb_per_s: float
    tflop_per_s: float
    pct_dram_peak: float
    pct_fp32_peak: float
    working_set_fits_l2: bool
    max_rel_diff_vs_baseline: float
    timing: dict[str, str] = field(default_factory=dict)  # "graph" or "eager (why)" per timed function
    purpose: str = "model"  # "model": a real model's shape; "bandwidth": sized past the L2 for the DRAM goal


# --- pure arithmetic --------------------------------------------------------------------------------------------


def ska_cost(n: int, c: int, h: int, w: int, es: int) -> tuple[int, int]:
    """(compulsory bytes, FLOPs) of the fused LSConv form `ext.ska(x, w, scale, shift, residual=x)`.

    Compulsory bytes: the least any implementation must move between DRAM and the chip, every tensor touched
    exactly once: x (N*C*H*W elements; the residual IS x, so it is not counted twice) and the weights
    (N*G*9*H*W, G = C/8) read, y (N*C*H*W) written, at `es` bytes per element, plus scale and shift (C fp32
    each). FLOPs: 9 multiply-adds + scale, shift and residual add per output element."""
    g = c // 8
    return es * (2 * n * c * h * w + n * g * 9 * h * w) + 8 * c, n * c * h * w * (2 * 9 + 3)


def bandwidth_batch(c: int, h: int, w: int, es: int, l2_bytes: int, factor: int = 4) -> int:
    """The smallest batch whose SKA compulsory bytes are >= factor * l2_bytes (at least 1): then each call streams
    from DRAM, even when calls are replayed back to back."""
    per_image = ska_cost(1, c, h, w, es)[0] - 8 * c
    return max(1, math.ceil((factor * l2_bytes - 8 * c) / per_image))


def dcn_cost(n: int, c: int, o: int, h: int, w: int, k: int, es: int) -> tuple[int, int]:
    """Stride 1, same padding: x, offsets (2K), mask (K), weights read once, y written once; GEMM FLOPs."""
    hw = h * w
    return es * (n * c * hw + n * 3 * k * hw + o * c * k + n * o * hw), 2 * n * o * hw * c * k


def dcnv4_cost(n: int, h: int, w: int, g: int, d: int, k: int, p: int, es: int) -> tuple[int, int]:
    """value and offset_mask read once, y written once; 4 corner FMAs per point and channel."""
    return es * (2 * n * h * w * g * d + n * h * w * p), n * h * w * g * d * k * 4 * 2


def dw_cost(n: int, c: int, h: int, w: int, k: int, es: int) -> tuple[int, int]:
    """Stride 1, same padding: x, weights, bias read once, y written once; one FMA per tap."""
    return es * (2 * n * c * h * w + c * k * k + c), 2 * n * c * h * w * k * k


def max_rel_diff(a, b) -> float:
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


# --- timing -----------------------------------------------------------------------------------------------------


def _events_ms(run: Callable[[], None], calls: int, samples: int) -> list[float]:
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    out = []
    for _ in range(samples):
        start.record()
        run()
        end.record()
        end.synchronize()
        out.append(start.elapsed_time(end) / calls)
    return out


def time_gpu(fn: Callable[[], object], samples: int, warmup: int = 5, sample_ms: float = 2.0) -> tuple[list[float], str]:
    """Per-call GPU times of `fn` (ms): each sample replays a CUDA graph of enough back-to-back calls to last
    ~sample_ms; if `fn` cannot be captured (host syncs, CPU tensors), eager calls instead."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    one = statistics.median(_events_ms(fn, 1, 3))
    calls = max(1, min(200, math.ceil(sample_ms / max(one, 1e-3))))
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()  # warm-up on the capture stream (lazy init, cuDNN plans)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(calls):
                fn()
        graph.replay()
        torch.cuda.synchronize()
        times = _events_ms(graph.replay, calls, samples)
        del graph
        return times, "graph"
    except Exception as e:  # capture refused: time eagerly
        torch.cuda.synchronize()
        why = f"{type(e).__name__}: {str(e).splitlines()[0][:80]}" if str(e) else type(e).__name__

        def eager():
            for _ in range(calls):
                fn()

        return _events_ms(eager, calls, samples), f"eager ({why})"


def _copy_ms(nbytes: int, samples: int) -> float:
    import torch

    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda").random_(0, 255)
    dst = torch.empty_like(src)
    return statistics.median(time_gpu(lambda: dst.copy_(src), samples, sample_ms=20)[0])


def _sgemm_ms(m: int, samples: int) -> float:
    import torch

    a = torch.randn(m, m, device="cuda")
    b = torch.randn(m, m, device="cuda")
    return statistics.median(time_gpu(lambda: a @ b, samples, sample_ms=50)[0])


def measure_peaks(samples: int) -> dict:
    """The device's measured DRAM bandwidth (device-to-device copy, read + write) and fp32 SGEMM throughput."""
    import torch

    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    nbytes = min(1 << 30, props.total_memory // 16)
    copy_ms = _copy_ms(nbytes, samples)
    m = 8192
    mm_ms = _sgemm_ms(m, max(3, samples // 3))
    torch.cuda.empty_cache()
    return {"dram_gb_per_s": 2 * nbytes / copy_ms / 1e6, "dram_copy_bytes": nbytes,
            "fp32_sgemm_tflop_per_s": 2 * m**3 / mm_ms / 1e9, "sgemm_size": m}


# --- the benchmark rows -----------------------------------------------------------------------------------------


class Bench:
    """Times one case: ours and its baselines, and turns the numbers into a Row."""

    def __init__(self, peaks: dict, l2_bytes: int, samples: int, deadline: float = math.inf):
        self.peaks, self.l2, self.samples, self.deadline = peaks, l2_bytes, samples, deadline
        self.rows: list[Row] = []
        self.skipped: list[str] = []  # cases not started because the budget ran out

    def over_budget(self) -> bool:
        return time.monotonic() > self.deadline

    def add(self, kernel: str, case: str, dtype, shape: dict, ours: Callable, baselines: dict[str, Callable],
            cost: tuple[int, int], purpose: str = "model") -> Row | None:
        import torch

        if self.over_budget():
            self.skipped.append(f"{kernel} {case} {str(dtype).replace('torch.', '')}")
            return None
        first = next(iter(baselines.values()))
        diff = max_rel_diff(ours(), first())
        times, how = time_gpu(ours, self.samples)
        med = statistics.median(times)
        base_ms, timing = {}, {"ours": how}
        for name, fn in baselines.items():
            t, h = time_gpu(fn, self.samples)
            base_ms[name], timing[name] = statistics.median(t), h
        nbytes, flops = cost
        row = Row(
            kernel=kernel, case=case, dtype=str(dtype).replace("torch.", ""), shape=shape, ours_ms=med,
            ours_p10_ms=float(_quantile(times, 0.1)), ours_p90_ms=float(_quantile(times, 0.9)),
            baselines_ms=base_ms, speedup={k: v / med for k, v in base_ms.items()},
            compulsory_bytes=nbytes, flops=flops, gb_per_s=nbytes / med / 1e6, tflop_per_s=flops / med / 1e9,
            pct_dram_peak=100 * nbytes / med / 1e6 / self.peaks["dram_gb_per_s"],
            pct_fp32_peak=100 * flops / med / 1e9 / self.peaks["fp32_sgemm_tflop_per_s"],
            working_set_fits_l2=nbytes <= self.l2, max_rel_diff_vs_baseline=diff, timing=timing, purpose=purpose,
        )
        self.rows.append(row)
        torch.cuda.empty_cache()
        print(f"{kernel:7s} {case:28s} {row.dtype:9s} {med * 1e3:9.1f} us  {row.gb_per_s:8.0f} GB/s "
              f"{row.tflop_per_s:6.2f} TFLOP/s  " + "  ".join(f"{k}: {v:.2f}x" for k, v in row.speedup.items()),
              flush=True)
        return row


def _quantile(v: list[float], q: float) -> float:
    s = sorted(v)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def bench_ska(b: Bench, dtypes, batches) -> None:
    import torch

    from deployconv.ops import cuda_ext
    from deployconv.ops.ska import ska as ska_ref

    ext = cuda_ext.load_extension()
    cases = []
    for dtype in dtypes:  # bandwidth rows first: the goal is judged on them
        es = torch.empty((), dtype=dtype).element_size()
        cases += [("bandwidth", dtype, model, c, h, w, bandwidth_batch(c, h, w, es, b.l2))
                  for model, c, h, w in SKA_SHAPES if model == "lsnet_t"]
    cases += [("model", dtype, model, c, h, w, n) for dtype in dtypes for model, c, h, w in SKA_SHAPES
              for n in batches]
    for purpose, dtype, model, c, h, w, n in cases:
        x = torch.randn(n, c, h, w, device="cuda", dtype=dtype)
        wt = torch.randn(n, c // 8, 9, h, w, device="cuda", dtype=dtype)
        sc = torch.rand(c, device="cuda") + 0.5
        sh = torch.randn(c, device="cuda")
        scx, shx = sc.to(dtype).view(1, c, 1, 1), sh.to(dtype).view(1, c, 1, 1)
        b.add("ska", f"{model} {c}x{h}x{w} b{n}" + (" (DRAM)" if purpose == "bandwidth" else ""), dtype,
              {"N": n, "C": c, "H": h, "W": w, "G": c // 8},
              lambda x=x, wt=wt, sc=sc, sh=sh, ext=ext: ext.ska(x, wt, sc, sh, x),
              {"torch_reference": lambda x=x, wt=wt, scx=scx, shx=shx: ska_ref(x, wt) * scx + shx + x},
              ska_cost(n, c, h, w, x.element_size()), purpose)
        del x, wt


def bench_dcnv2(b: Bench, dtypes) -> None:
    import torch

    from deployconv.ops import cuda_ext
    from deployconv.ops.deform_conv import deform_conv2d as dcn_ref

    try:
        from torchvision.ops import deform_conv2d as tv_dcn

        base_name, base = "torchvision", tv_dcn
    except ImportError:
        base_name, base = "deployconv_reference", dcn_ref
    ext = cuda_ext.load_extension()
    for dtype in dtypes:
        for name, n, c, h, w in DCN_SHAPES:
            x = torch.randn(n, c, h, w, device="cuda", dtype=dtype)
            wt = torch.randn(c, c, 3, 3, device="cuda", dtype=dtype) / math.sqrt(9 * c)
            off = (torch.rand(n, 18, h, w, device="cuda") * 4 - 2).to(dtype)
            mask = torch.rand(n, 9, h, w, device="cuda").to(dtype)
            b.add("dcnv2", f"{name} b{n}", dtype, {"N": n, "C": c, "O": c, "H": h, "W": w, "k": 3, "stride": 1,
                                                   "pad": 1, "offset_groups": 1, "mask": True, "bias": False},
                  lambda x=x, wt=wt, off=off, mask=mask: ext.deform_conv2d(x, wt, off, None, mask, 1, 1, 1, 1, 1, 1),
                  {base_name: lambda x=x, wt=wt, off=off, mask=mask: base(x, off, wt, None, 1, 1, 1, mask)},
                  dcn_cost(n, c, c, h, w, 9, x.element_size()))


def bench_dcnv4(b: Bench, dtypes, batches) -> None:
    import torch

    from deployconv.ops import cuda_ext
    from deployconv.ops.dcnv4 import dcnv4 as dcnv4_ref
    from deployconv.ops.dcnv4 import padded_dim

    ext = cuda_ext.load_extension()
    for dtype in dtypes:
        for name, h, w, g in DCNV4_SHAPES:
            for n in batches:
                d, p = 16, padded_dim(g, 3, 3, 0)
                value = torch.randn(n, h, w, g * d, device="cuda", dtype=dtype)
                om = torch.randn(n, h, w, p, device="cuda", dtype=dtype)
                args = (3, 3, 1, 1, 1, 1, 1, 1, g, d, 1.0, 0)
                b.add("dcnv4", f"{name} {g * d}x{h}x{w} b{n}", dtype,
                      {"N": n, "H": h, "W": w, "G": g, "D": d, "k": 3, "P": p},
                      lambda value=value, om=om, args=args: ext.dcnv4(value, om, *args),
                      {"torch_reference": lambda value=value, om=om, args=args: dcnv4_ref(value, om, *args)},
                      dcnv4_cost(n, h, w, g, d, 9, p, value.element_size()))


def bench_dwconv(b: Bench, dtypes, batches) -> None:
    import torch
    import torch.nn.functional as F

    from deployconv.ops import cuda_ext

    ext = cuda_ext.load_extension()
    for dtype in dtypes:
        for name, c, h, w, k in DW_SHAPES:
            for n in batches:
                x = torch.randn(n, c, h, w, device="cuda", dtype=dtype)
                wt = torch.randn(c, 1, k, k, device="cuda", dtype=dtype) / k
                bias = torch.randn(c, device="cuda", dtype=dtype)
                xcl = x.to(memory_format=torch.channels_last)
                wcl = wt.to(memory_format=torch.channels_last)
                pad = k // 2
                b.add("dwconv", f"{name} b{n}", dtype, {"N": n, "C": c, "H": h, "W": w, "k": k, "stride": 1, "pad": pad},
                      lambda x=x, wt=wt, bias=bias, pad=pad: ext.dwconv2d(x, wt, bias, 1, pad),
                      {"torch_nchw": lambda x=x, wt=wt, bias=bias, pad=pad, c=c: F.conv2d(x, wt, bias, 1, pad, 1, c),
                       "torch_channels_last": lambda xcl=xcl, wcl=wcl, bias=bias, pad=pad, c=c:
                           F.conv2d(xcl, wcl, bias, 1, pad, 1, c)},
                      dw_cost(n, c, h, w, k, x.element_size()))


# --- output ------------------------------------------------------------------------------------------------------


def render(rows: list[Row], peaks: dict) -> None:
    """A rich table when rich is installed, plain text otherwise."""
    head = ["kernel", "case", "dtype", "ours us", "GB/s", "%DRAM", "TFLOP/s", "%fp32", "L2", "speedup", "max rel diff"]
    body = [[r.kernel, r.case, r.dtype, f"{r.ours_ms * 1e3:.1f}", f"{r.gb_per_s:.0f}", f"{r.pct_dram_peak:.0f}",
             f"{r.tflop_per_s:.2f}", f"{r.pct_fp32_peak:.0f}", "yes" if r.working_set_fits_l2 else "no",
             " ".join(f"{k}={v:.2f}x" for k, v in r.speedup.items()), f"{r.max_rel_diff_vs_baseline:.1e}"]
            for r in rows]
    title = (f"deployconv CUDA kernels; measured peaks: DRAM {peaks['dram_gb_per_s']:.0f} GB/s, "
             f"fp32 SGEMM {peaks['fp32_sgemm_tflop_per_s']:.1f} TFLOP/s")
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
        for line in [head, *body]:
            print("  ".join(str(v).ljust(wd) for v, wd in zip(line, widths)))
        return
    table = Table(title=title)
    for h in head:
        table.add_column(h, justify="left" if h in ("kernel", "case", "dtype", "speedup") else "right")
    for line in body:
        table.add_row(*line)
    Console(width=220).print(table)


def default_out(device_name: str) -> Path:
    from deployconv.core.fsio import safe_name

    return RESULTS_DIR / f"gpu_kernels_{safe_name(device_name).lower()}.json"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_kernels", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernels", default="ska,dcnv2,dcnv4,dwconv")
    ap.add_argument("--dtypes", default="fp16,fp32")
    ap.add_argument("--samples", type=int, default=25)
    ap.add_argument("--quick", action="store_true", help="batch 1 only, 9 samples: a smoke run")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default: results/gpu_kernels_<gpu>.json)")
    ap.add_argument("--out-dir", type=Path, default=None, help="write gpu_kernels_<gpu>.json into this directory")
    ap.add_argument("--budget-s", type=float, default=math.inf,
                    help="skip (and list) the cases that would start after this many seconds; JSON is written anyway")
    return ap


def run_family(name: str, fn: Callable[[], None], errors: dict[str, str]) -> None:
    """Run one kernel family; an exception is recorded (the other families still run)."""
    try:
        fn()
    except Exception as e:  # a kernel that fails to launch must not hide the others' numbers
        errors[name] = f"{type(e).__name__}: {e}"
        print(f"{name}: FAILED\n{traceback.format_exc()}", flush=True)


def main() -> None:
    args = parser().parse_args()
    t0 = time.monotonic()
    import torch

    from deployconv.core.errors import MissingEnvironmentError
    from deployconv.core.fsio import write_text_atomic

    if not torch.cuda.is_available():
        raise MissingEnvironmentError("benchmarks.gpu_kernels needs a CUDA device",
                                      why="torch.cuda.is_available() is False", fix="run it on a GPU machine")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    dtypes = [getattr(torch, DTYPE_NAMES[d]) for d in args.dtypes.split(",")]
    batches = (1,) if args.quick else BATCHES
    samples = 9 if args.quick else args.samples
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    l2 = int(getattr(props, "L2_cache_size", 0))

    from deployconv.ops.cuda_ext import load_extension

    load_extension()  # build before timing anything
    peaks = measure_peaks(samples)
    print(f"measured: DRAM copy {peaks['dram_gb_per_s']:.0f} GB/s, fp32 SGEMM {peaks['fp32_sgemm_tflop_per_s']:.1f} "
          f"TFLOP/s", flush=True)
    bench = Bench(peaks, l2, samples, deadline=t0 + args.budget_s)
    kernels = args.kernels.split(",")
    errors: dict[str, str] = {}
    families = {"ska": lambda: bench_ska(bench, dtypes, batches), "dcnv2": lambda: bench_dcnv2(bench, dtypes),
                "dwconv": lambda: bench_dwconv(bench, dtypes, batches),
                "dcnv4": lambda: bench_dcnv4(bench, dtypes, batches)}  # the goals' families first
    for name, fn in families.items():
        if name in kernels:
            run_family(name, fn, errors)
    render(bench.rows, peaks)
    from benchmarks.gpu_goals import kernel_goals

    rows = [asdict(r) for r in bench.rows]
    goals = kernel_goals(rows, peaks["dram_gb_per_s"])
    for g in goals:
        print(f"goal {g.name}: {g.status.upper()} - {g.summary}")
    if bench.skipped:
        print(f"budget of {args.budget_s:.0f} s reached: {len(bench.skipped)} cases skipped")

    from benchmarks._env import fingerprint, gpu_fingerprint

    try:
        import torchvision

        tv = torchvision.__version__
    except ImportError:
        tv = None
    payload = {
        "benchmark": "gpu_kernels",
        "device": {"name": props.name, "compute_capability": f"{props.major}.{props.minor}",
                   "sms": props.multi_processor_count, "memory_gib": round(props.total_memory / 2**30, 1),
                   "l2_bytes": l2},
        "versions": {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                     "torchvision": tv},
        "peaks": peaks,
        "conditions": {"timing": "median of CUDA-event samples, each replaying a CUDA graph of back-to-back calls "
                                 "(eager where capture is refused, see each row's timing)",
                       "samples": samples, "tf32": False, "cudnn_benchmark": True, "quick": args.quick,
                       "budget_s": args.budget_s if math.isfinite(args.budget_s) else None,
                       "clocks": "not fixed (no root on a lent machine): see env and the peaks measured in this run"},
        "env": fingerprint(),
        "gpu_env": gpu_fingerprint(),
        "goals": [asdict(g) for g in goals],
        "skipped_for_budget": bench.skipped,
        "errors": errors,
        "results": rows,
    }
    out = args.out or default_out(props.name)
    if args.out is None and args.out_dir is not None:
        out = args.out_dir / out.name
    write_text_atomic(out, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")
    if errors:
        raise SystemExit(1)


if __name__ == "__main__":
    import sys

    from deployconv.core.errors import DeployconvError

    try:
        main()
    except DeployconvError as e:  # a missing GPU or toolchain: say so, no traceback
        print(e.render(), file=sys.stderr)
        sys.exit(e.exit_code)
