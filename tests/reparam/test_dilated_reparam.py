"""UniRepLKNet's reparameterizations proven in fp64 against the unfused modules: the Dilated Reparam Block
merge (every official K and random valid custom branch sets) and the whole-block folds (norm BN into the
dwconv, GRN beta into pwconv2's bias, pwconv2's BN and the layer scale into pwconv2)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from deployconv.models.unireplknet import (
    DEFAULT_DILATED_BRANCHES,
    DilatedReparamBlock,
    GRNwithNHWC,
    UniRepLKNetBlock,
    check_branches,
)
from tests.helpers import max_rel, randomize_

TOL = 1e-10
PROPERTY = settings(max_examples=30, deadline=None)



@torch.no_grad()
def randomize_all_(model: nn.Module, seed: int) -> nn.Module:
    """tests.helpers.randomize_ plus what it leaves alone here: weights at a scale where every term of the
    block matters, and GRN's gamma/beta (shaped (1, 1, 1, C), so not caught by its 1-D rule)."""
    randomize_(model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=torch.float64) / math.sqrt(fan_in))
            if m.bias is not None:
                m.bias.copy_(torch.rand(m.bias.shape, generator=g, dtype=torch.float64) - 0.5)
        if isinstance(m, GRNwithNHWC):
            m.gamma.copy_(torch.rand(m.gamma.shape, generator=g, dtype=torch.float64) + 0.5)
            if m.beta is not None:
                m.beta.copy_(torch.rand(m.beta.shape, generator=g, dtype=torch.float64) - 0.5)
    return model


def has_bn(m: nn.Module) -> bool:
    return any(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in m.modules())


@st.composite
def custom_spec(draw):
    """A random valid (K, [(k, r), ...]): K odd, k odd, span r(k-1)+1 <= K, no duplicates."""
    kernel = draw(st.sampled_from([1, 3, 5, 7, 9, 11, 13, 15, 17, 19]))
    candidates = [(k, r) for k in range(1, kernel + 1, 2) for r in range(1, kernel + 1)
                  if r * (k - 1) + 1 <= kernel and (k > 1 or r == 1)]
    branches = draw(st.lists(st.sampled_from(candidates), max_size=5, unique=True))
    return kernel, branches


def check_drb(kernel: int, branches, channels: int, h: int, w: int, seed: int) -> None:
    block = randomize_all_(DilatedReparamBlock(channels, kernel, branches=branches).double().eval(), seed)
    x = torch.randn(2, channels, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    with torch.no_grad():
        ref = block(x)
        fused = copy.deepcopy(block)
        fused.reparameterize()
        assert max_rel(ref, fused(x)) <= TOL
        assert fused.is_deploy and not has_bn(fused)
        assert [n for n, _ in fused.named_parameters()] == ["lk_origin.weight", "lk_origin.bias"]
        assert fused.lk_origin.weight.shape == (channels, 1, kernel, kernel)
        # Idempotent, and the deploy-form block built directly takes the merged weights.
        state = {k: v.clone() for k, v in fused.state_dict().items()}
        fused.reparameterize()
        assert all(torch.equal(state[k], v) for k, v in fused.state_dict().items())
        direct = DilatedReparamBlock(channels, kernel, deploy=True, branches=branches).double().eval()
        direct.load_state_dict(state)
        assert max_rel(ref, direct(x)) <= TOL


@PROPERTY
@given(st.sampled_from(sorted(DEFAULT_DILATED_BRANCHES)), st.integers(1, 6), st.integers(1, 21),
       st.integers(1, 21), st.integers(0, 2**16))
def test_official_dilated_reparam(kernel, channels, h, w, seed):
    check_drb(kernel, None, channels, h, w, seed)


@PROPERTY
@given(custom_spec(), st.integers(1, 5), st.integers(1, 16), st.integers(1, 16), st.integers(0, 2**16))
def test_custom_dilated_reparam(spec, channels, h, w, seed):
    kernel, branches = spec
    check_drb(kernel, branches, channels, h, w, seed)


def test_official_branch_names():
    block = DilatedReparamBlock(4, 13)
    names = {n.split(".")[0] for n, _ in block.named_parameters()}
    assert names == {"lk_origin", "origin_bn"} | {f"dil_{t}_k{k}_{r}" for k, r in
                                                  ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5)) for t in ("conv", "bn")}
    assert block.get_submodule("dil_conv_k7_2").dilation == (2, 2)
    assert block.get_submodule("dil_conv_k3_5").padding == (5, 5)


@pytest.mark.parametrize("kernel, branches", [
    (12, None),  # no official table
    (8, [(3, 1)]),  # even large kernel
    (9, [(4, 1)]),  # even branch kernel
    (9, [(3, 5)]),  # span 11 > 9
    (9, [(3, 2), (3, 2)]),  # duplicate names
    (9, [(3, 0)]),  # no dilation 0
])
def test_invalid_branch_specs_are_refused(kernel, branches):
    with pytest.raises(ValueError):
        check_branches(kernel, branches)


@PROPERTY
@given(st.sampled_from([0, 3, 5, 7, 13]), st.integers(1, 3), st.integers(1, 12), st.integers(1, 12),
       st.integers(0, 2**16))
def test_block_folds(kernel, quarter, h, w, seed):
    """Kernel 0 isolates the FFN folds (GRN beta, BN, layer scale); 3/5 add the plain dwconv + norm fold;
    7/13 the Dilated Reparam Block + norm fold."""
    dim = 4 * quarter
    block = randomize_all_(UniRepLKNetBlock(dim, kernel).double().eval(), seed)
    x = torch.randn(2, dim, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    with torch.no_grad():
        ref = block(x)
        fused = copy.deepcopy(block)
        fused.reparameterize()
        # Compare the residual branch (the skip would dilute a fusion error).
        assert max_rel(ref - x, fused(x) - x) <= TOL
        assert not has_bn(fused)
        assert fused.gamma is None and fused.act[1].beta is None and len(fused.pwconv2) == 2
        assert fused.pwconv2[0].bias is not None
        state = {k: v.clone() for k, v in fused.state_dict().items()}
        fused.reparameterize()
        assert all(torch.equal(state[k], v) for k, v in fused.state_dict().items())
        direct = UniRepLKNetBlock(dim, kernel, deploy=True).double().eval()
        direct.load_state_dict(state)
        assert max_rel(ref, direct(x)) <= TOL


def test_block_without_layer_scale_folds():
    block = randomize_all_(UniRepLKNetBlock(8, 5, layer_scale_init_value=0).double().eval(), 3)
    assert block.gamma is None
    x = torch.randn(1, 8, 9, 7, dtype=torch.float64)
    with torch.no_grad():
        ref = block(x)
        block.reparameterize()
        assert max_rel(ref - x, block(x) - x) <= TOL
