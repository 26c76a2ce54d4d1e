"""DCNv4 reference: against a brute-force fp64 loop written straight from the sampling formula (facts/ops.md),
against a depthwise conv at zero offsets (which pins the x-major point order), in low precision, through the
torch.library op (fake, autograd), and the module around it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from deployconv.core.errors import BadInputError
from deployconv.ops.dcnv4 import DCNv4, dcnv4, dcnv4_op, padded_dim
from tests.helpers import max_rel


def brute_dcnv4(value, om, kh, kw, sh, sw, ph, pw, dh, dw, G, D, scale, remove_center):
    """Plain loops over every output pixel, group, kernel point and channel (fp64 Python floats)."""
    N, H, W, _ = value.shape
    Ho = (H + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    Wo = (W + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    K = kh * kw - remove_center
    # facts: c = dw*(kw-1)/2; the kernel computes it as an integer (>> 1): equal for odd kernels.
    cw, ch = (dw * (kw - 1)) // 2, (dh * (kh - 1)) // 2
    V, OM = value.tolist(), om.tolist()
    out = [[[[0.0] * (G * D) for _ in range(Wo)] for _ in range(Ho)] for _ in range(N)]
    for n in range(N):
        for oy in range(Ho):
            for ox in range(Wo):
                for g in range(G):
                    blk = OM[n][oy][ox][g * 3 * K:(g + 1) * 3 * K]
                    p = 0
                    for i in range(kw):  # x-major: point i*kh + j, i over the width
                        for j in range(kh):
                            if remove_center and i == kw // 2 and j == kh // 2:
                                continue
                            dx, dy, m = blk[2 * p], blk[2 * p + 1], blk[2 * K + p]
                            p += 1
                            x = ox * sw - pw + cw + (i * dw + dx - cw) * scale
                            y = oy * sh - ph + ch + (j * dh + dy - ch) * scale
                            x0, y0 = math.floor(x), math.floor(y)
                            for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
                                for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
                                    if 0 <= yy < H and 0 <= xx < W:  # each corner outside reads 0
                                        for c in range(D):
                                            out[n][oy][ox][g * D + c] += m * wy * wx * V[n][yy][xx][g * D + c]
    return torch.tensor(out, dtype=torch.float64)


@st.composite
def cases(draw):
    G, D = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    remove_center = int(kh * kw > 1 and draw(st.booleans()))
    sh, sw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    H = max(1, dh * (kh - 1) + 1 - 2 * ph) + draw(st.integers(0, 3))
    W = max(1, dw * (kw - 1) + 1 - 2 * pw) + draw(st.integers(0, 3))
    N = draw(st.integers(1, 2))
    scale = draw(st.sampled_from([1.0, 0.5, 1.7]))
    # Offset magnitude 4 pushes many samples (partly or fully) outside the small image; integer offsets land
    # exactly on pixels and on the image border.
    mag = draw(st.sampled_from([0.0, 0.7, 4.0]))
    integer = draw(st.booleans())
    extra_p = draw(st.sampled_from([None, 0, 5]))  # None: the module's padded P; else G*K*3 + extra
    seed = draw(st.integers(0, 2**31 - 1))
    return (N, H, W, G, D, kh, kw, sh, sw, ph, pw, dh, dw, scale, remove_center, mag, integer, extra_p, seed)


def _make(case, dtype=torch.float64):
    N, H, W, G, D, kh, kw, sh, sw, ph, pw, dh, dw, scale, rc, mag, integer, extra_p, seed = case
    g = torch.Generator().manual_seed(seed)
    Ho = (H + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    Wo = (W + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    K = kh * kw - rc
    P = padded_dim(G, kh, kw, rc) if extra_p is None else G * K * 3 + extra_p
    value = torch.randn(N, H, W, G * D, generator=g, dtype=torch.float64)
    om = torch.randn(N, Ho, Wo, P, generator=g, dtype=torch.float64)
    om.view(N, Ho, Wo, P)[..., : G * 3 * K].view(N, Ho, Wo, G, 3 * K)[..., : 2 * K] *= mag
    if integer:
        om = om.round()
    om[..., G * 3 * K:] = float("nan")  # the padding of P is never read
    params = (kh, kw, sh, sw, ph, pw, dh, dw, G, D, scale, rc)
    return value.to(dtype), om.to(dtype), params


@settings(max_examples=200, deadline=None)
@given(cases())
def test_matches_brute_force_fp64(case):
    value, om, params = _make(case)
    ref = brute_dcnv4(value, om, *params)
    out = dcnv4(value, om, *params)
    assert out.dtype == torch.float64 and out.shape == ref.shape
    assert torch.isfinite(out).all()
    assert (out - ref).abs().max().item() <= 1e-10 * max(1.0, ref.abs().max().item())


@settings(max_examples=60, deadline=None)
@given(cases(), st.sampled_from([(torch.float16, 2e-3), (torch.bfloat16, 1.6e-2), (torch.float32, 1e-5)]))
def test_low_precision_matches_fp64(case, dtype_tol):
    """Coordinates and accumulation are fp32, so the error is the rounding of the result (and of fp32 sums)."""
    dtype, tol = dtype_tol
    value, om, params = _make(case, dtype)
    out = dcnv4(value, om, *params)
    assert out.dtype == dtype
    ref = dcnv4(value.double(), om.double(), *params)  # the same rounded inputs, in fp64
    assert (out.double() - ref).abs().max().item() <= tol * max(1.0, ref.abs().max().item())


@pytest.mark.parametrize("G,D", [(1, 3), (2, 16), (4, 2)])
@pytest.mark.parametrize("kernel,stride,pad,dilation", [
    ((3, 3), (1, 1), (1, 1), (1, 1)), ((3, 3), (2, 1), (0, 2), (2, 1)), ((3, 5), (1, 2), (1, 2), (1, 1)),
    ((1, 3), (1, 1), (0, 1), (1, 3)),
])
@pytest.mark.parametrize("remove_center", [0, 1])
def test_zero_offsets_is_depthwise_conv(G, D, kernel, stride, pad, dilation, remove_center):
    """Zero offsets with offset_scale 1 sample the plain kernel grid: with unit weights the op is a grouped
    box sum, and with per-point weights m_p shared by all pixels it is a depthwise conv whose tap (j, i) (row,
    column) is m_{i*kh + j}, which pins the x-major point order. Computed independently with F.conv2d."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, pad, dilation
    if remove_center and kh * kw == 1:
        pytest.skip("no point left")
    g = torch.Generator().manual_seed(0)
    N, H, W, C = 2, 7, 8, G * D
    x = torch.randn(N, H, W, C, generator=g, dtype=torch.float64)
    pts = [(i, j) for i in range(kw) for j in range(kh) if not (remove_center and i == kw // 2 and j == kh // 2)]
    K = len(pts)
    for unit in (True, False):
        m = torch.ones(G, K, dtype=torch.float64) if unit else torch.randn(G, K, generator=g, dtype=torch.float64)
        weight = torch.zeros(G, kh, kw, dtype=torch.float64)
        for p, (i, j) in enumerate(pts):
            weight[:, j, i] = m[:, p]
        wt = weight.repeat_interleave(D, dim=0).unsqueeze(1)  # (C, 1, kh, kw): channel c in group c // D
        ref = F.conv2d(x.permute(0, 3, 1, 2), wt, stride=stride, padding=pad, dilation=dilation, groups=C)
        ref = ref.permute(0, 2, 3, 1)
        Ho, Wo = ref.shape[1:3]
        om = torch.zeros(N, Ho, Wo, G, 3 * K, dtype=torch.float64)
        om[..., 2 * K:] = m
        om = F.pad(om.reshape(N, Ho, Wo, -1), (0, padded_dim(G, kh, kw, remove_center) - G * 3 * K))
        out = dcnv4(x, om, kh, kw, sh, sw, ph, pw, dh, dw, G, D, 1.0, remove_center)
        assert max_rel(ref, out) <= 1e-12


def test_offsets_are_x_then_y():
    """A 1x1 kernel with dx = +1 reads the next column (zero past the right edge), dy = +1 the next row."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 5, 2, generator=g, dtype=torch.float64)
    for dxy, shifted in (((1.0, 0.0), lambda t: F.pad(t[:, :, 1:], (0, 0, 0, 1))),
                         ((0.0, 1.0), lambda t: F.pad(t[:, 1:], (0, 0, 0, 0, 0, 1)))):
        om = torch.zeros(1, 4, 5, 8, dtype=torch.float64)
        om[..., 0], om[..., 1], om[..., 2] = dxy[0], dxy[1], 1.0
        out = dcnv4(x, om, 1, 1, 1, 1, 0, 0, 1, 1, 1, 2, 1.0, 0)
        assert max_rel(shifted(x), out) <= 1e-15


def test_offset_scale_scales_the_footprint_around_the_centre():
    """offset_scale s maps kernel point i to c + (i*d + dx - c)*s: with s = 0.5 and zero offsets a 3x3 kernel
    samples at -0.5, 0, +0.5 around the output pixel, i.e. averages of neighbouring pixels."""
    x = torch.arange(6, dtype=torch.float64).view(1, 1, 6, 1).expand(1, 3, 6, 1).contiguous()  # value = column
    om = torch.zeros(1, 3, 6, 32, dtype=torch.float64)
    om[..., 18:27] = 1.0  # unit weights
    out = dcnv4(x, om, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0.5, 0)
    # Interior pixel (row 1, column c): 3 rows x (c-0.5 + c + c+0.5) = 9c.
    assert torch.allclose(out[0, 1, 1:5, 0], 9 * torch.arange(1, 5, dtype=torch.float64))


def test_any_group_channels_and_extra_padding_in_p():
    """The op itself takes any D and any P >= G*K*3 (only the module insists on D % 16 == 0)."""
    g = torch.Generator().manual_seed(0)
    v = torch.randn(2, 5, 5, 3 * 5, generator=g, dtype=torch.float64)
    om = torch.randn(2, 5, 5, 3 * 27 + 7, generator=g, dtype=torch.float64)
    a = dcnv4(v, om, 3, 3, 1, 1, 1, 1, 1, 1, 3, 5, 1.0, 0)
    b = dcnv4(v, om[..., : 3 * 27], 3, 3, 1, 1, 1, 1, 1, 1, 3, 5, 1.0, 0)
    assert torch.equal(a, b) and a.shape == (2, 5, 5, 15)


def _small(seed=1, dtype=torch.float64, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(1, 4, 5, 4, generator=g, dtype=dtype)
    om = torch.randn(1, 4, 5, 56, generator=g, dtype=dtype)  # G=2, K=9: 54 used + 2 padding
    om[..., :18] *= 1.5
    om[..., 27:45] *= 1.5
    return v.requires_grad_(requires_grad), om.requires_grad_(requires_grad)


PARAMS = (3, 3, 1, 1, 1, 1, 1, 1, 2, 2, 1.0, 0)


def test_custom_op_matches_reference_and_passes_opcheck():
    v, om = _small()
    assert torch.equal(dcnv4_op(v, om, *PARAMS), dcnv4(v, om, *PARAMS))
    v, om = _small(dtype=torch.float32, requires_grad=True)
    torch.library.opcheck(torch.ops.deployconv.dcnv4.default, (v, om, *PARAMS))  # schema, fake, autograd


def test_gradients_fp64():
    v, om = _small(requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: dcnv4_op(a, b, *PARAMS), (v, om))
    # stride, asymmetric pad and dilation, offset_scale, remove_center: Ho x Wo = 1 x 7, G*K*3 = 48 (P = 48).
    params = (3, 3, 2, 1, 1, 2, 2, 1, 2, 2, 0.7, 1)
    om2 = (torch.randn(1, 1, 7, 48, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 1.5)
    assert torch.autograd.gradcheck(lambda a, b: dcnv4_op(a, b, *params), (v, om2.requires_grad_()))


def test_fake_tensor_shape_and_dtype():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        v = torch.empty(3, 9, 11, 32, dtype=torch.float16)
        om = torch.empty(3, 5, 11, 56, dtype=torch.float16)
        out = torch.ops.deployconv.dcnv4(v, om, 3, 3, 2, 1, 1, 1, 1, 1, 2, 16, 1.0, 0)
    assert out.shape == (3, 5, 11, 32) and out.dtype == torch.float16


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    v, om = _small(dtype=torch.float32)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        out = dcnv4(v.cuda().to(dtype), om.cuda().to(dtype), *PARAMS)
        assert out.dtype == dtype and out.is_cuda
        ref = dcnv4(v.to(dtype).double(), om.to(dtype).double(), *PARAMS)
        assert max_rel(ref, out.cpu()) <= {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]


@pytest.mark.parametrize(
    "v_shape,om_shape,params,match",
    [
        ((1, 5, 5), (1, 5, 5, 56), PARAMS, "4-D"),
        ((1, 5, 5, 5), (1, 5, 5, 56), PARAMS, "group \\* group_channels"),
        ((1, 5, 5, 4), (1, 5, 5, 53), PARAMS, "P >= group\\*K\\*3 = 54"),
        ((1, 5, 5, 4), (1, 4, 5, 56), PARAMS, "expected \\(1, 5, 5, P\\)"),
        ((1, 5, 5, 4), (2, 5, 5, 56), PARAMS, "expected"),
        ((1, 1, 1, 4), (1, 1, 1, 56), (3, 3, 1, 1, 0, 0, 1, 1, 2, 2, 1.0, 0), "empty"),
        ((1, 5, 5, 2), (1, 5, 5, 8), (1, 1, 1, 1, 0, 0, 1, 1, 1, 2, 1.0, 1), "no sampling point"),
        ((1, 5, 5, 4), (1, 5, 5, 56), (3, 3, 0, 1, 1, 1, 1, 1, 2, 2, 1.0, 0), ">= 1"),
        ((1, 5, 5, 4), (1, 5, 5, 56), (3, 3, 1, 1, 1, 1, 1, 1, 2, 2, 1.0, 2), "remove_center"),
        ((1, 5, 5, 4), (1, 5, 5, 56), (3, 3, 1, 1, 1, 1, 1, 1, 2, 2, float("inf"), 0), "finite"),
    ],
)
def test_bad_inputs_raise(v_shape, om_shape, params, match):
    with pytest.raises(BadInputError, match=match):
        dcnv4(torch.zeros(v_shape), torch.zeros(om_shape), *params)
    with pytest.raises(BadInputError, match=match):  # the op validates the same way
        dcnv4_op(torch.zeros(v_shape), torch.zeros(om_shape), *params)


def test_bad_dtype_raises():
    with pytest.raises(BadInputError, match="floating point"):
        dcnv4(torch.zeros(1, 5, 5, 4, dtype=torch.long), torch.zeros(1, 5, 5, 56), *PARAMS)
    with pytest.raises(BadInputError, match="one dtype"):
        dcnv4(torch.zeros(1, 5, 5, 4, dtype=torch.float16), torch.zeros(1, 5, 5, 56), *PARAMS)


# ---- the module -------------------------------------------------------------------------------------------------


def test_module_names_and_shapes_follow_the_official():
    m = DCNv4(64, group=4, dw_kernel_size=3)
    assert sorted(m.state_dict()) == [
        "offset_mask.bias", "offset_mask.weight", "offset_mask_dw.bias", "offset_mask_dw.weight",
        "output_proj.bias", "output_proj.weight", "value_proj.bias", "value_proj.weight"]
    assert m.offset_mask.out_features == 112 == padded_dim(4, 3, 3, 0)  # ceil(4*9*3 / 8) * 8
    assert DCNv4(64, group=4, remove_center=True).offset_mask.out_features == 96  # 4*8*3
    assert not m.offset_mask.weight.any() and not m.offset_mask.bias.any()  # official init: zero offsets
    assert sorted(DCNv4(32, group=2).state_dict()) == [
        "offset_mask.bias", "offset_mask.weight", "output_proj.bias", "output_proj.weight", "value_proj.bias",
        "value_proj.weight"]
    assert DCNv4.deployconv_leaf is True


@pytest.mark.parametrize("kwargs,match", [
    (dict(channels=48, group=4), "multiple of 16"),
    (dict(channels=64, group=3), "divisible by group"),
    (dict(channels=64, group=4, stride=2), "stride 1"),
    (dict(channels=64, group=4, pad=0), "stride 1"),
])
def test_module_rejects_bad_configs(kwargs, match):
    with pytest.raises(BadInputError, match=match):
        DCNv4(**kwargs)


@pytest.mark.parametrize("dw_kernel_size,remove_center,dilation", [(None, False, 1), (3, True, 1), (5, False, 2)])
def test_module_is_its_projections_around_the_op(dw_kernel_size, remove_center, dilation):
    torch.manual_seed(0)
    m = DCNv4(32, kernel_size=3, pad=dilation, dilation=dilation, group=2, offset_scale=0.8,
              dw_kernel_size=dw_kernel_size, remove_center=remove_center).double()
    with torch.no_grad():
        m.offset_mask.weight.normal_(0, 0.3)
        m.offset_mask.bias.normal_()
    x = torch.randn(2, 6, 7, 32, dtype=torch.float64)
    om_in = x if dw_kernel_size is None else m.offset_mask_dw(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    ref = m.output_proj(dcnv4(m.value_proj(x), m.offset_mask(om_in), 3, 3, 1, 1, dilation, dilation, dilation,
                              dilation, 2, 16, 0.8, int(remove_center)))
    out = m(x)
    assert out.shape == x.shape and max_rel(ref, out) <= 1e-14
    # The official (N, H*W, C) form with shape=(H, W) gives the same tokens.
    assert max_rel(ref.reshape(2, 42, 32), m(x.reshape(2, 42, 32), shape=(6, 7))) <= 1e-14


def test_module_square_default_and_bad_token_count():
    m = DCNv4(16, group=1)
    assert m(torch.randn(1, 16, 16)).shape == (1, 16, 16)  # L = 16 -> 4x4, as the official
    with pytest.raises(BadInputError, match="H\\*W"):
        m(torch.randn(1, 15, 16))
