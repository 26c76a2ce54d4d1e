"""The graph pass's algebra in fp64: each op's ConvForm equals the module, and compose/merge equal brute-force
evaluation of the unfused ops over random channels, groups, kernels, strides, dilations and paddings."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from deployconv.reparam.graph import forms
from deployconv.reparam.graph.algebra import compose, merge, regroup, to_conv
from deployconv.reparam.graph.forms import ConvForm, Refused
from tests.helpers import max_rel, randomize_

TOL = 1e-10
EXAMPLES = settings(max_examples=40, deadline=None)


def run(f: ConvForm, x: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, f.weight, f.bias, f.stride, f.padding, f.dilation, f.groups)


def rand_form(g: torch.Generator, cin, cout, groups, k, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
              bias=True) -> ConvForm:
    w = torch.randn(cout, cin // groups, *k, generator=g, dtype=torch.float64)
    b = torch.randn(cout, generator=g, dtype=torch.float64) if bias else torch.zeros(cout, dtype=torch.float64)
    return ConvForm(w, b, stride, padding, dilation, groups, cin)


class BNAndPadLayer(nn.Module):
    """DBB's layer, as its repository writes it (BN, then a border filled with BN(0))."""

    def __init__(self, pad_pixels, num_features):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features)
        self.pad_pixels = pad_pixels

    def forward(self, x):
        out = self.bn(x)
        if self.pad_pixels > 0:
            bn = self.bn
            v = (bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)).view(1, -1, 1, 1)
            p = self.pad_pixels
            out = F.pad(out, [p] * 4)
            out[:, :, :p, :] = v
            out[:, :, -p:, :] = v
            out[:, :, :, :p] = v
            out[:, :, :, -p:] = v
        return out


@EXAMPLES
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.sampled_from([1, 2, 3, 5]),
       st.integers(1, 2), st.integers(0, 2), st.integers(1, 2), st.booleans(), st.integers(0, 2**16))
