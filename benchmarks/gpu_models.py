"""Deploy-form models on PyTorch CUDA, the ways a user would run them, against deployconv's CUDA kernels.

    python -m benchmarks.gpu_models [--models lsnet_t,unireplknet_a,repvgg_a0,resnet50_dcn] [--dtypes fp32,fp16]
                                    [--batches 1,16] [--compile-cases fp16:16] [--budget-s 200]
                                    [--out FILE | --out-dir DIR]

Per model: the zoo model with seeded weights (deployconv.pipeline.export.create_seeded, seed 0, what `deployconv
export` uses), reparameterized to its deploy form (fusion verified by tests/reparam, not again here), moved to
the GPU in each dtype, then per batch:
  eager          the deploy form as is, NCHW; custom ops run their PyTorch references (deployconv/ops);
  channels_last  the same with model and input in channels-last memory format (what cuDNN prefers);
  compile        torch.compile(mode="default") of the eager model, only for --compile-cases (compiling is slow:
                 fp16 batch 16 by default) and only while the budget leaves --compile-reserve-s; the compile time
                 (first call) is recorded; the custom ops stay opaque (their references run);
  ours           eager NCHW with deployconv's CUDA kernels in place of the references: SKA, DCNv2 and DCNv4
                 through torch.library CUDA registrations (deployconv.ops.cuda_swap.cuda_kernels) and large
                 depthwise convs (k >= 7) as KernelDepthwiseConv2d modules. Which were swapped is recorded.
Parity of every variant against eager in the same dtype (the acceptance figure for "ours") and against fp32 eager
at the same batch: max |diff| / max |eager| and cosine similarity, computed in fp64.
Latency: per forward, CUDA events around each call (launch gaps included: this is eager PyTorch as users run it),
after warm-up, median / p10 / p90 over an adaptive number of iterations (~--target-s per variant). TF32 off (fp32
is fp32), cudnn.benchmark on, torch.no_grad; clocks not fixed (recorded in gpu_env instead).
Time is bounded: all non-compile variants run first, model by model; compile cases run last, each only if the
budget still leaves --compile-reserve-s. The JSON is rewritten atomically after every model, so a run stopped
from outside keeps what it measured ("complete": false). Exit 0 when every variant ran or was skipped with a
reason, 1 when one failed (the others still ran), 3 without a CUDA device.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MODELS = ("lsnet_t", "unireplknet_a", "repvgg_a0", "resnet50_dcn")
DTYPE_NAMES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
VARIANTS = ("eager", "channels_last", "ours", "compile")
# Module class names whose forward calls a swappable deployconv custom op, and the op.
CUSTOM_OP_MODULES = {"SKA": "ska", "ModulatedDeformConv2dPack": "deform_conv2d", "DCNv4": "dcnv4"}


# --- pure parts ---------------------------------------------------------------------------------------------------


@dataclass
class Case:
    model: str
    dtype: str  # "fp32", "fp16", "bf16"
    batch: int
    variant: str


def parse_compile_cases(spec: str) -> set[tuple[str, int]]:
    """"fp16:16,fp32:1" -> {("fp16", 16), ("fp32", 1)}; "" or "none" -> nothing compiled."""
    if spec.strip().lower() in ("", "none"):
        return set()
    out = set()
    for item in spec.split(","):
        dt, sep, b = item.strip().partition(":")
        if not sep or dt not in DTYPE_NAMES or not b.isdigit() or int(b) < 1:
            raise ValueError(f"compile case {item!r}: expected DTYPE:BATCH with DTYPE in {list(DTYPE_NAMES)}")
        out.add((dt, int(b)))
    return out


def plan(models: list[str], dtypes: list[str], batches: list[int], compile_cases: set[tuple[str, int]]) -> list[Case]:
    """Every case in run order: eager, channels_last and ours for each model / dtype / batch first (eager before
    the variants compared with it), then the compile cases, which are the slow and optional ones."""
    first = [Case(m, d, b, v) for m in models for d in dtypes for b in batches
             for v in ("eager", "channels_last", "ours")]
    last = [Case(m, d, b, "compile") for m in models for d in dtypes for b in batches if (d, b) in compile_cases]
    return first + last


def compile_skip_reason(elapsed_s: float, budget_s: float, reserve_s: float) -> str | None:
    """Why a compile case must not start now (None: it may)."""
    left = budget_s - elapsed_s
    if left < reserve_s:
        return f"budget: {left:.0f} s left of {budget_s:.0f} s, a compile needs up to {reserve_s:.0f} s"
    return None


def iterations(one_ms: float, target_s: float, lo: int = 10, hi: int = 200) -> int:
    """Timed iterations so that a variant takes about target_s, within [lo, hi]."""
    return max(lo, min(hi, int(target_s * 1000 / max(one_ms, 1e-3))))


@dataclass
class Latency:
    median_ms: float
    p10_ms: float
    p90_ms: float
    iters: int
    warmup: int


def summarize(samples_ms: list[float], warmup: int) -> Latency:
    s = sorted(samples_ms)

    def q(p: float) -> float:
        return s[min(len(s) - 1, int(p * (len(s) - 1) + 0.5))]

    return Latency(statistics.median(s), q(0.1), q(0.9), len(s), warmup)


@dataclass
class Parity:
    max_abs: float
    scale: float  # max |reference|
    max_abs_over_scale: float
    cosine: float
    finite: bool


def parity(out, ref) -> Parity:
    """`out` against `ref` (any devices / dtypes; compared in fp64 on out's device)."""
    import torch

    a = out.detach().double().flatten()
    b = ref.detach().to(a.device).double().flatten()
    finite = bool(torch.isfinite(a).all())
    diff = float((a - b).abs().max()) if a.numel() else 0.0
    scale = float(b.abs().max()) if b.numel() else 0.0
    cos = float(torch.nn.functional.cosine_similarity(a, b, dim=0, eps=1e-300)) if a.numel() else 1.0
    return Parity(diff, scale, diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf), cos, finite)


