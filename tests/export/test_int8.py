"""int8 Q/DQ: per-channel symmetric weights, per-tensor activations, TensorRT placement rules (checked and
shown to catch violations), calibration methods, exclusions, and the accuracy-budget search — on small
conv/residual nets built with onnx.helper and run in ONNX Runtime CPU."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deployconv.core.errors import BadInputError, CheckFailedError
from deployconv.core.target import Budget
from deployconv.export.precision.calibration import synthetic_calibration
from deployconv.export.precision.int8 import quantize_int8
from deployconv.export.precision.int8_graph import DEQUANTIZE, QUANTIZE, GraphIndex, keep_outputs_float
from deployconv.export.precision.qdq_rules import TENSORRT, check_qdq_placement, plan_qdq
from deployconv.export.precision.sensitivity import INT8_BUDGET, ort_runner, quantize_within_budget
from deployconv.validate.metrics import compare

SHAPE = (3, 16, 16)


def residual_net(seed: int = 0) -> onnx.ModelProto:
    """x -> conv1 -> relu -> conv2 -(+ relu skip)-> relu -> conv3 (1x1) -> GAP -> flatten -> gemm(transB).
    The Add's main input is conv2's output, its skip input the first relu's output (which conv2 reads too).
    The head's Reshape/Add/Mul chain is float-only work the rules must leave alone."""
    rng = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    inits = [
        numpy_helper.from_array(w(8, 3, 3, 3), "conv1.weight"),
        numpy_helper.from_array((rng.standard_normal(8) * 0.1).astype(np.float32), "conv1.bias"),
        numpy_helper.from_array(w(8, 8, 3, 3), "conv2.weight"),
        numpy_helper.from_array((rng.standard_normal(8) * 0.1).astype(np.float32), "conv2.bias"),
        numpy_helper.from_array(w(16, 8, 1, 1), "conv3.weight"),
        numpy_helper.from_array(w(10, 16), "head.weight"),
        numpy_helper.from_array(np.zeros(10, np.float32), "head.bias"),
        numpy_helper.from_array(np.array([0, -1], np.int64), "flat_shape"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "conv2.weight", "conv2.bias"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["s"], name="residual"),
        helper.make_node("Relu", ["s"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "conv3.weight"], ["c3"], name="conv3"),
        helper.make_node("GlobalAveragePool", ["c3"], ["gap"], name="gap"),
        helper.make_node("Reshape", ["gap", "flat_shape"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "head.weight", "head.bias"], ["output"], name="head", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "residual_net",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", *SHAPE])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
    onnx.checker.check_model(model)
    return model


def matmul_net() -> onnx.ModelProto:
    """Two activations multiplied (attention-like) plus a constant-B MatMul (axis = last)."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.standard_normal((16, 12)).astype(np.float32) * 0.25, "proj.weight")]
    nodes = [
        helper.make_node("Transpose", ["input"], ["xt"], name="t", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["input", "xt"], ["attn"], name="qk"),
        helper.make_node("MatMul", ["attn", "input"], ["ctx"], name="av"),
        helper.make_node("MatMul", ["ctx", "proj.weight"], ["output"], name="proj"),
    ]
    graph = helper.make_graph(
        nodes, "matmul_net", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 8, 16])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 8, 12])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)


@pytest.fixture(scope="module")
def net() -> onnx.ModelProto:
    return residual_net()


@pytest.fixture(scope="module")
def calib():
    return synthetic_calibration(SHAPE, samples=16, seed=0)


@pytest.fixture(scope="module")
def trt_int8(net, calib):
    return quantize_int8(net, calib)


@pytest.fixture(scope="module")
def ort_int8(net, calib):
    return quantize_int8(net, calib, activation="uint8")


def _run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort_runner(threads=1)(proto, x)


def _x(n: int = 8, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *SHAPE), dtype=np.float32)


def _reads_dq(proto: onnx.ModelProto, node_name: str, i: int) -> bool:
    idx = GraphIndex.of(proto)
    p = idx.producer.get(idx.nodes[node_name].input[i])
    return p is not None and p.op_type == DEQUANTIZE


# ------------------------------------------------------------------------------------------ weights


@pytest.mark.parametrize("profile", ["trt_int8", "ort_int8"])
def test_weights_are_per_channel_symmetric_int8(profile, request):
    q, rep = request.getfixturevalue(profile)
    idx = GraphIndex.of(q)
    want = {"conv1": (0, 8), "conv2": (0, 8), "conv3": (0, 16), "head": (0, 10)}  # Gemm transB=1: axis 0
    for name, (axis, channels) in want.items():
        dq = idx.producer[idx.nodes[name].input[1]]
        assert dq.op_type == DEQUANTIZE
        data = numpy_helper.to_array(idx.initializers[dq.input[0]])
        scale = numpy_helper.to_array(idx.initializers[dq.input[1]])
        zp = numpy_helper.to_array(idx.initializers[dq.input[2]])
        assert data.dtype == np.int8 and data.min() >= -127
        assert scale.dtype == np.float32 and scale.shape == (channels,) and np.all(scale > 0)
        assert zp.dtype == np.int8 and not zp.any()
        assert next(a.i for a in dq.attribute if a.name == "axis") == axis
        # symmetric per channel: each channel's largest |w| maps to 127
        np.testing.assert_array_equal(np.abs(data).reshape(channels, -1).max(1), 127)
    assert rep.weights == "int8 symmetric per output channel"


def test_matmul_weight_axis_is_last_and_activations_both_quantized(calib):
    net = matmul_net()
    cal = synthetic_calibration((8, 16), samples=8, seed=0)
    q, rep = quantize_int8(net, cal)
    assert rep.placement_violations == []
    idx = GraphIndex.of(q)
    dq = idx.producer[idx.nodes["proj"].input[1]]
    assert next(a.i for a in dq.attribute if a.name == "axis") == 1
    assert numpy_helper.to_array(idx.initializers[dq.input[1]]).shape == (12,)
    assert _reads_dq(q, "qk", 0) and _reads_dq(q, "qk", 1) and _reads_dq(q, "av", 1)
    x = np.random.default_rng(3).standard_normal((4, 8, 16), dtype=np.float32)
    assert compare(_run(net, x), _run(q, x)).cosine > 0.99


# ------------------------------------------------------------------------------------------ activations


def test_tensorrt_activations_are_per_tensor_symmetric_int8(trt_int8):
    q, rep = trt_int8
    idx = GraphIndex.of(q)
    qs = [n for n in q.graph.node if n.op_type == QUANTIZE]
    assert qs
    for n in qs:
        scale = numpy_helper.to_array(idx.initializers[n.input[1]])
        zp = numpy_helper.to_array(idx.initializers[n.input[2]])
        assert scale.size == 1 and scale.dtype == np.float32 and zp.dtype == np.int8 and zp.item() == 0
    assert rep.activation == "int8-symmetric" and rep.profile == "tensorrt"


def test_uint8_profile_is_asymmetric_uint8_and_folds_relu(ort_int8):
    q, rep = ort_int8
    zps = [numpy_helper.to_array(GraphIndex.of(q).initializers[n.input[2]])
           for n in q.graph.node if n.op_type == QUANTIZE]
    assert zps and all(z.dtype == np.uint8 for z in zps)
    assert "relu1" in rep.folded_activations
    assert not any(n.op_type == "Relu" and n.name == "relu1" for n in q.graph.node)
    assert check_qdq_placement(q, "ort-cpu") == [] and rep.placement_violations == []
    assert check_qdq_placement(q, "tensorrt")  # not a TensorRT graph: uint8 zero points, Q on conv outputs


# ------------------------------------------------------------------------------------------ placement


def test_tensorrt_placement_rules_hold(trt_int8, net):
    q, rep = trt_int8
    assert rep.placement_violations == [] and check_qdq_placement(q) == []
    idx = GraphIndex.of(q)
    # R1: every conv/gemm reads its activation and weight through DQ; bias stays float
    for name in ("conv1", "conv2", "conv3", "head"):
        assert _reads_dq(q, name, 0) and _reads_dq(q, name, 1), name
    assert idx.nodes["conv1"].input[2] == "conv1.bias"
    # R2: no Q right on a weighted op's output, Relu reads the conv output directly
    for name in ("conv1", "conv2", "conv3", "head"):
        assert all(r.op_type != QUANTIZE for r, _ in idx.readers(idx.nodes[name].output[0])), name
    assert idx.nodes["relu1"].input[0] == "c1"
    # R3: residual Add: main input (conv2) float, skip input (relu1) through Q/DQ
    add = idx.nodes["residual"]
    assert add.input[0] == "c2" and _reads_dq(q, "residual", 1)
    assert rep.residual_adds == {"residual": 1}
    # R4: nothing quantized in front of GAP / Reshape / relu2
    for name in ("gap", "flatten", "relu2"):
        assert not _reads_dq(q, name, 0), name
    # outputs stay float
    assert idx.producer["output"].op_type == "Gemm"


def test_plan_skips_residual_qdq_when_main_conv_excluded(net):
    plan = plan_qdq(net, TENSORRT, exclude=["conv2"])
    assert "conv2" not in plan.weighted and plan.residual_adds == {}


def test_plan_leaves_add_of_non_weighted_inputs_float():
    g = residual_net()
    for n in g.graph.node:  # make the Add read relu1 twice: no weighted producer, nothing to fuse into
        if n.name == "residual":
            n.input[0] = "r1"
    assert plan_qdq(g, TENSORRT).residual_adds == {}


def _tamper(q: onnx.ModelProto, fn) -> list[str]:
    bad = copy.deepcopy(q)
    fn(bad, GraphIndex.of(bad))
    return check_qdq_placement(bad)


def test_check_catches_qdq_on_residual_main_input(trt_int8):
    q, _ = trt_int8

    def put_qdq_on_main(m, idx):
        skip_dq = idx.producer[idx.nodes["residual"].input[1]]
        skip_q = idx.producer[skip_dq.input[0]]
        m.graph.node.extend([
            helper.make_node(QUANTIZE, ["c2", skip_q.input[1], skip_q.input[2]], ["c2_q"], name="bad_q"),
            helper.make_node(DEQUANTIZE, ["c2_q", skip_q.input[1], skip_q.input[2]], ["c2_dq"], name="bad_dq")])
        idx.nodes["residual"].input[0] = "c2_dq"

    assert any("R3" in v for v in _tamper(q, put_qdq_on_main))


def test_check_catches_qdq_in_front_of_float_op(trt_int8):
    q, _ = trt_int8

    def qdq_before_gap(m, idx):
        skip_dq = idx.producer[idx.nodes["residual"].input[1]]
        skip_q = idx.producer[skip_dq.input[0]]
        m.graph.node.extend([
            helper.make_node(QUANTIZE, ["c3", skip_q.input[1], skip_q.input[2]], ["c3_q"], name="bad_q"),
            helper.make_node(DEQUANTIZE, ["c3_q", skip_q.input[1], skip_q.input[2]], ["c3_dq"], name="bad_dq")])
        idx.nodes["gap"].input[0] = "c3_dq"

    assert any("GlobalAveragePool" in v and "R2/R4" in v for v in _tamper(q, qdq_before_gap))


def test_check_catches_weight_zero_point_axis_and_half_quantized(trt_int8):
    q, _ = trt_int8

    def nonzero_zp(m, idx):
        dq = idx.producer[idx.nodes["conv1"].input[1]]
        t = idx.initializers[dq.input[2]]
        t.CopyFrom(numpy_helper.from_array(np.ones(8, np.int8), t.name))

    def wrong_axis(m, idx):
        dq = idx.producer[idx.nodes["conv2"].input[1]]
        for a in dq.attribute:
            if a.name == "axis":
                a.i = 1

    def float_weight(m, idx):
        m.graph.initializer.append(numpy_helper.from_array(np.zeros((16, 8, 1, 1), np.float32), "w_float"))
        idx.nodes["conv3"].input[1] = "w_float"

    def fp16_scale(m, idx):
        q_node = next(n for n in m.graph.node if n.op_type == QUANTIZE)
        t = idx.initializers[q_node.input[1]]
        t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))

    assert any("zero point" in v for v in _tamper(q, nonzero_zp))
    assert any("output-channel axis 0" in v for v in _tamper(q, wrong_axis))
    assert any("R1" in v and "conv3" in v for v in _tamper(q, float_weight))
    assert any("float32" in v for v in _tamper(q, fp16_scale))


# ------------------------------------------------------------------------------------------ accuracy


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_calibration_methods_run_and_stay_close(net, calib, method, capsys):
    q, rep = quantize_int8(net, calib, method=method)
    assert capsys.readouterr().out == ""  # ORT's calibrator progress prints stay out of --json output
    assert rep.method.startswith(method) and rep.placement_violations == []
    x = _x()
    m = compare(_run(net, x), _run(q, x))
    assert m.cosine > 0.98, (method, m)


@pytest.mark.parametrize("profile", ["trt_int8", "ort_int8"])
def test_quantized_graph_runs_with_sane_cosine(profile, request, net):
    q, rep = request.getfixturevalue(profile)
    x = _x()
    ref, out = _run(net, x), _run(q, x)
    m = compare(ref, out)
    assert m.cosine > 0.99 and not m.nonfinite, m
    assert not np.array_equal(ref, out)  # it really is quantized
    assert rep.qdq_nodes[QUANTIZE] > 0 and rep.warnings and "SYNTHETIC" in rep.warnings[0]


def test_per_tensor_weights_when_asked(net, calib):
    q, rep = quantize_int8(net, calib, per_channel=False)
    idx = GraphIndex.of(q)
    dq = idx.producer[idx.nodes["conv2"].input[1]]
    assert numpy_helper.to_array(idx.initializers[dq.input[1]]).size == 1
    assert check_qdq_placement(q, per_channel=False) == [] and rep.weights.endswith("per tensor")


# ------------------------------------------------------------------------------------------ exclusions


@pytest.mark.parametrize("activation", ["int8-symmetric", "uint8"])
def test_exclusion_keeps_node_float(net, calib, activation):
    q, rep = quantize_int8(net, calib, exclude_nodes=["conv1", "head.*"], activation=activation)
    idx = GraphIndex.of(q)
    assert set(rep.excluded_nodes) == {"conv1", "head"}
    assert set(rep.float_weighted_nodes) == {"conv1", "head"}
    for name, weight in (("conv1", "conv1.weight"), ("head", "head.weight")):
        node = idx.nodes[name]
        assert node.input[1] == weight and idx.initializers[weight].data_type == TensorProto.FLOAT
        assert not _reads_dq(q, name, 0)
    assert _reads_dq(q, "conv2", 0) and check_qdq_placement(q, activation) == []
    x = _x()
    assert compare(_run(net, x), _run(q, x)).cosine > 0.99


def test_exclusion_that_matches_nothing_is_bad_input(net, calib):
    with pytest.raises(BadInputError, match="matches no node"):
        quantize_int8(net, calib, exclude_nodes=["no_such_layer*"])


def test_unknown_method_or_activation_is_bad_input(net, calib):
    with pytest.raises(BadInputError):
        quantize_int8(net, calib, method="kl")
    with pytest.raises(BadInputError):
        quantize_int8(net, calib, activation="int4")


def test_input_proto_is_not_modified(calib):
    net = residual_net()
    before = net.SerializeToString()
    quantize_int8(net, calib)
    assert net.SerializeToString() == before


def test_keep_outputs_float_removes_trailing_qdq():
    g = residual_net()
    s = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    z = numpy_helper.from_array(np.array(0, np.int8), "z")
    g.graph.initializer.extend([s, z])
    head = next(n for n in g.graph.node if n.name == "head")
    head.output[0] = "logits"
    g.graph.node.extend([helper.make_node(QUANTIZE, ["logits", "s", "z"], ["lq"]),
                         helper.make_node(DEQUANTIZE, ["lq", "s", "z"], ["output"])])
    out = keep_outputs_float(g)
    assert GraphIndex.of(out).producer["output"].op_type == "Gemm"
    assert not any(n.op_type in (QUANTIZE, DEQUANTIZE) for n in out.graph.node)


# ------------------------------------------------------------------------------------------ sensitivity


def test_budget_met_without_exclusions_when_loose(net, calib):
    _q, rep, sens = quantize_within_budget(net, calib, Budget(1.0, 0.9), eval_samples=8, rank_samples=4)
    assert sens.passed_without_exclusions and sens.chosen == [] and rep.excluded_nodes == []


@pytest.mark.parametrize("activation", ["int8-symmetric", "uint8"])
def test_sensitivity_keeps_most_sensitive_layers_float_until_budget_holds(net, calib, activation):
    x = _x(8, seed=11)
    ref = _run(net, x)
    q_all, _ = quantize_int8(net, calib, activation=activation)
    err_all = 1.0 - compare(ref, _run(q_all, x)).cosine
    assert err_all > 1e-5
    budget = Budget(max_abs_rel_scale=1.0, min_cosine=1.0 - err_all / 4)  # needs some layers in float
    q, rep, sens = quantize_within_budget(net, calib, budget, eval_data=x, rank_samples=8, activation=activation)
    assert not sens.passed_without_exclusions and sens.chosen
    chosen = [c["node"] for c in sens.chosen]
    assert set(chosen) <= set(rep.excluded_nodes)
    assert sens.final["cosine"] >= budget.min_cosine
    assert compare(ref, _run(q, x)).cosine >= budget.min_cosine  # the returned graph, measured afresh
    assert sorted(e.node for e in sens.ranked) == ["conv1", "conv2", "conv3", "head", "residual"]
    assert sens.ranked[0].error_alone >= sens.ranked[-1].error_alone > -1e-9
    roles = {e.node: e.role for e in sens.ranked}
    assert roles["conv1"].startswith("first layer") and roles["head"].startswith("last layer")
    assert roles["residual"] == "residual Add" and roles["conv2"] is None
    assert all(c["error_alone"] > 0 and c["op_type"] for c in sens.chosen)
    assert check_qdq_placement(q, activation) == []


def test_impossible_budget_raises_check_failed(net, calib):
    with pytest.raises(CheckFailedError, match="every quantizable layer in float") as e:
        quantize_within_budget(net, calib, Budget(max_abs_rel_scale=1.0, min_cosine=1.5), eval_samples=4,
                               rank_samples=2)
    assert e.value.exit_code == 1


def test_default_budget_is_the_issue_target():
    assert INT8_BUDGET.min_cosine == 0.99


def test_int8_modules_import_without_torch():
    """int8 runs on the torch-free edge (ONNX + ONNX Runtime only): a device can quantize an exported graph."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "import deployconv.export.precision.int8, deployconv.export.precision.sensitivity\n"
            "import deployconv.export.precision.calibration, deployconv.export.precision.qdq_rules\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_restore_float_inputs_keeps_relu_semantics_in_the_ort_profile(ort_int8, net):
    """ORT folds relu1 into conv1's output Q (the conv now makes `r1`); restoring conv2's float input must
    not read that un-rectified tensor: it keeps its quantized (clamped) input instead."""
    from deployconv.export.precision.int8_graph import restore_float_inputs

    q, _ = ort_int8
    assert GraphIndex.of(q).producer["r1"].op_type == "Conv"
    edited = restore_float_inputs(q, net, ["conv2"])
    conv2 = GraphIndex.of(edited).nodes["conv2"]
    assert conv2.input[0] != "r1" and conv2.input[1] == "conv2.weight"
    x = _x()
    assert compare(_run(net, x), _run(edited, x)).cosine > 0.99


def test_budget_that_needs_every_layer_float_raises_no_int8_left(net, calib):
    with pytest.raises(CheckFailedError, match="only with every quantizable layer in float") as e:
        quantize_within_budget(net, calib, Budget(max_abs_rel_scale=1e-12, min_cosine=0.0), eval_samples=4,
                               rank_samples=2)
    assert e.value.exit_code == 1 and "most sensitive" in e.value.render()
