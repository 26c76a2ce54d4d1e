"""A DCN backbone with dynamic H/W: the resnet50_dcn backbone form (reduced depth, so it runs on 2 cores)
exported through the pipeline with odd, non-multiple-of-32 range ends; the standard DeformConv lowering
must hold at min, opt and max, the ONNX dims carry the symbols, and the TensorRT profile the ranges."""

import json

import numpy as np
import pytest
import torch

from deployconv.models.resnet_dcn import ResNetDCN
from deployconv.ops.deform_conv import ModulatedDeformConv2dPack
from deployconv.pipeline.export import ExportOptions, export
from tests.helpers import randomize_


def _backbone():
    torch.manual_seed(0)
    m = randomize_(ResNetDCN(layers=(1, 1, 1, 1), features=("c3", "c4", "c5")))
    with torch.no_grad():  # real offsets and masks (the zoo initialises offsets to 0: a plain conv)
        for mod in m.modules():
            if isinstance(mod, ModulatedDeformConv2dPack):
                mod.conv_offset.weight.normal_(0, 0.05)
                mod.conv_offset.bias.normal_(0, 0.5)
    return m.eval()


def test_zoo_backbone_form():
    from deployconv.models import create_model

    with torch.device("meta"):
        m = create_model("resnet50_dcn_backbone")
    assert not hasattr(m, "fc") and m.deployconv_info.input_size == (3, 800, 1344)
    out = _backbone()(torch.randn(1, 3, 65, 97))
    assert list(out) == ["c3", "c4", "c5"] and out["c5"].shape[-2:] == (3, 4)
    v4 = create_model("dcnv4_tiny_backbone")
    assert not hasattr(v4, "head") and v4.deployconv_info.dims == ("B=1..1..4", "H=800", "W=1344")
    feats = v4(torch.randn(1, 3, 48, 80))
    assert {k: tuple(v.shape) for k, v in feats.items()} == {"c2": (1, 64, 12, 20), "c3": (1, 128, 6, 10),
                                                             "c4": (1, 256, 3, 5)}


@pytest.mark.slow
def test_dcn_backbone_parity_at_min_opt_max(tmp_path):
    opts = ExportOptions(inputs=("input=Bx3xHxW",), dims=("H=33..64..97", "W=40..96..129"), bench=False)
    res = export(_backbone(), "trt-fp32", tmp_path / "bb", options=opts)
    parity = res.report["parity"]
    assert res.passed, parity
    assert set(parity["points"]) == {"min", "opt", "max"}
    assert parity["points"]["max"]["shapes"]["input"][2:] == [97, 129]
    m = json.loads((tmp_path / "bb" / "manifest.json").read_text())
    assert m["io"]["inputs"][0]["shape"] == ["B", 3, "H", "W"]
    assert m["io_spec"]["profiles"][0]["input"]["min"] == [1, 3, 33, 40]
    lines = res.report["engine"]["trtexec"]
    assert any("--minShapes=input:1x3x33x40" in ln and "--maxShapes=input:32x3x97x129" in ln for ln in lines)
    ref = np.load(tmp_path / "bb" / "reference.npz")
    assert ref["min/expected/c5"].shape[-2:] == (2, 2)