def test_leaf_forms_equal_their_modules(groups, ci, co, k, stride, pad, dil, bias, seed):
    torch.manual_seed(seed)
    x = torch.randn(2, groups * ci, 9, 10, dtype=torch.float64)
    conv = nn.Conv2d(groups * ci, groups * co, (k, max(1, k - 2)), stride, (pad, 1), (dil, 1), groups,
                     bias=bias).double()
    assert max_rel(conv(x), run(forms.conv_form(conv), x)) <= TOL
    bn = randomize_(nn.BatchNorm2d(groups * ci), seed).double().eval()
    assert max_rel(bn(x), run(forms.bn_form(bn), x)) <= TOL
    kk = min(k, 3)
    pool = nn.AvgPool2d(kk, stride, padding=min(pad, kk // 2))
    assert max_rel(pool(x), run(forms.avg_pool_form(pool, x.shape[1]), x)) <= TOL
    layer = BNAndPadLayer(pad, groups * ci).double().eval()
    randomize_(layer, seed)
    assert forms.is_bn_and_pad(layer)
    assert max_rel(layer(x), run(forms.bn_and_pad_form(layer), x)) <= TOL
    assert max_rel(x, run(forms.identity_form(x.shape[1]), x)) <= TOL


def test_leaf_refusals():
    with pytest.raises(Refused, match="count_include_pad"):
        forms.avg_pool_form(nn.AvgPool2d(3, 1, 1, count_include_pad=False), 4)
    with pytest.raises(Refused, match="ceil_mode"):
        forms.avg_pool_form(nn.AvgPool2d(3, 2, ceil_mode=True), 4)
    with pytest.raises(Refused, match="running statistics"):
        forms.bn_form(nn.BatchNorm2d(4, track_running_stats=False).eval())
    with pytest.raises(Refused, match="padding_mode"):
        forms.conv_form(nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"))


@EXAMPLES
@given(st.sampled_from([1, 2, 3, 6]), st.sampled_from([1, 2, 3, 6]), st.integers(0, 2**16))
def test_regroup_is_the_same_function(groups, factor, seed):
    assume(groups % factor == 0)
    g = torch.Generator().manual_seed(seed)
    f = rand_form(g, 6, 6 * (1 + seed % 2), groups, (3, 3), padding=(1, 1))
    ng = groups // factor
    coarse = ConvForm(regroup(f.weight, groups, ng, 6), f.bias, f.stride, f.padding, f.dilation, ng, 6)
    x = torch.randn(1, 6, 7, 7, generator=g, dtype=torch.float64)
    assert max_rel(run(f, x), run(coarse, x)) <= TOL


@st.composite
def chains(draw):
    """(a, b): one side 1x1 stride 1 (BN, scale, pointwise conv, BNAndPad), the other any conv or pool."""
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    ga, gb = draw(st.sampled_from([1, 2, 3])), draw(st.sampled_from([1, 2, 3]))
    mid = ga * gb * draw(st.integers(1, 2))
    cin, cout = ga * draw(st.integers(1, 3)), gb * draw(st.integers(1, 3))
    k = (draw(st.sampled_from([1, 2, 3, 5])), draw(st.sampled_from([1, 3])))
    geo = dict(stride=(draw(st.integers(1, 2)),) * 2, padding=(draw(st.integers(0, 2)), draw(st.integers(0, 1))),
               dilation=(draw(st.integers(1, 2)), 1))
    zero_bias = draw(st.booleans())
    if draw(st.booleans()):  # pointwise first (maybe BNAndPad-style padded), spatial second
        a = rand_form(g, cin, mid, ga, (1, 1), padding=(draw(st.integers(0, 1)),) * 2, bias=not zero_bias)
        b = rand_form(g, mid, cout, gb, k, **geo)
    else:
        a = rand_form(g, cin, mid, ga, k, **geo)
        b = rand_form(g, mid, cout, gb, (1, 1))
    return a, b, seed


@EXAMPLES
@given(chains())
def test_compose_equals_sequential_evaluation(case):
    a, b, seed = case
    x = torch.randn(2, a.in_channels, 11, 12, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    try:
        fused = compose(a, b)
    except Refused as e:
        # the only refusal here: zero padding after a non-zero response to zero
        assert "padding" in str(e) and b.padding != (0, 0) and bool((a.bias != 0).any())
        return
    assert max_rel(run(b, run(a, x)), run(fused, x)) <= TOL
    assert max_rel(run(b, run(a, x)), to_conv(fused, torch.float64)(x)) <= TOL


@st.composite
def branch_sets(draw):
    """Parallel branches that align: k x k, 1 x 1, 1 x k / k x 1, dilated, avg-pool, identity, any groups."""
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    groups = draw(st.sampled_from([1, 2, 4]))
    c = 4 * draw(st.integers(1, 2))
    cout = c if draw(st.booleans()) else 2 * c
    stride = draw(st.integers(1, 2))
    shift = draw(st.integers(0, 1))  # every branch pads `shift` more than 'same'
    out = []
    for _ in range(draw(st.integers(2, 4))):
        kind = draw(st.sampled_from(["kxk", "1x1", "asym", "dilated", "pool", "identity"]))
        if kind in ("pool", "identity") and cout != c:
            kind = "1x1"
        if kind == "kxk":
            k = draw(st.sampled_from([3, 5]))
            f = rand_form(g, c, cout, groups, (k, k), (stride,) * 2, (k // 2 + shift,) * 2)
        elif kind == "1x1":
            f = rand_form(g, c, cout, draw(st.sampled_from([1, groups])), (1, 1), (stride,) * 2, (shift, shift))
        elif kind == "asym":
            k = draw(st.sampled_from([3, 5]))
            kk = (1, k) if draw(st.booleans()) else (k, 1)
            f = rand_form(g, c, cout, groups, kk, (stride,) * 2, (kk[0] // 2 + shift, kk[1] // 2 + shift))
        elif kind == "dilated":
            k, r = draw(st.sampled_from([(3, 2), (3, 3), (5, 2)]))
            f = rand_form(g, c, cout, groups, (k, k), (stride,) * 2, (r * (k - 1) // 2 + shift,) * 2, (r, r))
        elif kind == "pool":
            f = forms.avg_pool_form(nn.AvgPool2d(3, stride, 1 + shift), c)
        else:
            if stride != 1 or shift:
                continue
            f = forms.identity_form(c)
        out.append(f)
    assume(len(out) >= 2)
    return out, seed


@EXAMPLES
@given(branch_sets())
def test_merge_equals_sum_of_branches(case):
    branches, seed = case
    x = torch.randn(2, branches[0].in_channels, 13, 11, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)
    fused = merge(branches)
    ref = sum(run(f, x) for f in branches)
    assert max_rel(ref, run(fused, x)) <= TOL
    assert fused.groups == __import__("math").gcd(*[f.groups for f in branches])


def test_merge_refuses_stride_and_alignment_mismatch():
    g = torch.Generator().manual_seed(0)
    a = rand_form(g, 4, 4, 1, (3, 3), (1, 1), (1, 1))
    with pytest.raises(Refused, match="stride mismatch"):
        merge([a, rand_form(g, 4, 4, 1, (1, 1), (2, 2))])
    with pytest.raises(Refused, match="alignment"):
        merge([a, rand_form(g, 4, 4, 1, (3, 3), (1, 1), (0, 0))])
    with pytest.raises(Refused, match="do not compose"):
        compose(a, a)
