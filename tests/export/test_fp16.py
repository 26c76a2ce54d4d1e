"""fp16 mixed precision: which nodes stay fp32, graph I/O types, casts (one per boundary tensor, never
chained), checker and shape inference, ONNX Runtime runs, fp16 emulation, the guard, and two real zoo models."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from deployconv.core.errors import BadInputError, CheckFailedError
from deployconv.core.target import Budget
from deployconv.export.precision.fp16 import FP16_MAX, convert_fp16, fp16_array, to_fp16
from deployconv.export.precision.fp16_emulate import emulation_twin
from deployconv.export.precision.fp16_guard import FP16_BUDGET, guard_fp16
from deployconv.validate.metrics import compare

F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16
RNG = np.random.default_rng(0)


# ---------------------------------------------------------------------------------------------------- helpers

def make_model(nodes, inputs, outputs, inits=()) -> onnx.ModelProto:
    """inputs/outputs: (name, shape) pairs, fp32; inits: name -> array (fp32 unless integer)."""
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, F32, s) for n, s in inputs],
                          [helper.make_tensor_value_info(n, F32, s) for n, s in outputs],
                          [numpy_helper.from_array(np.asarray(a), n) for n, a in dict(inits).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
    onnx.checker.check_model(m, full_check=True)
    return m


def w(*shape, scale=0.3) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def input_dtypes(model: onnx.ModelProto) -> dict[str, int]:
    """node name -> elem type of its first input (what precision the node computes in)."""
    inf = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    g = inf.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.output, *g.value_info)}
    types.update({t.name: t.data_type for t in g.initializer})
    return {n.name: types[n.input[0]] for n in g.node}


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    i = s.get_inputs()[0]
    return s.run(None, {i.name: x.astype(np.float16 if i.type == "tensor(float16)" else np.float32)})[0]


def assert_clean_casts(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """No float Cast->Cast chain (fp32 -> fp16 -> fp32 or the like), no tensor cast to the same dtype twice;
    returns the Casts."""
    producer = {o: n for n in model.graph.node for o in n.output}
    casts = [n for n in model.graph.node if n.op_type == "Cast"]

    def float_cast(node: onnx.NodeProto | None) -> bool:
        return node is not None and node.op_type == "Cast" and node.attribute[0].i in (F32, F16)

    chains = [c.name for c in casts if float_cast(c) and float_cast(producer.get(c.input[0]))]
    assert not chains, f"Cast->Cast chains at {chains}"
    per = Counter((c.input[0], c.attribute[0].i) for c in casts)
    assert all(v == 1 for v in per.values()), f"tensors cast more than once: {per}"
    return casts


def valid(model: onnx.ModelProto) -> None:
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, strict_mode=True)


# ----------------------------------------------------------------------------------------- a mixed graph

@pytest.fixture(scope="module")
def mixed_net() -> onnx.ModelProto:
    """Conv -> GroupNorm (as InstanceNorm + Reshape + affine) -> GRN-style norm (ReduceL2 / mean + eps) ->
    attention-ish MatMul/Softmax -> LayerNorm, Erf, Exp, Pow -> pooled Gemm head; plus a DeformConv."""
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        n("Reshape", ["c1", "gshape"], ["g1"], name="gn_reshape_in"),
        n("InstanceNormalization", ["g1", "in_s", "in_b"], ["g2"], name="gn_instnorm"),
        n("Reshape", ["g2", "xshape"], ["g3"], name="gn_reshape_out"),
        n("Mul", ["g3", "gamma"], ["g4"], name="gn_scale"),
        n("Add", ["g4", "beta"], ["g5"], name="gn_shift"),
        n("Relu", ["g5"], ["r1"], name="relu1"),
        n("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        # GRN: Gx = ||x||_2 over HW, Nx = Gx / (mean_c(Gx) + eps), y = x * Nx + x
        n("ReduceL2", ["c2", "ax23"], ["gx"], name="grn_l2", keepdims=1),
        n("ReduceMean", ["gx", "ax1"], ["gm"], name="grn_mean", keepdims=1),
        n("Add", ["gm", "eps"], ["gme"], name="grn_eps"),
        n("Div", ["gx", "gme"], ["nx"], name="grn_div"),
        n("Mul", ["c2", "nx"], ["xn"], name="grn_mul"),
        n("Add", ["xn", "c2"], ["grn"], name="grn_res"),
        n("Sigmoid", ["grn"], ["sg"], name="sigmoid"),
        n("DeformConv", ["sg", "wd", "off"], ["dc"], name="deform", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        # attention over the 8x8 positions: (1, 64, C) x (1, C, 64) -> softmax -> x V
        n("Reshape", ["dc", "seq"], ["s1"], name="to_seq"),
        n("Transpose", ["s1"], ["q"], name="q_t", perm=[0, 2, 1]),
        n("MatMul", ["q", "s1"], ["logits"], name="qk"),
        n("Softmax", ["logits"], ["attn"], name="softmax", axis=-1),
        n("MatMul", ["attn", "q"], ["av"], name="av"),
        n("LayerNormalization", ["av", "ln_s", "ln_b"], ["ln"], name="layernorm", axis=-1),
        n("Erf", ["ln"], ["erf"], name="erf"),
        n("Exp", ["erf"], ["ex"], name="exp"),
        n("Pow", ["ex", "two"], ["pw"], name="pow"),
        n("ReduceMean", ["pw", "ax1"], ["pooled"], name="pool", keepdims=0),
        n("Gemm", ["pooled", "wh", "bh"], ["y"], name="head", transB=1),
    ]
    inits = {
        "w1": w(8, 3, 3, 3), "b1": w(8), "w2": w(8, 8, 3, 3, scale=0.15), "wd": w(8, 8, 3, 3, scale=0.15),
        "off": w(1, 18, 8, 8, scale=0.5), "gshape": np.array([1, 2, -1], np.int64),
        "in_s": np.ones(2, np.float32), "in_b": np.zeros(2, np.float32),
        "xshape": np.array([1, 8, 8, 8], np.int64), "gamma": w(1, 8, 1, 1) + 1, "beta": w(1, 8, 1, 1),
        "ax23": np.array([2, 3], np.int64), "ax1": np.array([1], np.int64), "eps": np.array([1e-6], np.float32),
        "seq": np.array([1, 8, 64], np.int64), "ln_s": np.ones(8, np.float32), "ln_b": np.zeros(8, np.float32),
        "two": np.array([2.0], np.float32), "wh": w(5, 8), "bh": w(5)}
    return make_model(nodes, [("x", [1, 3, 8, 8])], [("y", [1, 5])], inits)


SENSITIVE = {"gn_instnorm", "grn_l2", "grn_mean", "grn_div", "deform", "softmax", "layernorm", "erf", "exp",
             "pow", "pool"}
FP16_NODES = {"conv1", "conv2", "grn_mul", "grn_res", "sigmoid", "qk", "av", "head"}


def test_sensitive_ops_stay_fp32_compute_goes_fp16(mixed_net):
    m, info = convert_fp16(mixed_net)
    dt = input_dtypes(m)
    assert {k for k in SENSITIVE if dt[k] != F32} == set()
    assert {k for k in FP16_NODES if dt[k] != F16} == set()
    reasons = {k.name: k.reason for k in info.kept_fp32}
    assert reasons["gn_instnorm"] == "rule: normalisation" and reasons["softmax"] == "rule: softmax"
    assert reasons["grn_l2"].startswith("rule: accumulating reduction")
    assert reasons["deform"].startswith("rule: sampling")
    assert reasons["grn_div"].startswith("rule: statistics arithmetic")
    # GroupNorm's affine and the GRN's eps follow their fp32 input instead of casting down and up again
    assert {reasons[k] for k in ("gn_reshape_out", "gn_scale", "gn_shift", "relu1", "grn_eps", "to_seq", "q_t")} == \
        {"rule: follows fp32 inputs (no cast)"}
    assert info.fp16_nodes == len(info.fp16_node_names) and "conv1" in info.fp16_node_names


def test_sampling_coordinates_stay_fp32_back_to_the_offset_predictor():
    """DCNv4-style grid: offsets from a conv, scaled and added to a base grid in [-1, 1], into GridSample.
    The scale/add/transpose chain and its constants stay fp32; the offset conv stays fp16."""
    n = helper.make_node
    base = np.stack(np.meshgrid(np.linspace(-1, 1, 6), np.linspace(-1, 1, 6)), -1)[None].astype(np.float32)
    nodes = [n("Conv", ["x", "wv"], ["v"], name="value_conv"),
             n("Conv", ["x", "wo"], ["o"], name="offset_conv"),
             n("Transpose", ["o"], ["ot"], name="offset_nhwc", perm=[0, 2, 3, 1]),
             n("Mul", ["ot", "scale"], ["os"], name="offset_scale"),
             n("Add", ["os", "base"], ["grid"], name="grid_add"),
             n("GridSample", ["v", "grid"], ["y"], name="sample")]
    m0 = make_model(nodes, [("x", [1, 4, 6, 6])], [("y", [1, 4, 6, 6])],
                    {"wv": w(4, 4, 1, 1), "wo": w(2, 4, 1, 1), "scale": np.array([2 / 6], np.float32), "base": base})
    m, info = convert_fp16(m0)
    reasons = {k.name: k.reason for k in info.kept_fp32}
    assert {reasons[k] for k in ("offset_nhwc", "offset_scale", "grid_add")} == {"rule: computes sampling coordinates"}
    assert reasons["sample"].startswith("rule: sampling")
    dt = input_dtypes(m)
    assert dt["offset_conv"] == F16 and dt["value_conv"] == F16
    assert {t.name: t.data_type for t in m.graph.initializer}["base"] == F32
    valid(m)


def test_plugin_nodes_follow_the_plugin_table():
    """deployconv's SKA plugin declares float16 (plugins/table.py): it runs in fp16, its fp32_inputs (the fused
    epilogue's scale/shift) stay fp32 constants; an unknown custom op stays fp32."""
    from deployconv.plugins.table import ONNX_DOMAIN, PLUGINS

    ska = PLUGINS["DeployconvSKA"]
    n = helper.make_node
    nodes = [n("Conv", ["x", "w"], ["c"], name="conv"),
             n("Conv", ["x", "wk"], ["k"], name="kernel_conv"),
             n(ska.name, ["c", "k", "scale", "shift"], ["s"], name="ska", domain=ONNX_DOMAIN),
             n("Relu", ["s"], ["y"], name="relu")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F32, [1, 8, 4, 4])],
                          [helper.make_tensor_value_info("y", F32, [1, 8, 4, 4])],
                          [numpy_helper.from_array(a, k) for k, a in
                           {"w": w(8, 8, 1, 1), "wk": w(9, 8, 1, 1), "scale": w(8), "shift": w(8)}.items()],
                          # a plugin's output is typed only by value_info (its schema has no inference function)
                          value_info=[helper.make_tensor_value_info("s", F32, [1, 8, 4, 4])])
    m0 = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid(ONNX_DOMAIN, 1)],
                           ir_version=10)
    m, info = convert_fp16(m0)
    dt = input_dtypes(m)
    assert dt["ska"] == F16 and "ska" in info.fp16_node_names and dt["relu"] == F16
    assert {v.name: v.type.tensor_type.elem_type for v in m.graph.value_info}["s"] == F16
    inits = {t.name: t.data_type for t in m.graph.initializer}
    assert inits["scale"] == F32 and inits["shift"] == F32 and inits["wk"] == F16
    from deployconv.export.precision.fp16_rules import NodeView, decide

    assert decide([NodeView("mystery", "Mystery", "vendor", (None,), "vendor::Mystery has no ONNX schema here")])[0] \
        .reason == "rule: vendor::Mystery has no ONNX schema here"


