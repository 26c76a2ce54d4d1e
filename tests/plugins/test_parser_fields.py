"""What TensorRT's ONNX parser will do with our nodes, checked end to end without TensorRT.

Real graphs are exported through deployconv's own export path (export_onnx with the trt-fp32 target: lsnet_t's
SKA, resnet50_dcn's DCNv2 layers, dcnv4_tiny's DCNv4); every distinct plugin node is converted to PluginFields
by the parser's rules (deployconv.plugins.parser_fields, sourced in plugins_cpp/trt/PARSER_FACTS.md) and fed to
the real creators through plugin_probe, for every TensorRT header set. The fields a plugin serializes must equal
the converted attributes (names, PluginFieldType, values), and so must those of a plugin recreated from them
(createPlugin(kRUNTIME), as deserialization does). Output shapes come from getOutputShapes through the probe's
IExprBuilder test double and are compared with the PyTorch references' output shapes.
"""

from __future__ import annotations

import pytest
import torch
from onnx import helper

from deployconv.plugins.parser_fields import (
    K_CHAR,
    K_FLOAT32,
    K_INT32,
    K_INT64,
    compare_fields,
    convert_attribute,
    field_dicts,
    parser_import,
    probe_lines,
)
from deployconv.plugins.probe import run_probe
from deployconv.plugins.table import PLUGINS

ZOO = {"lsnet_t": 224, "resnet50_dcn": 64, "dcnv4_tiny": 64}  # model: input size (LSNet needs 193..256)
FLOAT, HALF, LINEAR = 0, 1, 0  # nvinfer1::DataType / TensorFormat values


# --- the conversion rules themselves (pure) ---------------------------------------------------------------------


def test_conversion_types_follow_the_parser():
    node = helper.make_node("DeployconvX", ["a"], ["b"], domain="deployconv", name="n", i=7, big=2**31 + 5,
                            ints=[1, -2], f=0.1, fs=[1.5, 0.1], s="ab", ss=["x", "yz"],
                            plugin_version="2", plugin_namespace="ns")
    got = {a.name: convert_attribute(a) for a in node.attribute if not a.name.startswith("plugin_")}
    assert (got["i"].type, got["i"].values) == (K_INT32, (7,))
    assert got["big"].values == (-(2**31) + 5,)  # int64 narrowed by a C++ cast, silently
    assert (got["ints"].type, got["ints"].values) == (K_INT32, (1, -2))
    assert got["f"].type == K_FLOAT32 and got["f"].values[0] == pytest.approx(0.1, rel=1e-7) \
        and got["f"].values[0] != 0.1  # float32, not double
    assert (got["fs"].type, got["fs"].length) == (K_FLOAT32, 2)
    assert (got["s"].type, got["s"].values, got["s"].length) == (K_CHAR, (97, 98, 0), 3)  # NUL counted
    assert got["ss"].values == tuple(b"x\0yz\0")
    imp = parser_import(node, ["i", "f", "absent"])
    assert (imp.name, imp.version, imp.namespace, imp.domain_namespace) == ("DeployconvX", "2", "ns", "deployconv")
    assert [f.name for f in imp.fields] == ["i", "f"] and imp.missing == ("absent",)
    assert "plugin_version" in imp.not_passed and "plugin_namespace" in imp.not_passed
    bare = parser_import(helper.make_node("P", ["a"], ["b"]), [])
    assert (bare.version, bare.namespace) == ("1", "")  # the parser's defaults
    assert probe_lines(bare) == ["plugin P 1 -"]


def test_a_type_mismatch_is_reported():
    """The comparison the round-trip tests rely on fails on int64 against int32 (and on values, names)."""
    want = [{"name": "group", "type": K_INT32, "length": 1, "values": [4]}]
    assert compare_fields(want, want) == []
    assert compare_fields(want, [dict(want[0], type=K_INT64)]) == ["group: PluginFieldType 10 != 5"]
    assert compare_fields(want, [dict(want[0], values=[5])]) == ["group: values [5] != [4]"]
    assert compare_fields(want, [dict(want[0], name="groups")])


# --- real exported nodes through the real creators ---------------------------------------------------------------


