"""DCN index limits on a real exporter graph: the resnet50_dcn backbone form (reduced depth) exported with the
plugin lowering and dynamic H/W; the shapes read at the profile max are the network's own (layer2's stride-2
DCN sees H/4 x W/4), and only the node whose plane overflows is refused."""

import pytest
import torch

from deployconv.core.errors import BadInputError
from deployconv.core.io_spec import build_spec, parse_dim, parse_input
from deployconv.core.target import get_target
from deployconv.engine.onnx_facts import read_onnx_facts
from deployconv.engine.op_limits import DEFORM_CONV, check_op_limits, read_dcn_nodes
from deployconv.engine.profiles import Profile, ShapeRange
from deployconv.export.onnx_export import export_onnx
from deployconv.models.resnet_dcn import ResNetDCN


@pytest.mark.slow
def test_r50_dcn_backbone_limits_at_profile_max(tmp_path):
    import onnx

    m = ResNetDCN(layers=(1, 1, 1, 1), features=("c3", "c4", "c5")).eval()
    spec = build_spec([parse_input("input=Bx3xHxW")], dict([parse_dim("H=33..64..97"), parse_dim("W=40..96..129")]),
                      batch=(1, 1, 4), source="test")
    proto, info = export_onnx(m, torch.randn(2, 3, 64, 96), get_target("trt-fp32"), 18, io=spec,
                              output_names=["c3", "c4", "c5"])
    assert set(info.lowering.values()) == {"plugin"}
    path = tmp_path / "model.onnx"
    onnx.save(proto, str(path))
    nodes = read_dcn_nodes(str(path), {"input": (4, 3, 800, 1344)})
    assert [(n.op_type, n.x_shape, n.out_shape) for n in nodes] == [
        (DEFORM_CONV, (4, 128, 200, 336), (4, 128, 100, 168)),  # layer2.0: stride 2 on the stride-4 map
        (DEFORM_CONV, (4, 256, 100, 168), (4, 256, 50, 84)),
        (DEFORM_CONV, (4, 512, 50, 84), (4, 512, 25, 42)),
    ]
    facts = read_onnx_facts(path)

    def profile(h, w):
        return Profile(inputs=(ShapeRange("input", (1, 3, 33, 40), (1, 3, 64, 96), (1, 3, h, w), True),), batch=None)

    assert check_op_limits(facts, profile(1344, 1344)) == ["DCN index limits hold at the profile max for 3 node(s)"]
    with pytest.raises(BadInputError) as e:  # layer2's plane: (H/4) x (W/4) = 46341^2 > INT_MAX
        check_op_limits(facts, profile(4 * 46341, 4 * 46341))
    hw = [ln for ln in e.value.details if "H*W" in ln]
    assert len(hw) == 1 and hw[0].startswith(nodes[0].name) and "46341x46341" in hw[0]