def test_keep_fp32_nodes_is_honoured(mixed_net):
    m, info = convert_fp16(mixed_net, keep_fp32_nodes=frozenset({"conv2"}))
    assert input_dtypes(m)["conv2"] == F32
    assert {k.name: k.reason for k in info.kept_fp32}["conv2"] == "requested: keep_fp32_nodes"


@pytest.mark.parametrize("io", ["fp32", "fp16"])
def test_io_types_checker_shape_inference_and_ort(mixed_net, io):
    m = to_fp16(mixed_net, io_dtype=io)
    want = F32 if io == "fp32" else F16
    assert [v.type.tensor_type.elem_type for v in (*m.graph.input, *m.graph.output)] == [want, want]
    assert [v.name for v in m.graph.input] == ["x"] and [v.name for v in m.graph.output] == ["y"]
    valid(m)
    x = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)
    y = run(m, x)
    assert y.dtype == (np.float32 if io == "fp32" else np.float16)
    assert compare(run(mixed_net, x), y).cosine > 0.999
    assert compare(run(mixed_net, x), run(emulation_twin(m), x)).cosine > 0.999
    assert mixed_net.graph.input[0].type.tensor_type.elem_type == F32  # the input model is not modified


def test_one_cast_per_boundary_tensor_and_no_chains(mixed_net):
    m, info = convert_fp16(mixed_net)
    casts = assert_clean_casts(m)
    assert len(casts) == len(info.casts)
    # c2 (fp16 conv output) is read by the fp32 ReduceL2 and by two fp16 nodes: one Cast serves it
    c2 = [c for c in info.casts if c.tensor == "c2"]
    assert len(c2) == 1 and c2[0].to == "fp32" and c2[0].consumers == 1
    by_src = Counter(c.input[0] for c in casts)
    assert by_src["c2"] == 1


