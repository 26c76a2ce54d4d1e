"""RepVGG block fold (3x3+BN, 1x1+BN, identity BN -> one grouped 3x3 conv), proven in fp64."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deployconv.models.repvgg import RepVGGBlock
from tests.helpers import max_rel, randomize_


@st.composite
def blocks(draw):
    groups = draw(st.sampled_from([1, 2, 3, 4]))
    identity = draw(st.booleans())
    cin = groups * draw(st.integers(1, 4))
    if identity:
        cout, stride = cin, 1
    else:
        cout, stride = groups * draw(st.integers(1, 4)), draw(st.sampled_from([1, 2]))
    hw = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    return cin, cout, stride, groups, hw, draw(st.integers(0, 2**31 - 1))


@settings(max_examples=60, deadline=None)
@given(blocks())
def test_block_fold_fp64(case):
    cin, cout, stride, groups, hw, seed = case
    torch.manual_seed(seed)
    block = randomize_(RepVGGBlock(cin, cout, stride=stride, groups=groups), seed).double().eval()
    assert (block.rbr_identity is not None) == (cin == cout and stride == 1)
    x = torch.randn(2, cin, *hw, dtype=torch.float64)
    with torch.no_grad():
        # Compare before the ReLU too, so that no branch error can hide in the clipped half.
        pre = block.rbr_dense(x) + block.rbr_1x1(x) + (block.rbr_identity(x) if block.rbr_identity else 0)
        ref = block(x)
        block.reparameterize()
        assert block.deploy and not hasattr(block, "rbr_dense") and not hasattr(block, "rbr_identity")
        conv = block.rbr_reparam
        assert conv.kernel_size == (3, 3) and conv.groups == groups and conv.stride == (stride, stride)
        assert max_rel(pre, conv(x)) <= 1e-10
        assert max_rel(ref, block(x)) <= 1e-10
        block.reparameterize()  # idempotent
        assert block.rbr_reparam is conv


def test_block_fold_keeps_dtype_and_mode():
    block = randomize_(RepVGGBlock(8, 8, groups=2)).eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        ref = block(x)
        block.reparameterize()
        assert block.rbr_reparam.weight.dtype == torch.float32 and not block.rbr_reparam.training
        assert max_rel(ref, block(x)) <= 1e-5


def test_deploy_block_names():
    assert sorted(RepVGGBlock(4, 4, deploy=True).state_dict()) == ["rbr_reparam.bias", "rbr_reparam.weight"]
    train = sorted(RepVGGBlock(4, 4).state_dict())
    assert "rbr_identity.running_var" in train and "rbr_dense.conv.weight" in train and "rbr_1x1.bn.bias" in train
    assert not any(k.startswith("rbr_identity") for k in RepVGGBlock(4, 4, stride=2).state_dict())
