"""DCNv2 as one torch.library op (`deployconv::deform_conv2d`) and its two ONNX lowerings.

`standard` (ONNX DeformConv, opset 19) runs in ONNX Runtime and matches PyTorch; `plugin` is exactly one
DeployconvDeformConv2d node carrying the plugin table's attributes.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from deployconv.core.errors import BadInputError
from deployconv.ops.deform_conv import ENTRY, QUALNAME, ModulatedDeformConv2dPack, deform_conv2d
from deployconv.plugins.table import ONNX_DOMAIN, plugin_for_op
from tests.ops._export_helpers import (
    EXPORT_BATCH,
    assert_ort_matches,
    attributes,
    custom_nodes,
    export,
    lowering_table,
    metadata,
)

pytest.importorskip("onnxruntime")

OPSET = 19
H, W = 9, 8

# Pack layers: (in, out, stride, padding, dilation, groups, deform_groups, bias). The offset convs get random
# weights, so offsets reach a few pixels and many samples fall (partly) outside the image.
PACKS = {
    "bias-groups-stride2": (8, 6, 2, 1, 1, 2, 2, True),
    "nobias-dilated": (4, 8, 1, 2, 2, 1, 1, False),  # mask without bias, as in resnet50_dcn
}


def _pack(cin, cout, stride, padding, dilation, groups, deform_groups, bias, seed=0) -> ModulatedDeformConv2dPack:
    torch.manual_seed(seed)
    m = ModulatedDeformConv2dPack(cin, cout, 3, stride, padding, dilation, groups, deform_groups, bias)
    with torch.no_grad():
        m.conv_offset.weight.normal_(0, 0.5)
        m.conv_offset.bias.normal_(0, 1.0)
        if m.bias is not None:
            m.bias.normal_()
    return m.eval()


class Bare(nn.Module):
    """The op without mask and bias (DCNv1), offsets as an input."""

    def __init__(self, cin=6, cout=6, groups=3, offset_group=3, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(cout, cin // groups, 3, 3, generator=g) * 0.3)
        self.groups, self.offset_group = groups, offset_group

    def forward(self, x, offset):
        return torch.ops.deployconv.deform_conv2d(x, self.weight, offset, None, None, [1, 1], [1, 1], [1, 1],
                                                  self.groups, self.offset_group)


def _x(b, c, seed=1):
    return (torch.randn(b, c, H, W, generator=torch.Generator().manual_seed(seed + b)),)


def _x_offset(b, c=6, og=3, seed=1):
    g = torch.Generator().manual_seed(seed + b)
    return torch.randn(b, c, H, W, generator=g), 3 * torch.randn(b, 2 * og * 9, H, W, generator=g)


# --- the torch.library op ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_pack_calls_the_op_bit_identical_to_reference(dtype):
    m = _pack(*PACKS["bias-groups-stride2"]).to(dtype)
    (x,) = _x(2, 8)
    x = x.to(dtype)
    with torch.no_grad():
        offset, mask = m.offset_mask(x)
        ref = deform_conv2d(x, offset, m.weight, m.bias, m.stride, m.padding, m.dilation, mask)
        out = m(x)
    assert out.dtype == dtype and torch.equal(out, ref)
    assert ModulatedDeformConv2dPack.deployconv_leaf is True


def test_opcheck_fake_and_autograd_registration():
    m = _pack(*PACKS["bias-groups-stride2"]).double()
    (x,) = _x(2, 8)
    offset, mask = m.offset_mask(x.double())
    args = (x.double(), m.weight.detach(), offset.detach(), m.bias.detach(), mask.detach(), [2, 2], [1, 1],
            [1, 1], 2, 2)
    torch.library.opcheck(torch.ops.deployconv.deform_conv2d.default, args)
    torch.library.opcheck(torch.ops.deployconv.deform_conv2d.default, (*args[:3], None, None, *args[5:]))


@pytest.mark.parametrize("with_bias_mask", [True, False])
def test_gradcheck_through_the_op_fp64(with_bias_mask):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 4, 5, 4, generator=g, dtype=torch.float64)
    w = torch.randn(2, 2, 3, 3, generator=g, dtype=torch.float64)
    off = 1.7 * torch.randn(1, 36, 3, 2, generator=g, dtype=torch.float64)  # 2 offset groups, stride 2
    b = torch.randn(2, generator=g, dtype=torch.float64) if with_bias_mask else None
    mk = torch.rand(1, 18, 3, 2, generator=g, dtype=torch.float64) if with_bias_mask else None
    tensors = [t.requires_grad_() for t in (x, w, off, b, mk) if t is not None]

    def f(*ts):
        x, w, off, *rest = ts
        b, mk = rest if rest else (None, None)
        return torch.ops.deployconv.deform_conv2d(x, w, off, b, mk, [2, 2], [1, 1], [1, 1], 2, 2)

    assert torch.autograd.gradcheck(f, tuple(tensors))


def test_training_step_through_the_pack():
    m = _pack(*PACKS["nobias-dilated"]).train()
    (x,) = _x(2, 4)
    m(x).square().mean().backward()
    assert m.weight.grad is not None and m.conv_offset.weight.grad.abs().sum() > 0


def test_group_arguments_must_match_the_shapes():
    x, off = _x_offset(1)
    w = torch.zeros(6, 2, 3, 3)  # 6 input channels / 2 per group: group 3
    with pytest.raises(BadInputError, match=r"(?s)group=2.*imply group=3"):
        torch.ops.deployconv.deform_conv2d(x, w, off, None, None, [1, 1], [1, 1], [1, 1], 2, 3)


def test_torch_export_sees_one_node_with_dynamic_batch():
    m = nn.Sequential(_pack(*PACKS["bias-groups-stride2"]), nn.ReLU())
    ep = torch.export.export(m, _x(2, 8), dynamic_shapes=({0: torch.export.Dim("batch")},))
    calls = [n for n in ep.graph.nodes if n.op == "call_function" and "deployconv" in str(n.target)]
    assert [str(n.target) for n in calls] == ["deployconv.deform_conv2d.default"]
    assert isinstance(calls[0].meta["val"].shape[0], torch.SymInt)  # the batch stays free


# --- lowerings ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(PACKS))
def test_standard_pack_runs_in_ort(case):
    m = _pack(*PACKS[case])
    proto = export(m, _x(EXPORT_BATCH, m.in_channels), lowering_table([ENTRY], "standard", OPSET), OPSET)
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("DeformConv") == 1 and not custom_nodes(proto)
    node = next(n for n in proto.graph.node if n.op_type == "DeformConv")
    present = [bool(i) for i in node.input]
    assert present[:4] == [True, True, True, m.bias is not None] and present[-1]  # mask present, bias per layer
    a = attributes(node)
    assert a["strides"] == list(m.stride) and a["dilations"] == list(m.dilation)
    assert a["pads"] == [*m.padding, *m.padding] and a["kernel_shape"] == [3, 3]
    assert a["group"] == m.groups and a["offset_group"] == m.deform_groups
    assert_ort_matches(proto, m, lambda b: _x(b, m.in_channels))


def test_standard_without_mask_and_bias_runs_in_ort():
    m = Bare().eval()
    proto = export(m, _x_offset(EXPORT_BATCH), lowering_table([ENTRY], "standard", OPSET), OPSET)
    (node,) = [n for n in proto.graph.node if n.op_type == "DeformConv"]
    assert len(node.input) == 3  # B and mask omitted
    assert_ort_matches(proto, m, _x_offset)


def _plugin_node(m, args):
    proto = export(m, args, lowering_table([ENTRY], "plugin", 18), 18)
    nodes = custom_nodes(proto)
    assert len(nodes) == 1, [n.op_type for n in nodes]
    assert sum(n.op_type == nodes[0].op_type for n in proto.graph.node) == 1
    return proto, nodes[0]


@pytest.mark.parametrize("case", list(PACKS))
def test_plugin_is_one_node_with_the_table_attributes(case):
    spec = plugin_for_op(QUALNAME)
    m = _pack(*PACKS[case])
    proto, node = _plugin_node(nn.Sequential(m), _x(EXPORT_BATCH, m.in_channels))
    assert (node.op_type, node.domain) == (spec.name, ONNX_DOMAIN)
    assert attributes(node) == {
        "strides": list(m.stride), "pads": [*m.padding, *m.padding], "dilations": list(m.dilation),
        "group": m.groups, "offset_group": m.deform_groups,
        "plugin_version": spec.version, "plugin_namespace": spec.namespace,
    }
    assert set(attributes(node)) == {*spec.attr_names(), "plugin_version", "plugin_namespace"}
    # x, weight, offset, bias, mask: a bias-less layer gets a zero bias, so only trailing inputs are ever omitted
    assert len(node.input) == 5 and all(node.input)
    if m.bias is None:
        init = {i.name: i for i in proto.graph.initializer}
        const = {n.output[0]: n for n in proto.graph.node if n.op_type == "Constant"}
        assert node.input[3] in init or node.input[3] in const
        if node.input[3] in init:
            assert not np.any(onnx.numpy_helper.to_array(init[node.input[3]]))
    assert "0" in metadata(node).get("pkg.torch.onnx.name_scopes", "")  # the module path survives


def test_plugin_without_mask_and_bias_has_three_inputs():
    _, node = _plugin_node(Bare().eval(), _x_offset(EXPORT_BATCH))
    assert len(node.input) == 3 and attributes(node)["group"] == 3