def test_one_cast_for_several_consumers():
    n = helper.make_node
    nodes = [n("Conv", ["x", "w"], ["c"], name="conv"),
             n("Softmax", ["c"], ["s"], name="sm", axis=1),
             n("ReduceMean", ["c", "ax"], ["r"], name="rm", keepdims=1),
             n("Add", ["s", "r"], ["y"], name="add")]
    m0 = make_model(nodes, [("x", [1, 4, 5, 5])], [("y", [1, 4, 5, 5])],
                    {"w": w(4, 4, 1, 1), "ax": np.array([1], np.int64)})
    m, info = convert_fp16(m0)
    casts = assert_clean_casts(m)
    to32 = [c for c in casts if c.attribute[0].i == F32]
    assert len(to32) == 1 and [c.consumers for c in info.casts if c.tensor == "c"] == [2]
    valid(m)


def test_existing_casts_are_retargeted_or_recast_never_chained():
    """x -> Cast(int64) -> Cast(float) -> Conv (fp16 only): the Cast to float becomes a Cast to fp16.
    A second Cast(float) read by an fp16 Conv and an fp32 Softmax: the fp16 copy comes from the int tensor
    (here the retargeted Cast already makes it), never from a Cast of the Cast."""
    n = helper.make_node
    nodes = [n("Cast", ["x"], ["xi"], name="to_int", to=TensorProto.INT64),
             n("Cast", ["xi"], ["xf"], name="to_float", to=F32),
             n("Conv", ["xf", "w"], ["c"], name="conv"),
             n("Cast", ["xi"], ["xf2"], name="to_float2", to=F32),
             n("Conv", ["xf2", "w"], ["c2"], name="conv2"),
             n("Softmax", ["xf2"], ["s"], name="sm", axis=1),
             n("Add", ["c", "c2"], ["a"], name="add"),
             n("Add", ["a", "s"], ["y"], name="add2")]
    m0 = make_model(nodes, [("x", [1, 4, 5, 5])], [("y", [1, 4, 5, 5])], {"w": w(4, 4, 1, 1)})
    m, info = convert_fp16(m0)
    assert_clean_casts(m)
    assert info.retargeted_casts == ["to_float"]
    cast = {c.name: c for c in m.graph.node if c.op_type == "Cast"}
    assert cast["to_float"].attribute[0].i == F16
    # conv2 reads the fp16 copy of xf2 from the retargeted Cast: the same cast of the same int tensor
    assert sorted(c.name for c in m.graph.node if c.op_type == "Cast" and c.input[0] == "xi") == \
        ["to_float", "to_float2"]
    assert next(nd for nd in m.graph.node if nd.name == "conv2").input[0] == "xf"
    valid(m)
    x = RNG.integers(-3, 3, (1, 4, 5, 5)).astype(np.float32)
    assert compare(run(m0, x), run(m, x)).cosine > 0.999


