"""DCN index limits at build time: the pure overflow rules at and one past each limit, the shapes read from an
ONNX with symbolic H/W pinned to the profile max (through a DCN node's own output), the refusal raised by
make_recipe before any TensorRT call, and a graph without DCN nodes left alone (not even read)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deployconv.core.errors import EXIT_BAD_INPUT, BadInputError
from deployconv.engine.onnx_facts import facts_from_model, read_onnx_facts
from deployconv.engine.op_limits import (
    DCNV4,
    DEFORM_CONV,
    INT_MAX,
    DcnNode,
    check_op_limits,
    overflows,
    read_dcn_nodes,
)
from deployconv.engine.profiles import Profile, ShapeRange
from deployconv.engine.recipe import make_recipe
from deployconv.engine.spec import EngineSpec
from tests.engine.graphs import conv_net

LIB = "/opt/deployconv/libdeployconv_plugins.so"


def _deform(h, w, n=1, c=8, cout=8, stride=1, group=1):
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    return DcnNode("dcn", DEFORM_CONV, (n, c, h, w), (n, cout, ho, wo), group)


def test_hw_at_the_limit_passes_one_over_fails():
    assert INT_MAX == 2147483647
    assert overflows([_deform(1, INT_MAX)]) == ()  # H*W == INT_MAX exactly (2^31-1 is prime: 1 x INT_MAX)
    assert overflows([_deform(46340, 46341)]) == ()  # 2,147,441,940
    (o,) = overflows([_deform(46341, 46341)])  # 2,147,488,281
    assert (o.node, o.product, o.limit) == ("dcn", 46341 * 46341, INT_MAX) and "H*W of x" in o.quantity
    assert o.line() == "dcn (DeployconvDeformConv2d): H*W of x (46341x46341) = 2,147,488,281 > 2,147,483,647"


def test_dim_and_grid_limits():
    (o,) = overflows([_deform(1, INT_MAX + 1)])[:1]
    assert o.quantity == "x dim 3" and o.product == INT_MAX + 1
    # grid y: group * ceil(Cout/group / 64) blocks <= 65535
    assert overflows([_deform(8, 8, c=65535, cout=65535 * 64, group=65535)]) == ()
    (g,) = overflows([_deform(8, 8, c=65536, cout=65536 * 64, group=65536)])
    assert g.quantity.startswith("grid y") and g.product == 65536 and g.limit == 65535
    # DCNv4: ceil(N*Ho*Wo*C / 256) blocks <= 2^31-1 (its H*W is 64-bit inside)
    at = DcnNode("v4", DCNV4, (1, 1, 2**24, 256), (1, 1, 2**24, 256 * 128 - 1))
    assert overflows([at]) == ()
    (v,) = overflows([DcnNode("v4", DCNV4, (1, 1, 2**24, 256), (1, 1, 2**24, 256 * 128))])
    assert v.quantity.startswith("grid blocks") and v.product == 2**31
    assert overflows([DcnNode("u", DEFORM_CONV, None, None)]) == ()  # unknown shapes: nothing to say


def _dcn_net() -> onnx.ModelProto:
    """x[B,4,H,W] -> DeformConv2d stride 2 (dcn1) -> Relu -> DeformConv2d stride 1 (dcn2): dcn2's input size
    is known only through dcn1's output, which ONNX shape inference cannot compute (a plugin op)."""
    rng = np.random.default_rng(0)

    def init(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "woff1"], ["off1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node(DEFORM_CONV, ["x", "w1", "off1"], ["y1"], domain="deployconv", name="dcn1",
                         strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1], group=1, offset_group=1),
        helper.make_node("Relu", ["y1"], ["r1"]),
        helper.make_node("Conv", ["r1", "woff2"], ["off2"], pads=[1, 1, 1, 1]),
        helper.make_node(DEFORM_CONV, ["r1", "w2", "off2"], ["y"], domain="deployconv", name="dcn2",
                         strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1, offset_group=1),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 4, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 8, None, None])],
        initializer=[init("woff1", 18, 4, 3, 3), init("w1", 8, 4, 3, 3), init("woff2", 18, 8, 3, 3),
                     init("w2", 8, 8, 3, 3)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("deployconv", 1)],
                             ir_version=9)


def _profile(h: int, w: int) -> Profile:
    return Profile(inputs=(ShapeRange("x", (1, 4, 32, 32), (1, 4, 64, 64), (2, 4, h, w), True),), batch=(1, 1, 2))


@pytest.fixture(scope="module")
def dcn_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("dcn") / "model.onnx"
    onnx.save(_dcn_net(), str(path))
    return path


def test_symbolic_dims_take_the_profile_max(dcn_file):
    nodes = read_dcn_nodes(str(dcn_file), {"x": (2, 4, 1000, 1337)})
    assert [(n.name, n.x_shape, n.out_shape) for n in nodes] == [
        ("dcn1", (2, 4, 1000, 1337), (2, 8, 500, 669)),
        ("dcn2", (2, 8, 500, 669), (2, 8, 500, 669)),  # through dcn1's output, filled in by the reader
    ]
    facts = read_onnx_facts(dcn_file)
    assert check_op_limits(facts, _profile(46340, 46341)) == [
        "DCN index limits hold at the profile max for 2 node(s)"]
    with pytest.raises(BadInputError) as e:  # only dcn1 overflows: dcn2 sees a quarter of it
        check_op_limits(facts, _profile(46341, 46341))
    assert [ln.split(":")[0] for ln in e.value.details] == ["dcn1 (DeployconvDeformConv2d)"]
    assert e.value.exit_code == EXIT_BAD_INPUT and "lower the max H/W" in e.value.fix
    with pytest.raises(BadInputError) as e:  # twice as large: dcn2 (found only through dcn1's output) too
        check_op_limits(facts, _profile(2 * 46341, 2 * 46341))
    assert sorted(ln.split(" ")[0] for ln in e.value.details if "H*W" in ln) == ["dcn1", "dcn2"]


def test_make_recipe_refuses_before_tensorrt(dcn_file):
    facts = read_onnx_facts(dcn_file)
    ok = EngineSpec(target="t", shapes={"x": ((1, 4, 32, 32), (1, 4, 64, 64), (1, 4, 800, 1344))})
    plan = make_recipe(ok, "10.3", facts, (LIB,))
    assert "DCN index limits hold at the profile max for 2 node(s)" in plan.notes
    big = EngineSpec(target="t", shapes={"x": ((1, 4, 32, 32), (1, 4, 64, 64), (1, 4, 46341, 46341))})
    with pytest.raises(BadInputError, match="DCN index limit"):
        make_recipe(big, "10.3", facts, (LIB,))


def test_graph_without_dcn_is_untouched(tmp_path):
    facts = facts_from_model(conv_net(hw=("H", "W")), path=tmp_path / "never_written.onnx")
    huge = Profile(inputs=(ShapeRange("x", (1, 3, 8, 8), (1, 3, 8, 8), (1, 3, 10**6, 10**6), True),), batch=None)
    assert check_op_limits(facts, huge) == []  # no DCN node: the (absent) file is not even read
    plan = make_recipe(EngineSpec(target="t", shapes={"x": ((1, 3, 8, 8), (1, 3, 8, 8), (1, 3, 10**6, 10**6))}),
                     "10.3", facts)
    assert not any("DCN" in n for n in plan.notes)
