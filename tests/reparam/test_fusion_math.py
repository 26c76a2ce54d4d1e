"""Every fusion in reparam/fusion.py proven in fp64 against its unfused definition on random shapes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from deployconv.layers import fusion
from tests.helpers import max_rel

TOL = 1e-10
settings.register_profile("deployconv", max_examples=40, deadline=None)
settings.load_profile("deployconv")


def rand_bn(c: int, g: torch.Generator) -> fusion.BNStats:
    r = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return fusion.BNStats(r(c) - 0.5, r(c) + 0.5, r(c) + 0.5, r(c) - 0.5, 1e-5)


def bn_ref(y: torch.Tensor, bn: fusion.BNStats) -> torch.Tensor:
    return F.batch_norm(y, bn.mean, bn.var, bn.gamma, bn.beta, False, 0.0, bn.eps)


@st.composite
def conv_geometry(draw):
    groups = draw(st.integers(1, 3))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    k = draw(st.sampled_from([1, 2, 3, 5]))
    return dict(groups=groups, cin=cin, cout=cout, k=k, stride=draw(st.integers(1, 2)),
                padding=draw(st.integers(0, 2)), dilation=draw(st.integers(1, 2)),
                bias=draw(st.booleans()), hw=draw(st.integers(9, 12)), seed=draw(st.integers(0, 2**16)))


@given(conv_geometry())
def test_conv_bn_any_geometry(p):
    g = torch.Generator().manual_seed(p["seed"])
    x = torch.randn(2, p["cin"], p["hw"], p["hw"], generator=g, dtype=torch.float64)
    w = torch.randn(p["cout"], p["cin"] // p["groups"], p["k"], p["k"], generator=g, dtype=torch.float64)
    b = torch.randn(p["cout"], generator=g, dtype=torch.float64) if p["bias"] else None
    bn = rand_bn(p["cout"], g)
    kw = dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"], groups=p["groups"])
    ref = bn_ref(F.conv2d(x, w, b, **kw), bn)
    fw, fb = fusion.fuse_conv_bn(w, b, bn)
    assert max_rel(ref, F.conv2d(x, fw, fb, **kw)) <= TOL


@given(st.integers(1, 6), st.integers(1, 6), st.booleans(), st.integers(0, 2**16))
def test_linear_bn_and_bn_linear(fin, fout, bias, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, fin, generator=g, dtype=torch.float64)
    w = torch.randn(fout, fin, generator=g, dtype=torch.float64)
    b = torch.randn(fout, generator=g, dtype=torch.float64) if bias else None
    bn_out, bn_in = rand_bn(fout, g), rand_bn(fin, g)
    fw, fb = fusion.fuse_linear_bn(w, b, bn_out)
    assert max_rel(bn_ref(F.linear(x, w, b), bn_out), F.linear(x, fw, fb)) <= TOL
    fw, fb = fusion.fuse_bn_linear(bn_in, w, b)
    assert max_rel(F.linear(bn_ref(x, bn_in), w, b), F.linear(x, fw, fb)) <= TOL


@given(st.integers(1, 4), st.sampled_from([1, 3, 5]), st.sampled_from([3, 5, 7, 9]), st.integers(0, 2**16))
def test_pad_kernel_is_same_conv(c, k, big, seed):
    if big < k:
        big = k
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, c, 9, 9, generator=g, dtype=torch.float64)
    w = torch.randn(c, 1, k, k, generator=g, dtype=torch.float64)
    ref = F.conv2d(x, w, padding=k // 2, groups=c)
    assert max_rel(ref, F.conv2d(x, fusion.pad_kernel(w, big), padding=big // 2, groups=c)) <= TOL


@given(st.integers(1, 4), st.sampled_from([2, 3, 5]), st.integers(1, 4), st.integers(0, 2**16))
def test_dilate_kernel_equals_dilated_conv(c, k, r, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, c, 12, 12, generator=g, dtype=torch.float64)
    w = torch.randn(c, 1, k, k, generator=g, dtype=torch.float64)
    pad = r * (k - 1) // 2 + 1
    ref = F.conv2d(x, w, dilation=r, padding=pad, groups=c)
    dense = fusion.dilate_kernel(w, r)
    assert dense.shape[-1] == r * (k - 1) + 1
    assert max_rel(ref, F.conv2d(x, dense, padding=pad, groups=c)) <= TOL


@given(st.integers(1, 3), st.integers(1, 3), st.sampled_from([1, 3, 5]), st.integers(0, 2**16))
def test_identity_kernel(groups, per_group, k, seed):
    c = groups * per_group
    x = torch.randn(2, c, 6, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    ident = fusion.identity_kernel(c, groups, k, dtype=torch.float64)
    assert torch.equal(F.conv2d(x, ident, padding=k // 2, groups=groups), x)


@given(st.integers(1, 4), st.integers(1, 5), st.integers(0, 2**16))
def test_average_linears(n, f, seed):
    g = torch.Generator().manual_seed(seed)
    heads = [(torch.randn(3, f, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64))
             for _ in range(n)]
    x = torch.randn(5, f, generator=g, dtype=torch.float64)
    ref = sum(F.linear(x, w, b) for w, b in heads) / n
    w, b = fusion.average_linears(heads)
    assert max_rel(ref, F.linear(x, w, b)) <= TOL


def test_bn_without_affine_and_pad_errors():
    bn = torch.nn.BatchNorm2d(3, affine=False).double().eval()
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    scale, shift = fusion.bn_scale_shift(fusion.bn_stats(bn))
    assert max_rel(bn(x), x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)) <= TOL
    import pytest

    with pytest.raises(ValueError):
        fusion.pad_kernel(torch.zeros(1, 1, 3, 3), 4)