def test_graph_output_from_fp32_node_with_fp16_io_keeps_its_name():
    n = helper.make_node
    nodes = [n("Conv", ["x", "w"], ["c"], name="conv"), n("Softmax", ["c"], ["y"], name="sm", axis=1),
             n("Conv", ["y", "w"], ["z"], name="conv2")]
    m0 = make_model(nodes, [("x", [1, 4, 3, 3])], [("y", [1, 4, 3, 3]), ("z", [1, 4, 3, 3])], {"w": w(4, 4, 1, 1)})
    m = to_fp16(m0, io_dtype="fp16")
    valid(m)
    assert_clean_casts(m)
    producer = {o: nd for nd in m.graph.node for o in nd.output}
    assert producer["y"].op_type == "Cast" and producer["z"].op_type == "Conv"
    # the fp16 Conv reads the output's cast rather than a second cast of the Softmax
    assert producer["z"].input[0] == "y"


def test_initializers_converted_offline_with_clamping_counted():
    n = helper.make_node
    big = w(4, 4, 1, 1)
    big[0, 0, 0, 0], big[1, 1, 0, 0], big[2, 2, 0, 0] = 1e6, -7e4, 1e-9
    nodes = [n("Conv", ["x", "wbig"], ["c"], name="conv"),
             n("Add", ["c", "shared"], ["a"], name="add16"),
             n("Softmax", ["a"], ["s"], name="sm", axis=1),
             n("Add", ["s", "shared"], ["y"], name="add32")]
    m0 = make_model(nodes, [("x", [1, 4, 3, 3])], [("y", [1, 4, 3, 3])],
                    {"wbig": big, "shared": np.full((1, 4, 1, 1), 0.1, np.float32)})
    m, info = convert_fp16(m0)
    assert info.clamped_values == 2 and info.underflowed_values == 1
    clamp = {c.constant: c for c in info.clamped}
    assert clamp["wbig"].clamped == 2 and clamp["wbig"].max_abs == pytest.approx(1e6)
    inits = {t.name: t for t in m.graph.initializer}
    wb = numpy_helper.to_array(inits["wbig"])
    assert wb.dtype == np.float16 and wb[0, 0, 0, 0] == FP16_MAX and wb[1, 1, 0, 0] == -FP16_MAX
    # the constant read by an fp16 Add and an fp32 Add: an fp16 twin, the fp32 original kept; no Cast
    assert inits["shared"].data_type == F32 and inits["shared__fp16"].data_type == F16
    assert not [c for c in m.graph.node if c.op_type == "Cast" and c.input[0] == "shared"]
    assert not any(nd.op_type == "Cast" and nd.input[0] in inits for nd in m.graph.node)
    valid(m)


