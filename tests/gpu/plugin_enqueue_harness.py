"""The TensorRT plugins run on a real GPU without TensorRT: plugin_probe's `enqueue` mode drives each plugin through
the calls an engine makes (createPlugin(kBUILD) -> configurePlugin -> getFieldsToSerialize -> createPlugin(kRUNTIME)
-> attachToContext -> onShapeChange -> enqueue on a CUDA stream; see plugins_cpp/trt/PARSER_FACTS.md), and the
output is compared with the PyTorch reference (deployconv/ops/*.py).

Shapes are the zoo's: lsnet_t's SKA layers (and the fused LSConv epilogue), resnet50_dcn's DCNv2 layers (stride 1
and 2, mask, bias), dcnv4_tiny's DCNv4 stages, each at batch 1 and 8, plus odd sizes; fp32 and fp16.

Tolerances are the proven bounds of tests/gpu/test_kernels.py (its docstring has the derivation): an n-term fp32
sum of products is within gamma_n * sum|terms| of the exact value (Higham 3.1, gamma_n = n u / (1 - n u),
u = 2^-24), sum|terms| being the op applied to |inputs|; twice that when the reference itself runs in fp32 (DCNv2
and DCNv4 are defined with fp32 sampling coordinates); then one rounding to the output type:
    |out - ref| <= u_out |ref| + (1 + u_out) e_acc + tiny    (u_out = 2^-24 fp32, 2^-11 fp16).

    python -m tests.gpu.plugin_enqueue_harness --out results.json [--quick]

exit 0: every case within its bound; 1: a case failed; 3: no CUDA device, no TensorRT headers, or no nvcc/g++.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

U32 = 2.0**-24
DTYPE_CODE = {"float32": 0, "float16": 1}  # nvinfer1::DataType
LINEAR = 0


@dataclass(frozen=True)
class CaseResult:
    name: str
    plugin: str
    dtype: str
    inputs: list[list[int]]
    ok: bool
    max_abs_err: float | None = None
    worst_err_over_bound: float | None = None  # <= 1 when within the bound
    seconds: float = 0.0
    error: str | None = None  # the probe's failure (step and message)


@dataclass
class Report:
    device: str
    compute_capability: str
    torch: str
    cuda: str
    tensorrt_headers: str
    python: str
    passed: bool = False
    build_seconds: float = 0.0
    cases: list[CaseResult] = field(default_factory=list)


# --- cases -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    name: str
    plugin: str
    make: Callable  # (dtype, generator) -> (inputs, fields, reference, magnitude, n_terms, ref_is_fp32)


def _seed(*key) -> int:
    return zlib.crc32(repr(key).encode())


DEVICE = "cuda"  # the CPU test of the cases' shapes and fields sets "cpu"


def _rand(torch, shape, dtype, gen, scale=1.0):
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(DEVICE, dtype)


def ska_case(n, c, g, h, w, epilogue=False):
    def make(torch, dtype, gen):
        from deployconv.ops.ska import ska

        x, wt = _rand(torch, (n, c, h, w), dtype, gen), _rand(torch, (n, g, 9, h, w), dtype, gen)
        inputs = [x, wt]
        d = torch.float64
        ref, mag = ska(x.to(d), wt.to(d)), ska(x.to(d).abs(), wt.to(d).abs())
        if epilogue:  # the fused LSConv epilogue: y = scale[c] * ska + shift[c] + x (the residual is x)
            scale = (torch.rand(c, generator=gen, dtype=d) + 0.5).to(DEVICE).float()
            shift = torch.randn(c, generator=gen, dtype=d).to(DEVICE).float()
            inputs += [scale, shift, x]
            ref = ref * scale.to(d).view(1, c, 1, 1) + shift.to(d).view(1, c, 1, 1) + x.to(d)
            mag = mag * scale.to(d).abs().view(1, c, 1, 1) + shift.to(d).abs().view(1, c, 1, 1) + x.to(d).abs()
        return inputs, [], ref, mag, 9 + (3 if epilogue else 0), False
    return make


def dcn_case(n, c, o, h, w, stride, groups=1, offset_groups=1, k=3, pad=1, dil=1):
    def make(torch, dtype, gen):
        from deployconv.ops.deform_conv import deform_conv2d

        ho = (h + 2 * pad - dil * (k - 1) - 1) // stride + 1
        wo = (w + 2 * pad - dil * (k - 1) - 1) // stride + 1
        x = _rand(torch, (n, c, h, w), dtype, gen)
        wt = _rand(torch, (o, c // groups, k, k), dtype, gen, scale=1.0 / math.sqrt(c * k * k / groups))
        # offsets up to +-4 px: many samples straddle or leave the border (the zero-padding rule)
        off = ((torch.rand((n, 2 * offset_groups * k * k, ho, wo), generator=gen, dtype=torch.float64) - 0.5)
               * 8).to(DEVICE, dtype)
        bias = _rand(torch, (o,), dtype, gen)
        mask = torch.rand((n, offset_groups * k * k, ho, wo), generator=gen, dtype=torch.float64).to(DEVICE, dtype)
        f = [t.float() for t in (x, off, wt, bias, mask)]
        ref = deform_conv2d(f[0], f[1], f[2], f[3], stride, pad, dil, f[4])
        mag = deform_conv2d(f[0].abs(), f[1], f[2].abs(), f[3].abs(), stride, pad, dil, f[4].abs())
        fields = [f"field strides 5 {stride} {stride}", f"field pads 5 {pad} {pad} {pad} {pad}",
                  f"field dilations 5 {dil} {dil}", f"field group 5 {groups}", f"field offset_group 5 {offset_groups}"]
        return [x, wt, off, bias, mask], fields, ref, mag, 4 * (c // groups) * k * k + 2, True
    return make


def dcnv4_case(n, h, w, g, d, k=3, stride=1, pad=1, dil=1, offset_scale=1.0, remove_center=0):
    def make(torch, dtype, gen):
        from deployconv.ops.dcnv4 import dcnv4, padded_dim

        ho = (h + 2 * pad - dil * (k - 1) - 1) // stride + 1
        wo = (w + 2 * pad - dil * (k - 1) - 1) // stride + 1
        kk = k * k - remove_center
        p = padded_dim(g, k, k, remove_center)
        value = _rand(torch, (n, h, w, g * d), dtype, gen)
        om = torch.empty((n, ho, wo, p), dtype=torch.float64)
        blocks = om[..., : g * 3 * kk].view(n, ho, wo, g, 3 * kk)
        blocks[..., : 2 * kk] = (torch.rand((n, ho, wo, g, 2 * kk), generator=gen, dtype=torch.float64) - 0.5) * 6
        blocks[..., 2 * kk:] = torch.randn((n, ho, wo, g, kk), generator=gen, dtype=torch.float64)
        om[..., g * 3 * kk:] = float("nan")  # the padding of P must never be read: NaN would reach the output
        om = om.to(DEVICE, dtype)
        args = (k, k, stride, stride, pad, pad, dil, dil, g, d, offset_scale, remove_center)
        om32 = om.float()
        ref = dcnv4(value.float(), om32, *args)
        om_abs = om32.clone()
        om_abs[..., : g * 3 * kk].view(n, ho, wo, g, 3 * kk)[..., 2 * kk:].abs_()
        mag = dcnv4(value.float().abs(), om_abs, *args)
        fields = [f"field kernel_shape 5 {k} {k}", f"field strides 5 {stride} {stride}",
                  f"field pads 5 {pad} {pad} {pad} {pad}", f"field dilations 5 {dil} {dil}", f"field group 5 {g}",
                  f"field group_channels 5 {d}", f"field offset_scale 1 {offset_scale!r}",
                  f"field remove_center 5 {remove_center}"]
        return [value, om], fields, ref, mag, 4 * kk, True
    return make


def cases(quick: bool = False) -> list[Case]:
    """The zoo's layer shapes (read from the models' forward passes at 224 px), at batch 1 and 8, plus odd sizes."""
    out = []
    for n in (1, 8):
        out += [
            Case(f"lsnet_t SKA stage 3 (C=128, G=16, 14x14) N={n}", "DeployconvSKA", ska_case(n, 128, 16, 14, 14)),
            Case(f"lsnet_t SKA stage 4 (C=256, G=32, 7x7) N={n}", "DeployconvSKA", ska_case(n, 256, 32, 7, 7)),
            Case(f"lsnet_t LSConv epilogue (C=128, 14x14) N={n}", "DeployconvSKA",
                 ska_case(n, 128, 16, 14, 14, epilogue=True)),
            Case(f"resnet50_dcn layer2.0 (128, 56x56, stride 2) N={n}", "DeployconvDeformConv2d",
                 dcn_case(n, 128, 128, 56, 56, 2)),
            Case(f"resnet50_dcn layer3 (256, 14x14) N={n}", "DeployconvDeformConv2d", dcn_case(n, 256, 256, 14, 14, 1)),
            Case(f"resnet50_dcn layer4 (512, 7x7) N={n}", "DeployconvDeformConv2d", dcn_case(n, 512, 512, 7, 7, 1)),
            Case(f"dcnv4_tiny stage 1 (56x56, G=4, D=16) N={n}", "DeployconvDCNv4", dcnv4_case(n, 56, 56, 4, 16)),
            Case(f"dcnv4_tiny stage 2 (28x28, G=8, D=16) N={n}", "DeployconvDCNv4", dcnv4_case(n, 28, 28, 8, 16)),
            Case(f"dcnv4_tiny stage 3 (14x14, G=16, D=16) N={n}", "DeployconvDCNv4", dcnv4_case(n, 14, 14, 16, 16)),
        ]
    out += [  # odd sizes: partial tiles, scalar paths
        Case("SKA odd 13x15 (C=24, G=3) N=3", "DeployconvSKA", ska_case(3, 24, 3, 13, 15)),
        Case("DCNv2 odd 29x31 stride 2, groups 2, offset groups 2 N=2", "DeployconvDeformConv2d",
             dcn_case(2, 12, 8, 29, 31, 2, groups=2, offset_groups=2)),
        Case("DCNv4 odd 13x15, remove_center, offset_scale 0.5 N=3", "DeployconvDCNv4",
             dcnv4_case(3, 13, 15, 3, 12, offset_scale=0.5, remove_center=1)),
    ]
    return out[:: 3] if quick else out


# --- running ---------------------------------------------------------------------------------------------------


def within_bound(torch, out, ref, mag, n_terms: int, ref_is_fp32: bool) -> tuple[bool, float, float]:
    """(ok, max |err|, worst err/bound) for |out - ref| <= u_out |ref| + (1 + u_out) e_acc + tiny."""
    u = {torch.float32: U32, torch.float16: 2.0**-11}[out.dtype]
    tiny = 2.0**-25 if out.dtype == torch.float16 else 0.0  # half an fp16 subnormal step
    gamma = n_terms * U32 / (1 - n_terms * U32)
    bound = u * ref.double().abs() + (1 + u) * (2 if ref_is_fp32 else 1) * gamma * mag.double() + tiny
    err = (out.double() - ref.double()).abs()
    finite = bool(torch.isfinite(out).all())
    ratio = float((err / bound.clamp_min(1e-300)).max()) if finite else math.inf
    return finite and bool((err <= bound).all()), float(err.max()), ratio


def script(plugin: str, fields: list[str], inputs: list, dtype_name: str, out_shape: tuple) -> list[str]:
    """The probe lines that select the plugin, give its fields and describe the tensors."""
    lines = [f"plugin {plugin}", *fields]
    for t in inputs:
        lines.append(f"in {DTYPE_CODE[str(t.dtype).removeprefix('torch.')]} {LINEAR} {' '.join(map(str, t.shape))}")
    return [*lines, f"out {DTYPE_CODE[dtype_name]} {LINEAR} {' '.join(map(str, out_shape))}"]


def run_case(torch, case: Case, dtype_name: str, lib: Path, probe: Path, workdir: Path) -> CaseResult:
    import numpy as np

    from deployconv.plugins.probe import run_probe

    dtype = getattr(torch, dtype_name)
    gen = torch.Generator().manual_seed(_seed(case.name, dtype_name))
    start = time.perf_counter()
    inputs, fields, ref, mag, n_terms, ref_is_fp32 = case.make(torch, dtype, gen)
    d = workdir / f"case{_seed(case.name, dtype_name)}"
    d.mkdir(parents=True, exist_ok=True)
    for i, t in enumerate(inputs):
        t.detach().contiguous().cpu().numpy().tofile(d / f"in{i}.bin")
    lines = [*script(case.plugin, fields, inputs, dtype_name, tuple(ref.shape)), f"enqueue {d}"]
    shapes = [list(t.shape) for t in inputs]
    try:
        result = run_probe(probe, lib, lines, timeout=300)[-1]
    except Exception as e:  # reported per case
        return CaseResult(case.name, case.plugin, dtype_name, shapes, False, error=str(e),
                          seconds=time.perf_counter() - start)
    if not result.get("ok"):
        return CaseResult(case.name, case.plugin, dtype_name, shapes, False, error=json.dumps(result),
                          seconds=time.perf_counter() - start)
    raw = np.fromfile(d / "out0.bin", dtype=np.float32 if dtype_name == "float32" else np.float16)
    out = torch.from_numpy(raw.reshape(tuple(ref.shape))).to(ref.device)
    ok, max_err, ratio = within_bound(torch, out, ref, mag, n_terms, ref_is_fp32)
    return CaseResult(case.name, case.plugin, dtype_name, shapes, ok, max_err, ratio, time.perf_counter() - start)


class Unavailable(Exception):
    """The environment cannot run the check (exit 3)."""


def build(workdir: Path, arch: int):
    """(headers, library, probe): kernels for `arch` with nvcc, library and probe with g++ (no CMake, no TensorRT)."""
    from deployconv.core.errors import MissingEnvironmentError
    from deployconv.plugins.probe import build_host_library, build_kernels_archive, build_probe
    from deployconv.plugins.trt_headers import find_headers, missing_reason

    headers = find_headers(os.environ)
    if headers is None:
        raise Unavailable(missing_reason(os.environ))
    try:
        archive = build_kernels_archive(arch, workdir, jobs=os.cpu_count() or 2)
        lib = build_host_library(headers, archive, workdir, jobs=os.cpu_count() or 2)
        probe = build_probe(headers, workdir / "plugin_probe")
    except MissingEnvironmentError as e:
        raise Unavailable(str(e)) from None
    return headers, lib, probe


def run(quick: bool = False, dtypes: tuple[str, ...] = ("float32", "float16"), workdir: Path | None = None) -> Report:
    import torch

    if not torch.cuda.is_available():
        raise Unavailable("no CUDA device (torch.cuda.is_available() is False)")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 references stay fp32
    major, minor = torch.cuda.get_device_capability()
    tmp = tempfile.TemporaryDirectory(prefix="plugin_enqueue_") if workdir is None else None
    work = Path(tmp.name) if tmp else workdir
    try:
        start = time.perf_counter()
        headers, lib, probe = build(work, major * 10 + minor)
        report = Report(device=torch.cuda.get_device_name(), compute_capability=f"{major}.{minor}",
                        torch=torch.__version__, cuda=str(torch.version.cuda),
                        tensorrt_headers=f"{headers.version} ({headers.found_via})", python=platform.python_version(),
                        build_seconds=round(time.perf_counter() - start, 1))
        for case in cases(quick):
            for dt in dtypes:
                report.cases.append(run_case(torch, case, dt, lib, probe, work))
        report.passed = all(c.ok for c in report.cases)
        return report
    finally:
        if tmp:
            tmp.cleanup()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="write the report as JSON here")
    ap.add_argument("--quick", action="store_true", help="every third case only")
    args = ap.parse_args(argv)
    try:
        report = run(quick=args.quick)
    except Unavailable as e:
        print(f"plugin enqueue check unavailable: {e}", file=sys.stderr)
        if args.out:
            args.out.write_text(json.dumps({"passed": None, "unavailable": str(e)}, indent=2) + "\n")
        return 3
    data = asdict(report)
    if args.out:
        args.out.write_text(json.dumps(data, indent=2) + "\n")
    for c in report.cases:
        status = "ok  " if c.ok else "FAIL"
        detail = c.error or f"max|err| {c.max_abs_err:.3g}, err/bound {c.worst_err_over_bound:.3g}"
        print(f"{status} {c.dtype:8s} {c.name}: {detail}")
    print(f"{sum(c.ok for c in report.cases)}/{len(report.cases)} cases within bounds on {report.device} "
          f"(TensorRT headers {report.tensorrt_headers}, build {report.build_seconds} s)")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
