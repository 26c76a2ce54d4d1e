"""SKA as one torch.library op (`deployconv::ska`) and its two ONNX lowerings.

`standard` (ONNX-domain ops only) runs in ONNX Runtime and matches PyTorch, alone and inside the deploy-form
lsnet_t; `plugin` is exactly one DeployconvSKA node carrying the plugin table's version and namespace.
"""

from __future__ import annotations

import warnings

import onnx
import pytest
import torch
from torch import nn

from deployconv.core.errors import BadInputError
from deployconv.ops.ska import ENTRY, QUALNAME, SKA, ska
from deployconv.plugins.table import ONNX_DOMAIN, plugin_for_op
from tests.helpers import max_rel, randomize_
from tests.ops._export_helpers import (
    EXPORT_BATCH,
    assert_ort_matches,
    attributes,
    custom_nodes,
    export,
    lowering_table,
    metadata,
    run_ort,
)

pytest.importorskip("onnxruntime")

# (C, G, H, W): non-square planes catch H/W mix-ups; 1-pixel-wide planes have both edge columns in one.
SHAPES = {
    "16c-g2-5x6": (16, 2, 5, 6),
    "32c-g4-7x7": (32, 4, 7, 7),
    "24c-g3-1x4": (24, 3, 1, 4),
    "8c-g1-4x1": (8, 1, 4, 1),
}


class Net(nn.Module):
    """SKA between two ops, as LSConv uses it: the exporter must keep the module path on the lowered nodes."""

    def __init__(self):
        super().__init__()
        self.ska = SKA()

    def forward(self, x, w):
        return self.ska(x * 1.5, w)


def _inputs(c, g, h, w, batch, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed + batch)
    x = torch.randn(batch, c, h, w, generator=gen)
    return x.to(dtype), torch.randn(batch, g, 9, h, w, generator=gen).to(dtype)


# --- the torch.library op ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_module_calls_the_op_bit_identical_to_reference(dtype):
    x, w = _inputs(32, 4, 7, 6, 2, dtype=dtype)
    out = SKA()(x, w)
    assert out.dtype == dtype and torch.equal(out, ska(x, w))
    mixed = SKA()(x, w.float())  # autocast hands over a low-precision x and an fp32 GroupNorm output as w
    assert mixed.dtype == dtype and torch.equal(mixed, ska(x, w.float()))
    assert SKA.deployconv_leaf is True


def test_opcheck_fake_and_autograd_registration():
    x, w = _inputs(16, 2, 5, 6, 2, dtype=torch.float64)
    torch.library.opcheck(torch.ops.deployconv.ska.default, (x.requires_grad_(), w.requires_grad_()))


def test_gradcheck_through_the_op_fp64():
    x, w = _inputs(16, 2, 4, 5, 1, seed=3, dtype=torch.float64)
    assert torch.autograd.gradcheck(SKA(), (x.requires_grad_(), w.requires_grad_()))
    x, w = _inputs(16, 2, 4, 5, 1, seed=4, dtype=torch.float64)  # only one input needs a gradient
    assert torch.autograd.gradcheck(SKA(), (x, w.requires_grad_()))


def test_bad_shapes_raise_through_the_op_and_its_fake():
    x, w = torch.zeros(2, 16, 5, 5), torch.zeros(2, 3, 9, 5, 5)
    with pytest.raises(BadInputError, match="ska"):
        SKA()(x, w)
    with torch._subclasses.fake_tensor.FakeTensorMode() as mode, pytest.raises(BadInputError, match="ska"):
        SKA()(mode.from_tensor(x), mode.from_tensor(w))


@pytest.fixture(scope="module")
def lsnet_t_deploy():
    from deployconv.models import create_model
    from deployconv.reparam import reparameterize

    torch.manual_seed(0)
    return reparameterize(randomize_(create_model("lsnet_t"), seed=0)).eval()