def custom_ops_in(model) -> list[str]:
    """The swappable deployconv custom ops a model calls (by module class)."""
    return sorted({op for m in model.modules() for cls, op in CUSTOM_OP_MODULES.items() if type(m).__name__ == cls})


@dataclass
class CaseResult:
    model: str
    dtype: str
    batch: int
    variant: str
    status: str  # "ok", "skipped" or "error"
    reason: str = ""
    latency: Latency | None = None
    parity_vs_eager: Parity | None = None  # same dtype and batch
    parity_vs_fp32_eager: Parity | None = None
    compile_s: float | None = None
    swapped: list[str] = field(default_factory=list)  # "ours": what our kernels computed


@dataclass
class ModelSetup:
    model: str
    input_size: list[int]
    deploy_s: float
    custom_ops: list[str]
    depthwise_swapped: list[str]
    params: int


# --- GPU parts ----------------------------------------------------------------------------------------------------


def time_forward(fn: Callable, x, target_s: float, warmup: int = 5) -> Latency:
    """Per-call latency of fn(x) from CUDA events around each call."""
    import torch

    for _ in range(warmup):
        fn(x)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn(x)
    end.record()
    end.synchronize()
    n = iterations(start.elapsed_time(end), target_s)
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
    for s, e in events:
        s.record()
        fn(x)
        e.record()
    torch.cuda.synchronize()
    return summarize([s.elapsed_time(e) for s, e in events], warmup)


