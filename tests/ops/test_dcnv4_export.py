"""DCNv4's ONNX lowerings, exported by the dynamo exporter with a dynamic batch: `standard` runs in ONNX Runtime
and matches PyTorch; `plugin` is exactly one DeployconvDCNv4 node carrying the plugin table's attributes."""

from __future__ import annotations

import math
from types import SimpleNamespace

import onnx
import pytest
import torch
from torch import nn

from deployconv.core.errors import BadInputError
from deployconv.ops.dcnv4 import ENTRY, QUALNAME, DCNv4, _static_hw, dcnv4, padded_dim
from deployconv.plugins.table import ONNX_DOMAIN, plugin_for_op
from tests.helpers import max_rel
from tests.ops._export_helpers import (
    EXPORT_BATCH,
    assert_ort_matches,
    attributes,
    custom_nodes,
    export,
    lowering_table,
    run_ort,
)

pytest.importorskip("onnxruntime")

OPSET = 18


class Op(nn.Module):
    """The bare op on (value, offset_mask)."""

    def __init__(self, *params):
        super().__init__()
        self.params = params

    def forward(self, value, offset_mask):
        return torch.ops.deployconv.dcnv4(value, offset_mask, *self.params)


def _export(module: nn.Module, args: tuple, lowering: str, opset: int = OPSET) -> onnx.ModelProto:
    return export(module, args, lowering_table([ENTRY], lowering, opset), opset)