@pytest.fixture(scope="module")
def exported_nodes():
    """{plugin name: [(node, graph initializer shapes)]}: one node per distinct attribute set, from real exports."""
    from deployconv.core.target import get_target
    from deployconv.export.onnx_export import export_onnx
    from deployconv.models import create_model

    target = get_target("trt-fp32")
    found: dict[str, dict] = {}
    for model, size in ZOO.items():
        m = create_model(model).eval()
        proto, info = export_onnx(m, torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0)),
                                  target, 18)
        assert set(info.lowering.values()) == {"plugin"}
        shapes = {t.name: tuple(t.dims) for t in proto.graph.initializer}
        for node in proto.graph.node:
            if node.op_type in PLUGINS:
                key = tuple(sorted((a.name, str(helper.get_attribute_value(a))) for a in node.attribute))
                found.setdefault(node.op_type, {}).setdefault(key, (model, node, shapes))
    assert set(found) == set(PLUGINS), f"the zoo exports gave {sorted(found)}"
    return {name: list(v.values()) for name, v in found.items()}


def _creator_fields(probe) -> dict[str, list[str]]:
    return {c["name"]: [f["name"] for f in c["fields"]] for c in probe("creators")}


@pytest.mark.slow
@pytest.mark.trt
@pytest.mark.parametrize("name", list(PLUGINS))
def test_exported_nodes_create_and_round_trip_their_values(exported_nodes, trt_build, name):
    def probe(*lines):
        return run_probe(trt_build.probe, trt_build.library, lines)

    creator_fields = _creator_fields(probe)[name]
    for model, node, _ in exported_nodes[name]:
        imp = parser_import(node, creator_fields)
        assert imp.missing == (), f"{model}: the node lacks fields {imp.missing} its creator lists"
        assert set(imp.not_passed) == {"plugin_version", "plugin_namespace"}, imp.not_passed
        assert (imp.version, imp.namespace) == (PLUGINS[name].version, PLUGINS[name].namespace)
        created = probe(*probe_lines(imp), "create")[-1]
        assert created.get("ok"), f"{model} {node.name}: {created}"
        expected = field_dicts(imp.fields)
        assert compare_fields(expected, created["serialized"]) == [], (model, node.name, created)
        assert compare_fields(expected, created["restored"]) == [], (model, node.name, created)


@pytest.mark.slow
@pytest.mark.trt
def test_int64_fields_are_refused_by_the_creator(exported_nodes, trt_build):
    """Negative: the same real DCNv4 node with its INT attributes passed as kINT64 (what a parser that did not
    narrow would send) is refused, and the probe says why."""
    from dataclasses import replace

    def probe(*lines):
        return run_probe(trt_build.probe, trt_build.library, lines)

    _, node, _ = exported_nodes["DeployconvDCNv4"][0]
    imp = parser_import(node, _creator_fields(probe)["DeployconvDCNv4"])
    wrong = replace(imp, fields=tuple(replace(f, type=K_INT64) if f.type == K_INT32 else f for f in imp.fields))
    created = probe(*probe_lines(wrong), "create")[-1]
    assert not created["ok"] and "has PluginFieldType 10, expected 5" in created["log"], created
    ok = probe(*probe_lines(imp), "create")[-1]
    assert ok["ok"] and compare_fields(field_dicts(wrong.fields), ok["serialized"]) != []


@pytest.mark.slow
@pytest.mark.trt
def test_a_wrong_version_or_namespace_finds_no_creator(exported_nodes, trt_build):
    from dataclasses import replace

    _, node, _ = exported_nodes["DeployconvSKA"][0]
    imp = parser_import(node, [])
    for bad in (replace(imp, version="2"), replace(imp, namespace="")):
        out = run_probe(trt_build.probe, trt_build.library, probe_lines(bad))[0]
        assert "no creator named DeployconvSKA" in out["error"]


# --- output shapes -----------------------------------------------------------------------------------------------

BATCHES_AND_SIZES = [(1, 7, 9), (8, 13, 5), (3, 16, 16)]  # batch 1 and 8, odd H and W
# The ends of resnet50_dcn_backbone's profile (B 1..4, H/W 320..1344) as its DCN nodes see them: the first layer2
# block's 3x3 runs at stride 4 (80..336), layer3 at 8 (40..168), layer4 at 16 (20..84); so 20 and 336, square and
# mixed, at batch 1 and 4. getOutputShapes and configurePlugin are symbolic; these cases show it at the range ends.
RANGE_ENDS = [(1, 20, 20), (4, 336, 336), (4, 20, 336), (1, 336, 20)]


def _ints(node, name):
    return list(helper.get_attribute_value(next(a for a in node.attribute if a.name == name)))


def _int(node, name):
    return int(helper.get_attribute_value(next(a for a in node.attribute if a.name == name)))