class Runner:
    """Holds the per-model state (deploy forms per dtype, eager outputs) and runs cases into results.
    `device`, `dw_kernel` and `timer` exist for the CPU test of this flow (tests/benchmarks); the benchmark uses
    the defaults: CUDA, deployconv's dwconv kernel, CUDA-event timing."""

    def __init__(self, target_s: float, min_kernel: int, device: str = "cuda", dw_kernel: Callable | None = None,
                 timer: Callable = time_forward):
        self.target_s, self.min_kernel = target_s, min_kernel
        self.device, self.dw_kernel, self.timer = device, dw_kernel, timer
        self.setups: dict[str, ModelSetup] = {}
        self._deploy: dict[str, object] = {}
        self._models: dict[tuple[str, str, str], object] = {}  # (model, dtype, variant) -> module
        self._eager_out: dict[tuple[str, str, int], object] = {}

    def setup(self, name: str) -> ModelSetup:
        if name not in self.setups:
            from deployconv.models import get_model_spec
            from deployconv.ops.cuda_swap import swap_depthwise
            from deployconv.pipeline.export import create_seeded
            from deployconv.reparam import reparameterize

            t0 = time.perf_counter()
            deploy = reparameterize(create_seeded(name, None, (), 0), verify=False).eval()
            _, swapped = swap_depthwise(deploy, self.min_kernel)
            self._deploy[name] = deploy
            self.setups[name] = ModelSetup(name, list(get_model_spec(name).info.input_size), time.perf_counter() - t0,
                                           custom_ops_in(deploy), swapped, sum(p.numel() for p in deploy.parameters()))
        return self.setups[name]

    def model(self, name: str, dtype: str, variant: str):
        import torch

        key = (name, dtype, variant)
        if key not in self._models:
            from deployconv.ops.cuda_swap import swap_depthwise

            m = copy.deepcopy(self._deploy[name]).to(self.device, getattr(torch, DTYPE_NAMES[dtype])).eval()
            if variant == "channels_last":
                m = m.to(memory_format=torch.channels_last)
            elif variant == "ours":
                m, _ = swap_depthwise(m, self.min_kernel, kernel=self.dw_kernel, inplace=True)
            elif variant == "compile":
                m = torch.compile(m, mode="default")
            self._models[key] = m
        return self._models[key]

    def input(self, name: str, dtype: str, batch: int, channels_last: bool = False):
        import torch

        g = torch.Generator().manual_seed(batch)
        x = torch.randn(batch, *self.setups[name].input_size, generator=g)
        x = x.to(self.device, getattr(torch, DTYPE_NAMES[dtype]))
        return x.to(memory_format=torch.channels_last) if channels_last else x

    def run(self, case: Case) -> CaseResult:
        import torch

        from deployconv.ops.cuda_swap import cuda_kernels

        setup = self.setup(case.model)
        res = CaseResult(case.model, case.dtype, case.batch, case.variant, "ok")
        m = self.model(case.model, case.dtype, case.variant)
        x = self.input(case.model, case.dtype, case.batch, channels_last=case.variant == "channels_last")
        with torch.no_grad():
            if case.variant == "compile":
                t0 = time.perf_counter()
                m(x)
                if self.device == "cuda":
                    torch.cuda.synchronize()
                res.compile_s = time.perf_counter() - t0
            if case.variant == "ours":
                res.swapped = [f"op:{o}" for o in setup.custom_ops] + [f"dwconv:{p}" for p in setup.depthwise_swapped]
                with cuda_kernels():
                    out = m(x)
                    res.latency = self.timer(m, x, self.target_s)
            else:
                out = m(x)
                res.latency = self.timer(m, x, self.target_s)
        out = out.float()
        if case.variant == "eager":
            self._eager_out[(case.model, case.dtype, case.batch)] = out
        ref = self._eager_out.get((case.model, case.dtype, case.batch))
        ref32 = self._eager_out.get((case.model, "fp32", case.batch))
        res.parity_vs_eager = parity(out, ref) if ref is not None and case.variant != "eager" else None
        res.parity_vs_fp32_eager = parity(out, ref32) if ref32 is not None else None
        return res

    def release(self, name: str) -> None:
        """Free a model's GPU copies when its phase is done (the compile phase makes its own)."""
        import torch

        for key in [k for k in self._models if k[0] == name]:
            del self._models[key]
        if self.device == "cuda":
            torch.cuda.empty_cache()


def default_out(device_name: str) -> Path:
    from deployconv.core.fsio import safe_name

    return RESULTS_DIR / f"gpu_models_{safe_name(device_name).lower()}.json"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_models", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--dtypes", default="fp32,fp16", help="comma list of fp32, fp16, bf16 (fp32 first: the "
                                                          "fp32-eager parity column needs it)")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--compile-cases", default="fp16:16",
                    help="DTYPE:BATCH list to torch.compile ('none': no compile)")
    ap.add_argument("--budget-s", type=float, default=240.0, help="wall-clock budget of the whole run")
    ap.add_argument("--compile-reserve-s", type=float, default=90.0,
                    help="start a compile case only with at least this much budget left")
    ap.add_argument("--target-s", type=float, default=0.6, help="about this long timing each variant")
    ap.add_argument("--min-kernel", type=int, default=7, help="swap depthwise convs with kernels >= this")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default: results/gpu_models_<gpu>.json)")
    ap.add_argument("--out-dir", type=Path, default=None, help="write gpu_models_<gpu>.json into this directory")
    return ap


