"""The CUDA kernels (plugins_cpp/kernels, through deployconv.ops.cuda_ext) against the PyTorch references
(deployconv/ops/*.py, the ground truth), for fp32 / fp16 / bf16 over shapes chosen to reach every code path:
odd sizes, channel counts that are not a multiple of the vector width, misaligned pointers (scalar paths),
stride 2, dilation, groups and offset groups, remove_center, non-square kernels, partial tiles.

Tolerances are proven error bounds, not tuned numbers. The reference runs on the same (upcast) inputs:
  * SKA and dwconv: in fp64 (the reference supports it; cuDNN convs in fp64), i.e. essentially exact;
  * DCNv2 and DCNv4: in fp32, because the op is DEFINED with fp32 sampling coordinates: the kernels compute
    coordinates and bilinear weights with the reference's exact operation order (no fused multiply-add), so
    both sides sample with identical weights and differ only in the order they accumulate.
An n-term fp32 sum of products satisfies |computed - exact| <= gamma_n * sum|terms|, gamma_n = n*u/(1 - n*u),
u = 2^-24, whatever the order (Higham, Accuracy and Stability, 3.1); sum|terms| is the op applied to |inputs|
("mag"). So |kernel_fp32 - ref| <= (1 or 2) * gamma_n * mag (2 when the reference is also fp32). The kernel then
rounds once to the output dtype (relative error <= u_out: 2^-24 fp32, 2^-11 fp16, 2^-8 bf16, plus half an fp16
subnormal step), which gives:  |out - ref| <= u_out*|ref| + (1 + u_out) * e_acc + tiny.
"""

from __future__ import annotations

import math
import zlib

import pytest
import torch
import torch.nn.functional as F

from deployconv.core.errors import BadInputError, MissingEnvironmentError

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is "
                                                                 "False)"),
]

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
U32 = 2.0**-24
UNIT_ROUNDOFF = {torch.float32: 2.0**-24, torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}
TINY = {torch.float32: 0.0, torch.float16: 2.0**-25, torch.bfloat16: 0.0}  # fp16 subnormal rounding


@pytest.fixture(scope="module")
def ext():
    from deployconv.ops.cuda_ext import load_extension

    try:
        return load_extension()
    except MissingEnvironmentError as e:
        pytest.skip(f"the extension cannot be built here: {e}")


@pytest.fixture(autouse=True)
def exact_fp32():
    """fp32 references must be fp32: no TF32 in matmuls or cuDNN convs."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def gamma(n: int) -> float:
    return n * U32 / (1 - n * U32)


def assert_within_bound(out: torch.Tensor, ref: torch.Tensor, mag: torch.Tensor, n_terms: int, ref_is_fp32: bool,
                        what: str) -> None:
    """|out - ref| <= u_out*|ref| + (1 + u_out)*e_acc + tiny elementwise (see the module docstring)."""
    assert out.shape == ref.shape, f"{what}: shape {tuple(out.shape)} != {tuple(ref.shape)}"
    assert torch.isfinite(out).all(), f"{what}: non-finite output"
    u = UNIT_ROUNDOFF[out.dtype]
    e_acc = (2 if ref_is_fp32 else 1) * gamma(n_terms) * mag.double()
    bound = u * ref.double().abs() + (1 + u) * e_acc + TINY[out.dtype]
    err = (out.double() - ref.double()).abs()
    bad = err > bound
    if bad.any():
        i = int(torch.argmax((err - bound).flatten()))
        raise AssertionError(f"{what}: {int(bad.sum())} of {err.numel()} elements outside the bound; worst at flat "
                             f"index {i}: out {out.flatten()[i].item()!r}, ref {ref.flatten()[i].item()!r}, "
                             f"bound {bound.flatten()[i].item():.3g}; max |err| {err.max().item():.3g}")


def seed_of(*key) -> int:
    """A stable seed per test case (str hashes change from process to process)."""
    return zlib.crc32(repr(key).encode())


def rand(shape, dtype, gen, scale: float = 1.0, offset_elems: int = 0) -> torch.Tensor:
    """Random CUDA tensor of `dtype`; offset_elems > 0 makes its data pointer misaligned (contiguous view of a
    larger buffer), which forces the kernels' scalar paths."""
    n = math.prod(shape)
    buf = (torch.randn(n + offset_elems, generator=gen, dtype=torch.float64) * scale).to("cuda", dtype)
    return buf[offset_elems:].view(shape)