def _case(name: str, node, shapes, n: int, h: int, w: int, reference: bool = True) -> tuple[list[tuple], tuple]:
    """(input shapes, output shape) for `node`'s attributes at batch n and an h x w map. The output shape is the
    conv formula's; with `reference`, the PyTorch reference op also runs and must give that shape (the range-end
    cases skip it: at 4x336x336 the references need tens of GB)."""
    from deployconv.ops.dcnv4 import dcnv4, padded_dim
    from deployconv.ops.deform_conv import deform_conv2d
    from deployconv.ops.ska import ska

    def checked(ins: list[tuple], want: tuple, run) -> tuple[list[tuple], tuple]:
        if reference:
            got = tuple(run().shape)
            assert got == want, (name, got, want)
        return [tuple(s) for s in ins], want

    if name == "DeployconvSKA":
        c, g = 8, 2
        return checked([(n, c, h, w), (n, g, 9, h, w)], (n, c, h, w),
                       lambda: ska(torch.randn(n, c, h, w), torch.randn(n, g, 9, h, w)))
    if name == "DeployconvDeformConv2d":
        (sh, sw), pads, (dh, dw) = _ints(node, "strides"), _ints(node, "pads"), _ints(node, "dilations")
        g, og = _int(node, "group"), _int(node, "offset_group")
        kh, kw = shapes.get(node.input[1], (0, 0, 3, 3))[2:]
        c, o = 2 * g * og, 2 * g
        ho = (h + 2 * pads[0] - dh * (kh - 1) - 1) // sh + 1
        wo = (w + 2 * pads[1] - dw * (kw - 1) - 1) // sw + 1
        ins = [(n, c, h, w), (o, c // g, kh, kw), (n, 2 * og * kh * kw, ho, wo), (o,), (n, og * kh * kw, ho, wo)]
        return checked(ins, (n, o, ho, wo), lambda: deform_conv2d(
            torch.randn(*ins[0]), torch.randn(*ins[2]), torch.randn(*ins[1]), torch.randn(o), (sh, sw),
            (pads[0], pads[1]), (dh, dw), torch.rand(*ins[4])))
    (kh, kw), (sh, sw), pads, (dh, dw) = (_ints(node, k) for k in ("kernel_shape", "strides", "pads", "dilations"))
    g, d, rc = _int(node, "group"), _int(node, "group_channels"), _int(node, "remove_center")
    ho = (h + 2 * pads[0] - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pads[1] - dw * (kw - 1) - 1) // sw + 1
    ins = [(n, h, w, g * d), (n, ho, wo, padded_dim(g, kh, kw, rc))]
    return checked(ins, (n, ho, wo, g * d), lambda: dcnv4(torch.randn(*ins[0]), torch.randn(*ins[1]), kh, kw, sh, sw,
                                                           pads[0], pads[1], dh, dw, g, d, 1.0, rc))


@pytest.mark.slow
@pytest.mark.trt
@pytest.mark.parametrize("name", list(PLUGINS))
def test_output_shapes_match_the_references(exported_nodes, trt_build, name):
    """getOutputShapes, evaluated by the probe's IExprBuilder test double (our formula, not TensorRT's shape
    machinery), equals the reference op's output shape at batch 1 and 8, odd sizes and the ends of the backbone
    profile's range, for every distinct
    attribute set the zoo exports; the inputs then pass configurePlugin / onShapeChange."""
    def probe(*lines):
        return run_probe(trt_build.probe, trt_build.library, lines)

    creator_fields = _creator_fields(probe)[name]
    torch.manual_seed(0)
    for model, node, shapes in exported_nodes[name]:
        lines = probe_lines(parser_import(node, creator_fields))
        for n, h, w in BATCHES_AND_SIZES + RANGE_ENDS:
            ins, ref_shape = _case(name, node, shapes, n, h, w, reference=(n, h, w) in BATCHES_AND_SIZES)
            tensors = [f"in {FLOAT} {LINEAR} {' '.join(map(str, s))}" for s in ins]
            got = probe(*lines, *tensors, "shapes")[-1]
            assert got["rc"] == 0 and got["error"] == "", got
            assert tuple(got["dims"]) == ref_shape, (model, node.name, (n, h, w), got, ref_shape)
            out = f"out {FLOAT} {LINEAR} {' '.join(map(str, ref_shape))}"
            conf = probe(*lines, *tensors, out, "configure")[-1]
            assert (conf["configure"], conf["shape_change"]) == (0, 0), (model, node.name, conf)