def main() -> int:
    args = parser().parse_args()
    t_start = time.monotonic()
    try:
        compile_cases = parse_compile_cases(args.compile_cases)
    except ValueError as e:
        from deployconv.core.errors import BadInputError

        raise BadInputError(str(e), fix="e.g. --compile-cases fp16:16 or --compile-cases none") from None
    import torch

    from deployconv.core.errors import MissingEnvironmentError
    from deployconv.core.fsio import write_text_atomic

    if not torch.cuda.is_available():
        raise MissingEnvironmentError("benchmarks.gpu_models needs a CUDA device",
                                      why="torch.cuda.is_available() is False", fix="run it on a GPU machine")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    models = args.models.split(",")
    dtypes = args.dtypes.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    cases = plan(models, dtypes, batches, compile_cases)
    runner = Runner(args.target_s, args.min_kernel)
    results: list[CaseResult] = []
    props = torch.cuda.get_device_properties(0)
    out = args.out or default_out(props.name)
    if args.out is None and args.out_dir is not None:
        out = args.out_dir / out.name

    from benchmarks._env import fingerprint, gpu_fingerprint

    env, gpu_env = fingerprint(), gpu_fingerprint()

    def write(complete: bool) -> None:
        payload = {
            "benchmark": "gpu_models",
            "complete": complete,
            "gpu_env": gpu_env,
            "conditions": {"timing": "CUDA events around each eager call (launch gaps included), after warm-up",
                           "target_s_per_variant": args.target_s, "tf32": False, "cudnn_benchmark": True,
                           "grad": False, "budget_s": args.budget_s, "compile_cases": sorted(compile_cases),
                           "compile_mode": "default", "compile_reserve_s": args.compile_reserve_s,
                           "weights": "seeded (create_seeded seed 0), deploy form, not verified again here",
                           "inputs": "torch.randn, generator seeded with the batch size",
                           "clocks": "not fixed (no root on a lent machine): see gpu_env.nvidia_smi",
                           "elapsed_s": round(time.monotonic() - t_start, 1)},
            "env": env,
            "models": [asdict(s) for s in runner.setups.values()],
            "results": [asdict(r) for r in results],
        }
        write_text_atomic(out, json.dumps(payload, indent=2) + "\n")

    ext_missing = _extension_problem()
    failed = False
    for i, case in enumerate(cases):
        elapsed = time.monotonic() - t_start
        reason = None
        if case.variant == "compile":
            reason = compile_skip_reason(elapsed, args.budget_s, args.compile_reserve_s)
        elif elapsed > args.budget_s:
            reason = f"budget: {elapsed:.0f} s elapsed of {args.budget_s:.0f} s"
        if reason is None and case.variant == "ours":
            reason = ext_missing
        if reason is None and case.variant == "ours":
            try:
                setup = runner.setup(case.model)
            except Exception:  # reported by the eager case of the same model
                setup = None
            if setup is not None and not setup.custom_ops and not setup.depthwise_swapped:
                reason = "no custom op and no large depthwise conv in this model: nothing to swap, ours == eager"
        if reason is not None:
            results.append(CaseResult(case.model, case.dtype, case.batch, case.variant, "skipped", reason))
        else:
            try:
                results.append(runner.run(case))
            except Exception as e:  # one failing variant must not cost the others
                failed = True
                results.append(CaseResult(case.model, case.dtype, case.batch, case.variant, "error",
                                          f"{type(e).__name__}: {str(e)[:500]}"))
                print(traceback.format_exc(), flush=True)
        _print(results[-1])
        nxt = cases[i + 1] if i + 1 < len(cases) else None
        if nxt is None or (nxt.model, nxt.variant == "compile") != (case.model, case.variant == "compile"):
            runner.release(case.model)
        write(complete=nxt is None)  # after every case: a run stopped from outside keeps what it measured
    print(f"wrote {out}")
    return 1 if failed else 0


def _extension_problem() -> str | None:
    """Why deployconv's torch extension cannot be loaded (None: it loads). Asked once, so that a failed build is
    not retried by every "ours" case."""
    try:
        from deployconv.ops.cuda_ext import load_extension

        load_extension()
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return f"the deployconv torch extension is unavailable: {type(e).__name__}: {first[:300]}"
    return None


def _print(r: CaseResult) -> None:
    head = f"{r.model:14s} {r.dtype:5s} b{r.batch:<3d} {r.variant:14s}"
    if r.status != "ok":
        print(f"{head} {r.status.upper()}: {r.reason}", flush=True)
        return
    lat = r.latency
    par = r.parity_vs_eager
    extra = f" compile {r.compile_s:.0f} s" if r.compile_s is not None else ""
    print(f"{head} {lat.median_ms:8.3f} ms (p90 {lat.p90_ms:.3f})"
          + (f"  vs eager: {par.max_abs_over_scale:.2e} rel, cos {par.cosine:.6f}" if par else "") + extra,
          flush=True)


if __name__ == "__main__":
    import sys

    from deployconv.core.errors import DeployconvError

    try:
        sys.exit(main())
    except DeployconvError as e:
        print(e.render(), file=sys.stderr)
        sys.exit(e.exit_code)