# --- SKA -------------------------------------------------------------------------------------------------------

SKA_SHAPES = [  # (B, C, H, W, G, misalign): W picks the vector width (odd W: scalar path)
    (2, 16, 7, 9, 2, 0),
    (1, 24, 14, 14, 3, 0),
    (2, 64, 28, 28, 8, 0),
    (1, 32, 8, 16, 4, 0),    # fp16/bf16: 8-wide vectors
    (1, 32, 8, 16, 4, 1),    # same, misaligned: scalar path although W % 8 == 0
    (3, 8, 1, 1, 8, 0),      # every neighbour is padding
    (1, 40, 5, 3, 40, 0),    # R = 1: no sharing
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SKA_SHAPES, ids=str)
@pytest.mark.parametrize("epilogue", ["none", "scale_shift", "all"])
def test_ska_matches_reference(ext, dtype, shape, epilogue):
    from deployconv.ops.cuda_ext import ska
    from deployconv.ops.ska import ska as ska_ref

    b, c, h, w, g, mis = shape
    gen = torch.Generator().manual_seed(seed_of(shape, epilogue))
    x = rand((b, c, h, w), dtype, gen, offset_elems=mis)
    wt = rand((b, g, 9, h, w), dtype, gen, offset_elems=mis)
    scale = shift = res = None
    if epilogue != "none":
        scale = (torch.rand(c, generator=gen) + 0.5).cuda()
        shift = torch.randn(c, generator=gen).cuda()
    if epilogue == "all":
        res = rand((b, c, h, w), dtype, gen)
    out = ska(x, wt, scale, shift, res)

    def full(xx, ww, sc, sh, rr):
        y = ska_ref(xx, ww)
        if sc is not None:
            y = y * sc.view(1, c, 1, 1) + sh.view(1, c, 1, 1)
        return y if rr is None else y + rr

    d = torch.float64
    as64 = [None if t is None else t.to(d) for t in (scale, shift, res)]
    ref = full(x.to(d), wt.to(d), *as64)
    mag = full(x.to(d).abs(), wt.to(d).abs(), *[None if t is None else t.abs() for t in as64])
    assert out.dtype == dtype
    assert_within_bound(out, ref, mag, 9 + 3, ref_is_fp32=False, what=f"ska {shape} {dtype} {epilogue}")


def test_ska_residual_may_alias_x(ext):
    """LSConv's residual is x itself: the same buffer read twice."""
    from deployconv.ops.cuda_ext import ska
    from deployconv.ops.ska import ska as ska_ref

    gen = torch.Generator().manual_seed(3)
    x, wt = rand((2, 16, 6, 8), torch.float32, gen), rand((2, 2, 9, 6, 8), torch.float32, gen)
    out = ska(x, wt, residual=x)
    ref = ska_ref(x.double(), wt.double()) + x.double()
    mag = ska_ref(x.double().abs(), wt.double().abs()) + x.double().abs()
    assert_within_bound(out, ref, mag, 10, ref_is_fp32=False, what="ska residual=x")


# --- DCNv2 -----------------------------------------------------------------------------------------------------