def test_constant_nodes_become_fp16_initializers():
    n = helper.make_node
    nodes = [n("Constant", [], ["k"], name="const", value=numpy_helper.from_array(np.full((1, 2, 1, 1), 0.5,
                                                                                          np.float32))),
             n("Conv", ["x", "w"], ["c"], name="conv"), n("Mul", ["c", "k"], ["y"], name="mul")]
    m0 = make_model(nodes, [("x", [1, 2, 3, 3])], [("y", [1, 2, 3, 3])], {"w": w(2, 2, 1, 1)})
    m = to_fp16(m0)
    assert [nd.op_type for nd in m.graph.node] == ["Cast", "Conv", "Mul", "Cast"]
    assert {t.name: t.data_type for t in m.graph.initializer}["k"] == F16
    valid(m)


def test_fp16_array_rules():
    a = np.array([7e4, -1e9, 65504, 1e-9, -1e-9, 0.0, np.inf, -np.inf, np.nan, 1.0], np.float32)
    a16, clamped, under = fp16_array(a)
    assert clamped == 2 and under == 2
    assert a16[0] == FP16_MAX and a16[1] == -FP16_MAX and a16[2] == FP16_MAX
    assert np.isposinf(a16[6]) and np.isneginf(a16[7]) and np.isnan(a16[8]) and a16[9] == 1


def test_refuses_fp16_input_and_bad_io_dtype(mixed_net):
    with pytest.raises(BadInputError, match="io_dtype"):
        to_fp16(mixed_net, io_dtype="bf16")
    with pytest.raises(BadInputError, match="already holds float16"):
        to_fp16(to_fp16(mixed_net))
    with pytest.raises(BadInputError, match="does not have: no_such_node"):
        to_fp16(mixed_net, keep_fp32_nodes=frozenset({"no_such_node"}))


def test_unnamed_nodes_get_names():
    n = helper.make_node
    m0 = make_model([n("Conv", ["x", "w"], ["c"]), n("Relu", ["c"], ["y"])], [("x", [1, 2, 3, 3])],
                    [("y", [1, 2, 3, 3])], {"w": w(2, 2, 1, 1)})
    m = to_fp16(m0)
    assert all(nd.name for nd in m.graph.node)
    assert not m0.graph.node[0].name


# --------------------------------------------------------------------------------------------- emulation

