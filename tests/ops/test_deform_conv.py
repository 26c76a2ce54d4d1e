"""DCNv2 reference: against a brute-force fp64 loop written straight from the sampling formula (facts/ops.md),
against conv2d at zero offsets, in low precision, and the Pack module's (o1, o2, m) split."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from deployconv.core.errors import BadInputError
from deployconv.ops.deform_conv import ModulatedDeformConv2dPack, deform_conv2d
from tests.helpers import max_rel


def _bilinear(img: list[list[float]], y: float, x: float) -> float:
    """torchvision's rule: zero if fully outside, else each corner outside the image contributes 0."""
    h, w = len(img), len(img[0])
    if y <= -1 or y >= h or x <= -1 or x >= w:
        return 0.0
    y0, x0 = math.floor(y), math.floor(x)
    ly, lx = y - y0, x - x0
    val = 0.0
    for yy, wy in ((y0, 1 - ly), (y0 + 1, ly)):
        for xx, wx in ((x0, 1 - lx), (x0 + 1, lx)):
            if 0 <= yy < h and 0 <= xx < w:
                val += wy * wx * img[yy][xx]
    return val


def brute_deform_conv2d(inp, offset, weight, bias, stride, padding, dilation, mask):
    """Plain loops over every output element, kernel point and input channel (fp64 Python floats)."""
    n, c, _, _ = inp.shape
    o, cg, kh, kw = weight.shape
    k = kh * kw
    groups = c // cg
    og = offset.shape[1] // (2 * k)
    ho, wo = offset.shape[2:]
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    X, OFF, W = inp.tolist(), offset.tolist(), weight.tolist()
    M = mask.tolist() if mask is not None else None
    B = bias.tolist() if bias is not None else [0.0] * o
    out = torch.zeros(n, o, ho, wo, dtype=torch.float64)
    for b in range(n):
        # Sample once per (input channel, kernel point, output pixel), then sum into each output channel.
        samples = {}
        for ci in range(c):
            g = ci // (c // og)
            for i in range(kh):
                for j in range(kw):
                    p = i * kw + j
                    for oy in range(ho):
                        for ox in range(wo):
                            y = oy * sh - ph + i * dh + OFF[b][2 * (g * k + p)][oy][ox]
                            x = ox * sw - pw + j * dw + OFF[b][2 * (g * k + p) + 1][oy][ox]
                            mod = M[b][g * k + p][oy][ox] if M is not None else 1.0
                            samples[ci, p, oy, ox] = mod * _bilinear(X[b][ci], y, x)
        for co in range(o):
            grp = co // (o // groups)
            for oy in range(ho):
                for ox in range(wo):
                    acc = B[co]
                    for cl in range(cg):
                        for p in range(k):
                            acc += W[co][cl][p // kw][p % kw] * samples[grp * cg + cl, p, oy, ox]
                    out[b, co, oy, ox] = acc
    return out


@st.composite
def cases(draw):
    groups = draw(st.sampled_from([1, 2]))
    og = draw(st.sampled_from([1, 2]))
    c = math.lcm(groups, og) * draw(st.integers(1, 3))
    o = groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    # Smallest input that still yields one output pixel, plus a little.
    h = max(1, dilation[0] * (kh - 1) + 1 - 2 * padding[0]) + draw(st.integers(0, 3))
    w = max(1, dilation[1] * (kw - 1) + 1 - 2 * padding[1]) + draw(st.integers(0, 3))
    n = draw(st.integers(1, 2))
    # Offset scale 4 pushes many samples (partly or fully) outside the small image; integer offsets land
    # exactly on pixels and on the image border.
    scale = draw(st.sampled_from([0.0, 0.7, 4.0]))
    integer = draw(st.booleans())
    use_mask, use_bias = draw(st.booleans()), draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    return groups, og, c, o, kh, kw, stride, padding, dilation, h, w, n, scale, integer, use_mask, use_bias, seed


def _make(case, dtype=torch.float64):
    groups, og, c, o, kh, kw, stride, padding, dilation, h, w, n, scale, integer, use_mask, use_bias, seed = case
    g = torch.Generator().manual_seed(seed)
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    inp = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(o, c // groups, kh, kw, generator=g, dtype=torch.float64)
    offset = torch.randn(n, 2 * og * kh * kw, ho, wo, generator=g, dtype=torch.float64) * scale
    if integer:
        offset = offset.round()
    mask = torch.rand(n, og * kh * kw, ho, wo, generator=g, dtype=torch.float64) if use_mask else None
    bias = torch.randn(o, generator=g, dtype=torch.float64) if use_bias else None

    def cast(t):
        return None if t is None else t.to(dtype)

    return cast(inp), cast(offset), cast(weight), cast(bias), cast(mask), stride, padding, dilation


@settings(max_examples=150, deadline=None)
@given(cases())
def test_matches_brute_force_fp64(case):
    inp, offset, weight, bias, mask, stride, padding, dilation = _make(case)
    ref = brute_deform_conv2d(inp, offset, weight, bias, stride, padding, dilation, mask)
    out = deform_conv2d(inp, offset, weight, bias, stride, padding, dilation, mask)
    assert out.dtype == torch.float64 and out.shape == ref.shape
    assert (out - ref).abs().max().item() <= 1e-10 * max(1.0, ref.abs().max().item())


def _onnx_deform_conv(inp, offset, weight, bias, stride, padding, dilation, mask):
    """ONNX's own reference implementation of DeformConv (opset 19), the arbiter of the layout."""
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    cg, kh, kw = weight.shape[1:]
    feeds = {"X": inp, "W": weight, "offset": offset, "B": bias, "mask": mask}
    names = [k if v is not None else "" for k, v in feeds.items()]
    while names[-1] == "":
        names.pop()
    node = helper.make_node(
        "DeformConv", names, ["Y"], dilations=list(dilation), group=inp.shape[1] // cg,
        kernel_shape=[kh, kw], offset_group=offset.shape[1] // (2 * kh * kw),
        pads=[padding[0], padding[1], padding[0], padding[1]], strides=list(stride),
    )
    inputs = [helper.make_tensor_value_info(k, TensorProto.DOUBLE, None) for k in names if k]
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    (out,) = ReferenceEvaluator(model).run(None, {k: feeds[k].numpy() for k in names if k})
    return torch.from_numpy(out)


@settings(max_examples=10, deadline=None)
@given(cases())
def test_matches_onnx_reference(case):
    """Same layout and sampling as ONNX's reference DeformConv. Its GridSample rounds the sampling
    coordinates to fp32, so this agrees to ~1e-7 only; exactness is the brute-force test's job."""
    inp, offset, weight, bias, mask, stride, padding, dilation = _make(case)
    assume(min(inp.shape[2:]) > 1)  # onnx's reference grid_sample divides by H-1 and W-1
    ref = _onnx_deform_conv(inp, offset, weight, bias, stride, padding, dilation, mask)
    out = deform_conv2d(inp, offset, weight, bias, stride, padding, dilation, mask)
    assert (out - ref).abs().max().item() <= 1e-5 * max(1.0, ref.abs().max().item())


@settings(max_examples=25, deadline=None)
@given(cases(), st.sampled_from([(torch.float16, 2e-3), (torch.bfloat16, 1.6e-2), (torch.float32, 1e-5)]))
def test_low_precision_matches_fp64(case, dtype_tol):
    """Coordinates and accumulation are fp32, so the error is the rounding of the result (and of fp32 sums)."""
    dtype, tol = dtype_tol
    args = _make(case, dtype)
    out = deform_conv2d(*args[:4], *args[5:], mask=args[4])
    assert out.dtype == dtype
    up = [None if t is None else t.double() for t in args[:5]]  # the same rounded inputs, in fp64
    ref = deform_conv2d(*up[:4], *args[5:], mask=up[4])
    assert (out.double() - ref).abs().max().item() <= tol * max(1.0, ref.abs().max().item())


@pytest.mark.parametrize("groups,og", [(1, 1), (2, 1), (1, 2), (4, 2), (2, 4)])
@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 0, 1), ((2, 1), (1, 2), (2, 1))])
def test_zero_offsets_unit_mask_is_conv2d(groups, og, stride, padding, dilation):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 9, 8, generator=g, dtype=torch.float64)
    w = torch.randn(8, 8 // groups, 3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(8, generator=g, dtype=torch.float64)
    ref = F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    ho, wo = ref.shape[2:]
    off = torch.zeros(2, 2 * og * 9, ho, wo, dtype=torch.float64)
    one = torch.ones(2, og * 9, ho, wo, dtype=torch.float64)
    for m in (None, one):
        out = deform_conv2d(x, off, w, b, stride=stride, padding=padding, dilation=dilation, mask=m)
        assert max_rel(ref, out) <= 1e-12


def test_gradients_fp64():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    off = (torch.rand(1, 18, 5, 5, generator=g, dtype=torch.float64) * 3 - 1.5).requires_grad_()
    m = torch.rand(1, 9, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: deform_conv2d(a[0], a[1], a[2], padding=1, mask=a[3]),
                                    (x, off, w, m), fast_mode=True)


@pytest.mark.parametrize(
    "shapes,match",
    [
        (dict(input=(2, 4, 5)), "4-D"),
        (dict(weight=(4, 3, 3, 3)), "must divide the input channels"),
        (dict(weight=(3, 2, 3, 3)), "groups must divide the output"),
        (dict(offset=(2, 17, 5, 5)), "offset channels"),
        (dict(offset=(2, 18, 4, 5)), "expected"),
        (dict(offset=(1, 18, 5, 5)), "expected"),
        (dict(mask=(2, 18, 5, 5)), "mask"),
        (dict(bias=(3,)), "bias"),
    ],
)
def test_bad_shapes_raise(shapes, match):
    dims = dict(input=(2, 4, 5, 5), offset=(2, 18, 5, 5), weight=(4, 4, 3, 3), mask=(2, 9, 5, 5), bias=(4,))
    dims.update(shapes)
    t = {k: torch.zeros(v) for k, v in dims.items()}
    with pytest.raises(BadInputError, match=match):
        deform_conv2d(t["input"], t["offset"], t["weight"], t["bias"], padding=1, mask=t["mask"])


def test_bad_dtype_and_empty_output_raise():
    x = torch.zeros(1, 1, 2, 2)
    with pytest.raises(BadInputError, match="floating point"):
        deform_conv2d(x, torch.zeros(1, 18, 1, 1, dtype=torch.long), torch.zeros(1, 1, 3, 3))
    with pytest.raises(BadInputError, match="empty"):
        deform_conv2d(x, torch.zeros(1, 18, 1, 1), torch.zeros(1, 1, 3, 3))


def test_pack_starts_as_plain_conv():
    torch.manual_seed(0)
    m = ModulatedDeformConv2dPack(8, 6, 3, stride=2, padding=1, groups=2, deform_groups=2).double()
    assert m.conv_offset.out_channels == 3 * 2 * 9
    assert not m.conv_offset.weight.any() and not m.conv_offset.bias.any()
    with torch.no_grad():
        m.bias.normal_()
    x = torch.randn(2, 8, 9, 9, dtype=torch.float64)
    # Zero offsets and mask sigmoid(0) = 0.5 everywhere: half a plain conv (plus the bias).
    ref = 0.5 * F.conv2d(x, m.weight, None, stride=2, padding=1, groups=2) + m.bias.view(1, -1, 1, 1)
    assert max_rel(ref, m(x)) <= 1e-12
    assert ModulatedDeformConv2dPack.deployconv_leaf is True
    assert sorted(ModulatedDeformConv2dPack(4, 4, 3, bias=False).state_dict()) == [
        "conv_offset.bias", "conv_offset.weight", "weight"]


def test_pack_split_o1_o2_m():
    """A 1x1 Pack: conv_offset channels are (o1, o2, m) = (dy, dx, mask logit). dy = +1 samples one row
    down, so the output is the plain 1x1 conv shifted up a row with a zero last row; dx likewise."""
    m = ModulatedDeformConv2dPack(3, 2, 1, bias=False).double()
    with torch.no_grad():
        m.conv_offset.bias.copy_(torch.tensor([1.0, 0.0, 40.0]))  # sigmoid(40) == 1 in fp64 rounding
    x = torch.randn(1, 3, 5, 4, dtype=torch.float64)
    plain = F.conv2d(x, m.weight)
    ref = torch.zeros_like(plain)
    ref[:, :, :-1] = plain[:, :, 1:]
    assert max_rel(ref, m(x)) <= 1e-12
    with torch.no_grad():  # dx = -1 samples one column left: shifted right, zero first column
        m.conv_offset.bias.copy_(torch.tensor([0.0, -1.0, 40.0]))
    ref = torch.zeros_like(plain)
    ref[..., 1:] = plain[..., :-1]
    assert max_rel(ref, m(x)) <= 1e-12
    # With two deform groups the 6 offset channels are cat(o1, o2) = all of the first two chunks.
    m2 = ModulatedDeformConv2dPack(4, 2, 1, deform_groups=2).double()
    with torch.no_grad():
        m2.conv_offset.bias.copy_(torch.arange(6, dtype=torch.float64) / 10)
    x2 = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    off, mask = m2.offset_mask(x2)
    assert torch.equal(off[0, :, 0, 0], torch.tensor([0.0, 0.1, 0.2, 0.3], dtype=torch.float64))
    assert torch.allclose(mask[0, :, 0, 0], torch.sigmoid(torch.tensor([0.4, 0.5], dtype=torch.float64)))


def test_pack_bn_fold():
    torch.manual_seed(0)
    m = ModulatedDeformConv2dPack(4, 6, 3, padding=1, bias=False).double()
    bn = torch.nn.BatchNorm2d(6).double().eval()
    with torch.no_grad():
        m.conv_offset.weight.normal_(std=0.5)
        for t in (bn.running_mean, bn.bias):
            t.uniform_(-0.5, 0.5)
        for t in (bn.running_var, bn.weight):
            t.uniform_(0.5, 1.5)
        x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
        assert max_rel(bn(m(x)), m.with_bn_folded(bn)(x)) <= 1e-12


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_matches_cpu(dtype):
    case = (2, 2, 8, 6, 3, 3, (2, 1), (1, 1), (1, 2), 17, 15, 2, 4.0, False, True, True, 7)
    args = _make(case, dtype)
    cpu = deform_conv2d(*args[:4], *args[5:], mask=args[4])
    cuda = [None if t is None else t.cuda() for t in args[:5]]
    gpu = deform_conv2d(*cuda[:4], *args[5:], mask=cuda[4])
    assert gpu.dtype == dtype and gpu.is_cuda
    tol = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
    assert max_rel(cpu, gpu.cpu()) <= tol