DCN_CASES = [  # N, C, H, W, O, (kh, kw), stride, pad, dil, groups, offset_groups, mask, bias
    (2, 8, 9, 11, 16, (3, 3), 1, 1, 1, 1, 1, True, True),
    (1, 12, 13, 10, 6, (3, 3), 2, 1, 1, 3, 2, True, False),   # a weight group spans two offset groups
    (1, 6, 8, 9, 70, (2, 3), (2, 1), (1, 2), (2, 1), 1, 3, False, True),  # non-square, 2 output tiles
    (2, 33, 7, 7, 130, (3, 3), 1, 2, 2, 1, 3, True, True),   # partial channel chunks, 3 output tiles
    (1, 4, 5, 5, 4, (1, 1), 1, 0, 1, 2, 1, True, True),      # 1x1
    (1, 16, 20, 23, 32, (3, 3), 1, 1, 1, 4, 4, True, True),  # groups == offset_groups, several pixel tiles
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", DCN_CASES, ids=str)
def test_deform_conv2d_matches_reference(ext, dtype, case):
    from deployconv.ops.cuda_ext import deform_conv2d
    from deployconv.ops.deform_conv import deform_conv2d as dcn_ref

    n, c, h, w, o, (kh, kw), stride, pad, dil, groups, og, use_mask, use_bias = case
    st, pd, dl = [(v, v) if isinstance(v, int) else v for v in (stride, pad, dil)]
    ho = (h + 2 * pd[0] - dl[0] * (kh - 1) - 1) // st[0] + 1
    wo = (w + 2 * pd[1] - dl[1] * (kw - 1) - 1) // st[1] + 1
    gen = torch.Generator().manual_seed(seed_of(case))
    x = rand((n, c, h, w), dtype, gen)
    wt = rand((o, c // groups, kh, kw), dtype, gen, scale=0.3)
    # Offsets up to +-4 pixels: many samples straddle or leave the border (the zero-padding rule).
    off = ((torch.rand((n, 2 * og * kh * kw, ho, wo), generator=gen, dtype=torch.float64) - 0.5) * 8).to("cuda",
                                                                                                        dtype)
    mask = torch.rand((n, og * kh * kw, ho, wo), generator=gen, dtype=torch.float64).to("cuda", dtype) \
        if use_mask else None
    bias = rand((o,), dtype, gen) if use_bias else None
    out = deform_conv2d(x, off, wt, bias, stride, pad, dil, mask)

    f32 = [None if t is None else t.float() for t in (x, off, wt, bias, mask)]
    ref = dcn_ref(f32[0], f32[1], f32[2], f32[3], stride, pad, dil, f32[4])
    mag = dcn_ref(f32[0].abs(), f32[1], f32[2].abs(), None if bias is None else f32[3].abs(), stride, pad, dil,
                  None if mask is None else f32[4].abs())
    n_terms = 4 * (c // groups) * kh * kw + 2  # 4 corners per (channel, point), the bias
    assert_within_bound(out, ref, mag, n_terms, ref_is_fp32=True, what=f"deform_conv2d {case} {dtype}")


def test_deform_conv2d_zero_offsets_is_a_conv(ext):
    """At zero offsets and mask 1 DCNv2 is a plain conv: pins the (dy, dx) and point order independently."""
    from deployconv.ops.cuda_ext import deform_conv2d

    gen = torch.Generator().manual_seed(5)
    x, wt = rand((2, 6, 11, 9), torch.float32, gen), rand((8, 3, 3, 3), torch.float32, gen)
    off = torch.zeros((2, 2 * 9, 6, 5), device="cuda")
    out = deform_conv2d(x, off, wt, None, 2, 1, 1, None)
    ref = F.conv2d(x.double(), wt.double(), None, 2, 1, 1, 2)
    mag = F.conv2d(x.double().abs(), wt.double().abs(), None, 2, 1, 1, 2)
    assert_within_bound(out, ref, mag, 4 * 27, ref_is_fp32=False, what="deform_conv2d zero offsets")


# --- DCNv4 -----------------------------------------------------------------------------------------------------

DCNV4_CASES = [  # N, H, W, G, D, (kh, kw), stride, pad, dil, offset_scale, remove_center, misalign
    (2, 9, 11, 4, 16, (3, 3), 1, 1, 1, 1.0, 0, 0),      # fp16: 8 channels per thread, fp32: 4
    (1, 8, 8, 3, 12, (3, 3), 1, 1, 1, 0.5, 1, 0),       # D = 12: 4-wide
    (2, 13, 7, 2, 6, (3, 3), 2, 1, 1, 1.25, 0, 0),      # D = 6: 2-wide, stride 2
    (1, 10, 9, 5, 3, (5, 5), 1, 4, 2, 1.0, 1, 0),       # D = 3: scalar, 5x5 dilated, no centre
    (1, 7, 12, 2, 16, (2, 4), 1, (0, 1), 1, 0.75, 0, 0),  # even kernel: integer centre (dw*(kw-1))>>1
    (1, 9, 9, 4, 16, (3, 3), 1, 1, 1, 1.0, 0, 1),       # misaligned value: scalar path
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", DCNV4_CASES, ids=str)
def test_dcnv4_matches_reference(ext, dtype, case):
    from deployconv.ops.cuda_ext import dcnv4
    from deployconv.ops.dcnv4 import dcnv4 as dcnv4_ref
    from deployconv.ops.dcnv4 import padded_dim

    n, h, w, g, d, (kh, kw), stride, pad, dil, s, rc, mis = case
    sh_, sw_ = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (pad, pad) if isinstance(pad, int) else pad
    dh, dw = (dil, dil) if isinstance(dil, int) else dil
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh_ + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw_ + 1
    k = kh * kw - rc
    p = padded_dim(g, kh, kw, rc)
    gen = torch.Generator().manual_seed(seed_of(case))
    value = rand((n, h, w, g * d), dtype, gen, offset_elems=mis)
    om = torch.empty((n, ho, wo, p), dtype=torch.float64)
    blocks = om[..., : g * 3 * k].view(n, ho, wo, g, 3 * k)
    blocks[..., : 2 * k] = (torch.rand((n, ho, wo, g, 2 * k), generator=gen, dtype=torch.float64) - 0.5) * 6
    blocks[..., 2 * k:] = torch.randn((n, ho, wo, g, k), generator=gen, dtype=torch.float64)
    om[..., g * 3 * k:] = float("nan")  # the padding must never be read
    om = om.to("cuda", dtype)
    args = (kh, kw, sh_, sw_, ph, pw, dh, dw, g, d, s, rc)
    out = dcnv4(value, om, *args)

    om32 = om.float()
    ref = dcnv4_ref(value.float(), om32, *args)
    om_abs = om32.clone()
    om_abs[..., : g * 3 * k].view(n, ho, wo, g, 3 * k)[..., 2 * k:].abs_()
    mag = dcnv4_ref(value.float().abs(), om_abs, *args)
    assert_within_bound(out, ref, mag, 4 * k, ref_is_fp32=True, what=f"dcnv4 {case} {dtype}")


def test_dcnv4_repacks_an_unpadded_offset_mask(ext):
    """The reference accepts P >= G*K*3; the wrapper re-packs to the kernel's padded width."""
    from deployconv.ops.cuda_ext import dcnv4
    from deployconv.ops.dcnv4 import dcnv4 as dcnv4_ref

    gen = torch.Generator().manual_seed(7)
    value = rand((1, 6, 6, 2 * 16), torch.float32, gen)
    om = rand((1, 6, 6, 2 * 9 * 3), torch.float32, gen)  # 54: not a multiple of 8
    args = (3, 3, 1, 1, 1, 1, 1, 1, 2, 16, 1.0, 0)
    out = dcnv4(value, om, *args)
    ref = dcnv4_ref(value, om, *args)
    om_abs = om.clone().view(1, 6, 6, 2, 27)
    om_abs[..., 18:].abs_()
    mag = dcnv4_ref(value.abs(), om_abs.view(1, 6, 6, 54), *args)
    assert_within_bound(out, ref, mag, 36, ref_is_fp32=True, what="dcnv4 unpadded P")


# --- depthwise conv --------------------------------------------------------------------------------------------

DW_CASES = [  # N, C, H, W, k, stride, pad, bias
    (2, 5, 17, 19, 7, 1, 3, True),
    (1, 3, 56, 56, 13, 1, 6, True),    # one 64x64 tile
    (1, 2, 70, 45, 31, 1, 15, False),  # several tiles, tile shrunk to fit shared memory
    (2, 4, 23, 18, 7, 2, 3, True),
    (1, 2, 64, 64, 31, 2, 15, True),   # stride 2, k = 31: the largest halo
    (3, 7, 7, 7, 13, 1, 6, True),      # tiny map: several planes per block
    (1, 4, 9, 9, 3, 1, 0, True),       # no padding
    (1, 3, 12, 10, 8, 1, 3, True),     # even kernel
    (4, 96, 14, 14, 7, 1, 3, True),    # many planes
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", DW_CASES, ids=str)
def test_dwconv2d_matches_reference(ext, dtype, case):
    from deployconv.ops.cuda_ext import dwconv2d

    n, c, h, w, k, stride, pad, use_bias = case
    gen = torch.Generator().manual_seed(seed_of(case))
    x = rand((n, c, h, w), dtype, gen)
    wt = rand((c, 1, k, k), dtype, gen, scale=1.0 / k)
    bias = rand((c,), dtype, gen) if use_bias else None
    out = dwconv2d(x, wt, bias, stride, pad)
    b64 = None if bias is None else bias.double()
    ref = F.conv2d(x.double(), wt.double(), b64, stride, pad, 1, c)
    mag = F.conv2d(x.double().abs(), wt.double().abs(), None if b64 is None else b64.abs(), stride, pad, 1, c)
    assert_within_bound(out, ref, mag, k * k + 1, ref_is_fp32=False, what=f"dwconv2d {case} {dtype}")


# --- argument handling -----------------------------------------------------------------------------------------


def test_wrappers_reject_what_the_kernels_cannot_do(ext):
    from deployconv.ops.cuda_ext import deform_conv2d, dwconv2d, ska

    x = torch.randn(1, 8, 6, 6, device="cuda")
    with pytest.raises(BadInputError, match="stride"):
        dwconv2d(x, torch.randn(8, 1, 7, 7, device="cuda"), None, 3)
    with pytest.raises(BadInputError, match="float16"):
        ska(x, torch.randn(1, 1, 9, 6, 6, device="cuda", dtype=torch.float16))
    with pytest.raises(BadInputError, match="cpu"):
        ska(x, torch.randn(1, 1, 9, 6, 6))
    with pytest.raises(BadInputError):
        deform_conv2d(x, torch.zeros(1, 18, 6, 6, device="cuda"), torch.randn(4, 3, 3, 3, device="cuda"), padding=1)


def test_c_api_rejects_unsupported_arguments(ext):
    """The C launch API answers cudaErrorInvalidValue (surfaced as RuntimeError), not a bad launch."""
    x = torch.randn(1, 4, 8, 8, device="cuda")
    with pytest.raises(RuntimeError, match="does not support"):
        ext.dwconv2d(x, torch.randn(4, 1, 3, 3, device="cuda"), None, 3, 1)


def test_kernels_run_on_the_current_stream(ext):
    """Work queued on a side stream is ordered with the kernel (the binding passes the current stream)."""
    from deployconv.ops.cuda_ext import dwconv2d

    side = torch.cuda.Stream()
    wt = torch.randn(16, 1, 7, 7, device="cuda")
    with torch.cuda.stream(side):
        x = torch.zeros(4, 16, 64, 64, device="cuda")
        torch.cuda._sleep(10_000_000)  # keep the side stream busy, then fill x on it
        x.fill_(1.0)
        out = dwconv2d(x, wt, None, 1, 3)
    side.synchronize()
    ref = F.conv2d(torch.ones(4, 16, 64, 64, device="cuda", dtype=torch.float64), wt.double(), None, 1, 3, 1, 16)
    mag = F.conv2d(torch.ones_like(ref), wt.double().abs(), None, 1, 3, 1, 16)
    assert_within_bound(out, ref, mag, 50, ref_is_fp32=False, what="dwconv on a side stream")


# --- the swap used by benchmarks/gpu_models (deployconv.ops.cuda_swap) ----------------------------------------


def _op_calls(gen, dtype):
    """(name, call of the torch.library op, the same call on the kernel wrapper, on the reference)."""
    from deployconv.ops import cuda_ext
    from deployconv.ops.dcnv4 import dcnv4 as dcnv4_ref
    from deployconv.ops.dcnv4 import padded_dim
    from deployconv.ops.deform_conv import deform_conv2d as dcn_ref
    from deployconv.ops.ska import ska as ska_ref

    x, w = rand((2, 16, 7, 9), dtype, gen), rand((2, 2, 9, 7, 9), dtype, gen)
    dx, dw = rand((1, 8, 9, 11), dtype, gen), rand((16, 8, 3, 3), dtype, gen, scale=0.3)
    off, mask = rand((1, 18, 9, 11), dtype, gen), torch.rand((1, 9, 9, 11), generator=gen).to("cuda", dtype)
    v = rand((1, 6, 6, 32), dtype, gen)
    om = rand((1, 6, 6, padded_dim(2, 3, 3, 0)), dtype, gen)
    a4 = (3, 3, 1, 1, 1, 1, 1, 1, 2, 16, 1.0, 0)
    return [
        ("ska", lambda: torch.ops.deployconv.ska(x, w), lambda: cuda_ext.ska(x, w), lambda: ska_ref(x, w)),
        ("deform_conv2d",
         lambda: torch.ops.deployconv.deform_conv2d(dx, dw, off, None, mask, [1, 1], [1, 1], [1, 1], 1, 1),
         lambda: cuda_ext.deform_conv2d(dx, off, dw, None, 1, 1, 1, mask),
         lambda: dcn_ref(dx, off, dw, None, 1, 1, 1, mask)),
        ("dcnv4", lambda: torch.ops.deployconv.dcnv4(v, om, *a4), lambda: cuda_ext.dcnv4(v, om, *a4),
         lambda: dcnv4_ref(v, om, *a4)),
    ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_cuda_kernels_route_the_ops_only_inside_the_block(ext, dtype):
    import deployconv.ops.dcnv4  # noqa: F401  (registers torch.ops.deployconv.dcnv4)
    from deployconv.ops.cuda_swap import cuda_kernels

    for name, op, kernel, reference in _op_calls(torch.Generator().manual_seed(11), dtype):
        with cuda_kernels():
            inside = op()
        assert torch.equal(inside, kernel()), f"{name}: the op did not run the kernel inside cuda_kernels()"
        assert torch.equal(op(), reference()), f"{name}: the op did not return to the reference afterwards"


def test_cuda_kernels_leave_unsupported_dtypes_to_the_reference(ext):
    from deployconv.ops.cuda_swap import cuda_kernels
    from deployconv.ops.ska import ska as ska_ref

    gen = torch.Generator().manual_seed(12)
    x, w = rand((1, 8, 5, 5), torch.float64, gen), rand((1, 1, 9, 5, 5), torch.float64, gen)
    with cuda_kernels():
        assert torch.equal(torch.ops.deployconv.ska(x, w), ska_ref(x, w))


def test_cuda_kernels_reach_a_compiled_model(ext):
    """torch.compile keeps the custom op opaque: the switch is read at run time, inside the compiled graph."""
    from deployconv.ops import cuda_ext
    from deployconv.ops.cuda_swap import cuda_kernels
    from deployconv.ops.ska import SKA

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ska = SKA()

        def forward(self, x, w):
            return self.ska(x * 2, w) + 1

    gen = torch.Generator().manual_seed(13)
    x, w = rand((1, 16, 8, 8), torch.float16, gen), rand((1, 2, 9, 8, 8), torch.float16, gen)
    compiled = torch.compile(Block())
    with cuda_kernels():
        got = compiled(x, w)
    assert torch.equal(got, cuda_ext.ska(x * 2, w) + 1)


def test_kernel_depthwise_module_is_the_dwconv_kernel(ext):
    from deployconv.ops.cuda_ext import dwconv2d
    from deployconv.ops.cuda_swap import KernelDepthwiseConv2d, swap_depthwise

    torch.manual_seed(14)
    net = torch.nn.Sequential(torch.nn.Conv2d(16, 16, 7, padding=3, groups=16), torch.nn.ReLU(),
                              torch.nn.Conv2d(16, 16, 13, stride=2, padding=6, groups=16),
                              torch.nn.Conv2d(16, 16, 3, padding=1, groups=16)).cuda().eval()
    swapped, paths = swap_depthwise(net)
    assert paths == ["0", "2"] and isinstance(swapped[0], KernelDepthwiseConv2d)
    assert type(swapped[3]) is torch.nn.Conv2d  # 3x3: below the large-kernel threshold
    x = torch.randn(2, 16, 20, 18, device="cuda")
    with torch.no_grad():
        got = swapped(x)
        want = net[3](dwconv2d(torch.relu(dwconv2d(x, net[0].weight, net[0].bias, 1, 3)), net[2].weight, net[2].bias,
                               2, 6))
    assert torch.equal(got, want)