def _rounding_chain() -> onnx.ModelProto:
    """y = (x + 0.0003) - 1: fp16 storage of the sum rounds 1.0003 to 1, so y is 0 on an fp16 device."""
    n = helper.make_node
    nodes = [n("Add", ["x", "c"], ["a"], name="add"), n("Sub", ["a", "one"], ["y"], name="sub")]
    return make_model(nodes, [("x", [1])], [("y", [1])],
                      {"c": np.array([0.0003], np.float32), "one": np.array([1.0], np.float32)})


def test_twin_keeps_fp16_rounding_that_ort_drops():
    m = to_fp16(_rounding_chain())
    x = np.array([1.0], np.float32)
    assert run(m, x)[0] == pytest.approx(0.0003, rel=1e-2)  # ORT CPU computes the fp16 island in fp32
    assert run(emulation_twin(m), x)[0] == 0.0  # the twin stores the sum in fp16, as the device does


def test_twin_overflows_like_fp16():
    n = helper.make_node
    m0 = make_model([n("Mul", ["x", "k"], ["y"], name="mul")], [("x", [2])], [("y", [2])],
                    {"k": np.array([1000.0], np.float32)})
    y = run(emulation_twin(to_fp16(m0)), np.array([100.0, 1.0], np.float32))
    assert np.isposinf(y[0]) and y[1] == 1000.0


# --------------------------------------------------------------------------------------------- the guard

def _overflowing_net() -> onnx.ModelProto:
    """conv_big's outputs (~1e5) overflow fp16 though its weights (1e4) fit; a Mul scales them back, so the
    net itself is well conditioned. Only conv_big needs fp32."""
    n = helper.make_node
    nodes = [n("Conv", ["x", "w1"], ["c1"], name="conv_small", pads=[1, 1, 1, 1]),
             n("Relu", ["c1"], ["r1"], name="relu"),
             n("Conv", ["r1", "wbig"], ["c2"], name="conv_big", pads=[1, 1, 1, 1]),
             n("Mul", ["c2", "tiny"], ["s"], name="rescale"),
             n("Conv", ["s", "w3"], ["c3"], name="conv_out"),
             n("ReduceMean", ["c3", "ax"], ["y"], name="pool", keepdims=0)]
    inits = {"w1": w(8, 3, 3, 3), "wbig": w(8, 8, 3, 3, scale=1e4), "tiny": np.array([1e-4], np.float32),
             "w3": w(8, 8, 1, 1), "ax": np.array([2, 3], np.int64)}
    return make_model(nodes, [("x", [None, 3, 8, 8])], [("y", [None, 8])], inits)


def test_guard_keeps_an_overflowing_layer_in_fp32_and_says_why():
    net = _overflowing_net()
    feeds = [RNG.standard_normal((2, 3, 8, 8)).astype(np.float32) for _ in range(2)]
    plain = run(emulation_twin(to_fp16(net)), feeds[0])
    assert not np.isfinite(plain).all()  # without the guard the fp16 graph overflows
    m, rep = guard_fp16(net, feeds, FP16_BUDGET)
    assert rep.passed and rep.final_metrics["y"]["cosine"] >= 0.999
    kept = {k["name"]: k["reason"] for k in rep.kept_fp32}
    assert kept["conv_big"].startswith("measured: ") and "NaN/Inf" in kept["conv_big"]
    assert kept["pool"] == "rule: accumulating reduction"
    assert kept["rescale"] == "rule: follows fp32 inputs (no cast)"
    assert "conv_small" not in kept and "conv_out" not in kept
    assert rep.rounds[0].kept_added == {"conv_big": kept["conv_big"]} and rep.rounds[-1].output_failures == []
    assert input_dtypes(m)["conv_big"] == F32 and input_dtypes(m)["conv_small"] == F16
    assert rep.casts_inserted == len(rep.casts) > 0 and rep.to_dict()["feeds"]["batches"] == 2
    assert_clean_casts(m)