def test_torch_export_of_lsnet_t_has_one_op_per_ska(lsnet_t_deploy):
    n_ska = sum(isinstance(m, SKA) for m in lsnet_t_deploy.modules())
    ep = torch.export.export(lsnet_t_deploy, (torch.randn(2, 3, 224, 224),),
                             dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},))
    targets = [str(n.target) for n in ep.graph.nodes if n.op == "call_function" and "deployconv" in str(n.target)]
    assert n_ska == 5 and targets == ["deployconv.ska.default"] * n_ska


# --- lowerings ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", list(SHAPES))
def test_standard_runs_in_ort(shape):
    c, g, h, w = SHAPES[shape]
    proto = export(Net(), _inputs(c, g, h, w, EXPORT_BATCH), lowering_table([ENTRY], "standard", 18), 18)
    assert not custom_nodes(proto)
    assert_ort_matches(proto, Net(), lambda b: _inputs(c, g, h, w, b, seed=1))


def test_standard_low_precision_computes_in_fp32():
    c, g, h, w = SHAPES["32c-g4-7x7"]
    x, wt = _inputs(c, g, h, w, EXPORT_BATCH, dtype=torch.float16)
    proto = export(Net(), (x, wt), lowering_table([ENTRY], "standard", 18), 18)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in onnx.shape_inference.infer_shapes(proto).graph.value_info}
    adds = [n for n in proto.graph.node if n.op_type == "Add"]
    assert adds and all(types[n.output[0]] == onnx.TensorProto.FLOAT for n in adds)  # accumulation in fp32
    x, wt = _inputs(c, g, h, w, 3, seed=5, dtype=torch.float16)
    (out,) = run_ort(proto, x.numpy(), wt.numpy())
    ref = ska(x.double() * 1.5, wt.double())
    assert out.dtype.name == "float16" and max_rel(ref, torch.from_numpy(out)) <= 2e-3  # fp16 output rounding


def test_standard_needs_static_planes():
    class Dynamic(nn.Module):
        def forward(self, x, w):
            return torch.ops.deployconv.ska(x, w)

    h = torch.export.Dim("h", min=2, max=64)
    with warnings.catch_warnings(), pytest.raises(Exception, match="fixed input height and width"):
        warnings.simplefilter("ignore")
        torch.onnx.export(Dynamic().eval(), _inputs(8, 1, 5, 5, 2), dynamo=True, verbose=False, opset_version=18,
                          custom_translation_table=lowering_table([ENTRY], "standard", 18),
                          dynamic_shapes=({2: h}, {3: h}))


def test_plugin_is_one_node_with_the_table_attributes():
    spec = plugin_for_op(QUALNAME)
    proto = export(Net(), _inputs(16, 2, 5, 6, EXPORT_BATCH), lowering_table([ENTRY], "plugin", 18), 18)
    nodes = custom_nodes(proto)
    assert len(nodes) == 1
    (node,) = nodes
    assert (node.op_type, node.domain) == (spec.name, ONNX_DOMAIN) and len(node.input) == len(spec.inputs)
    assert attributes(node) == {"plugin_version": spec.version, "plugin_namespace": spec.namespace}
    assert "ska" in metadata(node).get("pkg.torch.onnx.name_scopes", "")  # the module path survives
    assert {o.domain: o.version for o in proto.opset_import}[ONNX_DOMAIN] == 1


@pytest.mark.slow
def test_lsnet_t_standard_matches_pytorch(lsnet_t_deploy):
    from deployconv.ops.lowering_table import translation_table

    proto = export(lsnet_t_deploy, (torch.randn(EXPORT_BATCH, 3, 224, 224),),
                   translation_table({"ska": "standard"}, 19), 19)
    assert not custom_nodes(proto)
    gen = torch.Generator().manual_seed(7)
    errs = assert_ort_matches(proto, lsnet_t_deploy, lambda b: (torch.randn(b, 3, 224, 224, generator=gen),),
                              batches=(1, 3), tol=1e-4)
    assert max(errs) <= 1e-4