def _inputs(n, h, w, params, seed, dtype=torch.float32):
    kh, kw, sh, sw, ph, pw, dh, dw, g, d, _, rc = params
    ho, wo = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1, (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    k = kh * kw - rc
    gen = torch.Generator().manual_seed(seed)
    value = torch.randn(n, h, w, g * d, generator=gen)
    om = torch.randn(n, ho, wo, padded_dim(g, kh, kw, rc), generator=gen)
    om[..., : g * 3 * k].view(n, ho, wo, g, 3 * k)[..., : 2 * k] *= 2.5  # many samples cross the border
    om[..., g * 3 * k:] = float("nan")  # the padding of P is never read, in any lowering
    return value.to(dtype), om.to(dtype)


CASES = {
    "3x3": (3, 3, 1, 1, 1, 1, 1, 1, 4, 16, 1.0, 0),
    "stride-dilation-scale-nocentre": (3, 3, 2, 1, 0, 2, 1, 2, 3, 5, 0.6, 1),
    "5x3-asymmetric": (5, 3, 1, 2, 2, 0, 2, 1, 2, 8, 1.3, 0),
}
H, W = 9, 10


@pytest.mark.parametrize("name", list(CASES))
def test_standard_runs_in_ort_and_matches(name):
    """fp32 ORT vs the fp64 reference on the same inputs, at batch sizes other than the exported one; NaN in
    the padding of P proves no lowering reads it."""
    params = CASES[name]
    proto = _export(Op(*params), _inputs(EXPORT_BATCH, H, W, params, 0), "standard")
    assert custom_nodes(proto) == []
    assert "GridSample" in {n.op_type for n in proto.graph.node}
    assert_ort_matches(proto, Op(*params), lambda n: _inputs(n, H, W, params, n))


@pytest.mark.parametrize("opset", [16, 20])
def test_standard_across_the_gridsample_mode_rename(opset):
    """GridSample's mode is 'bilinear' up to opset 19 and 'linear' from 20: the lowering leaves it at its
    default and the exporter writes the name valid in the model's opset."""
    params = CASES["3x3"]
    proto = _export(Op(*params), _inputs(EXPORT_BATCH, 6, 7, params, 0), "standard", opset=opset)
    (gs,) = [n for n in proto.graph.node if n.op_type == "GridSample"]
    attrs = attributes(gs)
    assert attrs["mode"] == ("bilinear" if opset < 20 else "linear")
    assert attrs["align_corners"] == 0 and attrs["padding_mode"] == "zeros"
    assert_ort_matches(proto, Op(*params), lambda n: _inputs(n, 6, 7, params, n))


def test_standard_low_precision_inputs_compute_in_fp32():
    params = CASES["3x3"]
    value, om = _inputs(EXPORT_BATCH, 6, 7, params, 0, dtype=torch.float16)
    proto = _export(Op(*params), (value, om), "standard")
    (out,) = run_ort(proto, value.numpy(), om.numpy())
    out = torch.from_numpy(out)
    assert out.dtype == torch.float16
    assert max_rel(dcnv4(value.double(), om.double(), *params), out) <= 2e-3


def test_standard_module_export():
    """The DCNv4 module (projections, depthwise conv, op) in ORT, NHWC input."""
    torch.manual_seed(0)
    m = DCNv4(32, group=2, dw_kernel_size=3, offset_scale=0.5, remove_center=True).eval()
    with torch.no_grad():
        m.offset_mask.weight.normal_(0, 0.3)
        m.offset_mask.bias.normal_(0, 0.5)
    proto = _export(m, (torch.randn(EXPORT_BATCH, 8, 9, 32),), "standard")
    assert_ort_matches(proto, m, lambda n: (torch.randn(n, 8, 9, 32, generator=torch.Generator().manual_seed(n)),))


def test_standard_needs_a_fixed_spatial_size():
    fixed = SimpleNamespace(shape=(None, 5, 6, 32))
    assert _static_hw(fixed, SimpleNamespace(shape=(None, 5, 6, 56))) == (5, 6, 5, 6)
    with pytest.raises(BadInputError, match="fixed spatial size"):
        _static_hw(SimpleNamespace(shape=(None, "h", 6, 32)), SimpleNamespace(shape=(None, "h", 6, 56)))


@pytest.mark.parametrize("name", ["3x3", "stride-dilation-scale-nocentre"])
def test_plugin_is_one_node_with_the_table_attributes(name):
    params = CASES[name]
    kh, kw, sh, sw, ph, pw, dh, dw, g, d, scale, rc = params
    proto = _export(Op(*params), _inputs(EXPORT_BATCH, H, W, params, 0), "plugin")
    (node,) = proto.graph.node  # the whole graph is the one plugin node
    spec = plugin_for_op(QUALNAME)
    assert (node.domain, node.op_type) == (ONNX_DOMAIN, spec.name)
    assert list(node.input) == [i.name for i in proto.graph.input]
    attrs = attributes(node)
    assert set(attrs) == set(spec.attr_names()) | {"plugin_version", "plugin_namespace"}
    assert (attrs["plugin_version"], attrs["plugin_namespace"]) == (spec.version, spec.namespace)
    assert attrs["kernel_shape"] == [kh, kw] and attrs["strides"] == [sh, sw]
    assert attrs["pads"] == [ph, pw, ph, pw] and attrs["dilations"] == [dh, dw]
    assert (attrs["group"], attrs["group_channels"], attrs["remove_center"]) == (g, d, rc)
    assert math.isclose(attrs["offset_scale"], scale, rel_tol=1e-7)
    onnx_kind = {"int": onnx.AttributeProto.INT, "ints": onnx.AttributeProto.INTS,
                 "float": onnx.AttributeProto.FLOAT, "string": onnx.AttributeProto.STRING}
    kinds = {a.name: onnx_kind[a.kind] for a in spec.attrs}
    assert all(a.type == kinds[a.name] for a in node.attribute if a.name in kinds)
    assert any(o.domain == ONNX_DOMAIN for o in proto.opset_import)


def test_entry():
    assert ENTRY.name == "dcnv4" and ENTRY.qualname == QUALNAME
    assert set(ENTRY.lowerings) == set(ENTRY.min_opset) == {"standard", "plugin"}
    assert ENTRY.torch_op is torch.ops.deployconv.dcnv4.default