def test_guard_keeps_what_feeds_an_fp32_op_that_amplifies_rounding():
    """conv adds 1000 to its small outputs (fp16 steps of 0.5 there, yet only 2e-4 of its scale); the
    subtraction of 1000, kept fp32 on request, turns that into a 10% error. The guard keeps the conv."""
    n = helper.make_node
    nodes = [n("Conv", ["x", "w", "b"], ["c"], name="conv"), n("Sub", ["c", "k"], ["y"], name="sub")]
    net = make_model(nodes, [("x", [None, 4, 4, 4])], [("y", [None, 4, 4, 4])],
                     {"w": w(4, 4, 1, 1), "b": np.full(4, 1000, np.float32), "k": np.array([1000], np.float32)})
    m, rep = guard_fp16(net, [RNG.standard_normal((2, 4, 4, 4)).astype(np.float32)], FP16_BUDGET,
                        keep_fp32_nodes=frozenset({"sub"}))
    kept = {k["name"]: k["reason"] for k in rep.kept_fp32}
    assert kept["sub"] == "requested: keep_fp32_nodes"
    assert kept["conv"].startswith("measured: feeds fp32 Sub sub")
    assert rep.passed and rep.final_metrics["y"]["max_abs_rel_scale"] < 1e-6
    assert input_dtypes(m)["conv"] == F32


@pytest.mark.parametrize("io", ["fp32", "fp16"])
def test_guard_without_offenders_changes_nothing(mixed_net, io):
    m, rep = guard_fp16(mixed_net, [RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)], FP16_BUDGET,
                        io_dtype=io)
    assert rep.passed and len(rep.rounds) == 1 and not any(k["reason"].startswith("measured")
                                                           for k in rep.kept_fp32)
    assert input_dtypes(m) == input_dtypes(to_fp16(mixed_net, io_dtype=io))
    assert rep.io_dtype == io and rep.final_metrics["y"]["cosine"] >= 0.999


def test_guard_raises_when_even_all_fp32_breaks_the_budget():
    net = _overflowing_net()
    feeds = [RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)]
    with pytest.raises(CheckFailedError, match="even with every node kept in fp32"):
        guard_fp16(net, feeds, Budget(max_abs_rel_scale=1e-9, min_cosine=0.999), io_dtype="fp16")


def test_guard_raises_when_rounds_run_out():
    net = _overflowing_net()
    feeds = [RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)]
    with pytest.raises(CheckFailedError, match="not met after 0 guard rounds"):
        guard_fp16(net, feeds, FP16_BUDGET, max_rounds=0)


# ------------------------------------------------------------------------------------------- real models

def _export(name: str, hw: int) -> onnx.ModelProto:
    import torch

    from deployconv.core.target import get_target
    from deployconv.export.onnx_export import export_onnx
    from deployconv.export.simplify import simplify
    from deployconv.pipeline.export import create_seeded
    from deployconv.reparam import reparameterize

    target = get_target("onnx")
    deploy = reparameterize(create_seeded(name, None, (), 0), verify=False)
    raw, info = export_onnx(deploy, torch.randn(2, 3, hw, hw), target, target.opset)
    assert info.exporter == "dynamo", info.fallback_reason
    return simplify(raw, "onnxslim")[0]


def _check_real(proto: onnx.ModelProto, hw: int) -> None:
    feeds = [np.random.default_rng(1).standard_normal((2, 3, hw, hw)).astype(np.float32)]
    m, rep = guard_fp16(proto, feeds, FP16_BUDGET)
    valid(m)
    assert_clean_casts(m)
    assert rep.passed and rep.final_metrics["output"]["cosine"] >= 0.999
    ref = run(proto, feeds[0])
    assert compare(ref, run(m, feeds[0])).cosine >= 0.999  # the graph itself runs on ORT CPU
    assert compare(ref, run(emulation_twin(m), feeds[0])).cosine >= 0.999
    dt = input_dtypes(m)
    ops = {nd.name: nd.op_type for nd in proto.graph.node}
    assert all(dt[k] == F16 for k, op in ops.items() if op in ("Conv", "Gemm") and k in dt and
               not any(k == kk["name"] for kk in rep.kept_fp32))
    assert all(dt[k] == F32 for k, op in ops.items() if op in ("ReduceMean", "ReduceL2", "Pow", "Softmax",
                                                               "InstanceNormalization", "LayerNormalization"))


def test_repvgg_a0_fp16_meets_budget():
    _check_real(_export("repvgg_a0", 64), 64)


@pytest.mark.slow
def test_unireplknet_a_fp16_meets_budget():
    """LayerNorm (decomposed and fused), GRN, Gelu, SE: every rule on a real graph."""
    _check_real(_export("unireplknet_a", 64), 64)
