"""The emulation twin models fp16 arithmetic inside reductions: an fp16 GlobalAveragePool / ReduceMean /
Softmax / LayerNormalization gives exactly what pairwise fp16 arithmetic gives (numpy float16, brute force),
and differs from the same op kept fp32 between fp16 neighbours."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from deployconv.export.precision.fp16_emulate import emulation_report

F16 = np.float16
FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16


def _mixed(op: onnx.NodeProto, shape: list[int], out_shape: list[int], fp16_op: bool,
           inits: list[onnx.TensorProto] = ()) -> onnx.ModelProto:
    """x -> Cast fp16 -> Relu (fp16) -> OP -> y (fp32); OP fp16 (reads the fp16 tensor) or kept fp32."""
    nodes = [helper.make_node("Cast", ["x"], ["h"], name="c_in", to=FLOAT16),
             helper.make_node("Relu", ["h"], ["r"], name="relu")]
    if fp16_op:
        op.input[0], op.output[0] = "r", "o16"
        nodes += [op, helper.make_node("Cast", ["o16"], ["y"], name="c_out", to=FLOAT)]
        inits = [numpy_helper.from_array(numpy_helper.to_array(t).astype(F16), t.name)
                 if t.data_type == FLOAT else t for t in inits]
    else:
        op.input[0], op.output[0] = "r32", "y"
        nodes += [helper.make_node("Cast", ["r"], ["r32"], name="c_up", to=FLOAT), op]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", FLOAT, shape)],
                          [helper.make_tensor_value_info("y", FLOAT, out_shape)], initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])


def _run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    twin, report = emulation_report(proto)
    onnx.checker.check_model(twin)
    sess = ort.InferenceSession(twin.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0], report


def pairwise16(v: np.ndarray) -> np.ndarray:
    """fp16 pairwise sum over the last axis: zero-pad to 2^k, add neighbours, round, repeat."""
    v = v.astype(F16)
    width = 1 << (v.shape[-1] - 1).bit_length()
    v = np.concatenate([v, np.zeros((*v.shape[:-1], width - v.shape[-1]), F16)], axis=-1)
    while v.shape[-1] > 1:
        v = (v[..., 0::2] + v[..., 1::2]).astype(F16)
    return v[..., 0]


@pytest.fixture
def x() -> np.ndarray:
    return (np.random.default_rng(0).random((2, 3, 20, 20), dtype=np.float32) + 0.3).astype(np.float32)


def test_fp16_global_average_pool_accumulates_in_fp16(x: np.ndarray) -> None:
    gap = helper.make_node("GlobalAveragePool", ["in"], ["out"], name="gap")
    y16, rep = _run(_mixed(gap, [2, 3, 20, 20], [2, 3, 1, 1], True), x)
    assert rep.accumulation_modelled == ["gap"] and rep.not_modelled == []
    r = np.maximum(x.astype(F16), 0)
    expected = (pairwise16(r.reshape(2, 3, 400)).astype(np.float32) / np.float32(400)).astype(F16)
    np.testing.assert_array_equal(y16.reshape(2, 3), expected.astype(np.float32))

    gap32 = helper.make_node("GlobalAveragePool", ["in"], ["out"], name="gap")
    y32, rep32 = _run(_mixed(gap32, [2, 3, 20, 20], [2, 3, 1, 1], False), x)
    assert rep32.accumulation_modelled == []
    exact = r.astype(np.float64).reshape(2, 3, 400).mean(-1)
    np.testing.assert_allclose(y32.reshape(2, 3), exact, rtol=1e-6)
    # the point: an fp16 reduction and one kept fp32 between fp16 neighbours now differ, by fp16's sum error
    err16, err32 = np.abs(y16.reshape(2, 3) - exact).max(), np.abs(y32.reshape(2, 3) - exact).max()
    assert err16 > 20 * err32 and err16 > 1e-4


def test_fp16_reduce_mean_with_axes_input(x: np.ndarray) -> None:
    axes = numpy_helper.from_array(np.array([1, 3], np.int64), "axes")
    rm = helper.make_node("ReduceMean", ["in", "axes"], ["out"], name="rm", keepdims=0)
    y, rep = _run(_mixed(rm, [2, 3, 20, 20], [2, 20], True, [axes]), x)
    assert rep.accumulation_modelled == ["rm"]
    r = np.maximum(x.astype(F16), 0).transpose(0, 2, 1, 3).reshape(2, 20, 60)
    expected = (pairwise16(r).astype(np.float32) / np.float32(60)).astype(F16)
    np.testing.assert_array_equal(y, expected.astype(np.float32))


def test_fp16_softmax(x: np.ndarray) -> None:
    sm = helper.make_node("Softmax", ["in"], ["out"], name="sm", axis=-1)
    y, rep = _run(_mixed(sm, [2, 3, 20, 20], [2, 3, 20, 20], True), x * 8)
    assert rep.accumulation_modelled == ["sm"]
    r = np.maximum((x * 8).astype(F16), 0)
    e = np.exp((r - r.max(-1, keepdims=True)).astype(F16).astype(np.float32)).astype(F16)
    expected = (e.astype(np.float32) / pairwise16(e)[..., None].astype(np.float32)).astype(F16)
    np.testing.assert_array_equal(y, expected.astype(np.float32))


def test_fp16_layer_norm(x: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    scale = numpy_helper.from_array(rng.random(20, dtype=np.float32) + 0.5, "scale")
    bias = numpy_helper.from_array(rng.random(20, dtype=np.float32) - 0.5, "bias")
    ln = helper.make_node("LayerNormalization", ["in", "scale", "bias"], ["out"], name="ln", axis=-1,
                          epsilon=1e-5)
    y, rep = _run(_mixed(ln, [2, 3, 20, 20], [2, 3, 20, 20], True, [scale, bias]), x)
    assert rep.accumulation_modelled == ["ln"]

    def r16(a: np.ndarray) -> np.ndarray:
        return a.astype(np.float32).astype(F16)

    r = np.maximum(x.astype(F16), 0)
    n = np.float32(20)
    mean = r16(pairwise16(r)[..., None].astype(np.float32) / n)
    d = r16(r.astype(np.float32) - mean.astype(np.float32))
    var = r16(pairwise16(r16(d.astype(np.float32) ** 2))[..., None].astype(np.float32) / n)
    std = r16(np.sqrt(r16(var.astype(np.float32) + np.float32(1e-5)).astype(np.float32)))
    norm = r16(d.astype(np.float32) / std.astype(np.float32))
    s16 = numpy_helper.to_array(scale).astype(F16).astype(np.float32)
    b16 = numpy_helper.to_array(bias).astype(F16).astype(np.float32)
    expected = r16(r16(norm.astype(np.float32) * s16).astype(np.float32) + b16)
    np.testing.assert_array_equal(y, expected.astype(np.float32))


def test_dynamic_extent_is_reported_not_modelled() -> None:
    gap = helper.make_node("GlobalAveragePool", ["in"], ["out"], name="gap")
    proto = _mixed(gap, ["n", 3, "h", "w"], ["n", 3, 1, 1], True)
    _, rep = emulation_report(proto)
    assert rep.accumulation_modelled == []
    assert rep.not_modelled == [{"node": "gap", "op_type": "GlobalAveragePool", "why": "reduced extent not static"}]


def _conv_gap(hw: int) -> onnx.ModelProto:
    """x -> Conv 1x1 (fp16) -> GlobalAveragePool -> y: the GAP sums hw*hw values."""
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("GlobalAveragePool", ["c"], ["y"], name="gap")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", FLOAT, [2, 3, hw, hw])],
                          [helper.make_tensor_value_info("y", FLOAT, [2, 4, 1, 1])], initializer=[w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])


def test_guard_keep_list_moves_when_the_reduction_precision_matters() -> None:
    """With reductions left to measurement, the guard keeps a GlobalAveragePool in fp32 exactly when its fp16
    accumulation breaks the budget: a 64x64 map of values ~19.5 (the conv sums three inputs of 6..7) sums to
    ~80,000 per channel on the way to a mean of 19.5, past fp16's 65,504 (inf); a map of values ~0.45 stays
    fp16."""
    from deployconv.core.target import Budget
    from deployconv.export.precision.fp16_guard import guard_fp16
    from deployconv.export.precision.fp16_rules import REDUCTION

    budget = Budget(max_abs_rel_scale=1e-3, min_cosine=0.999)
    rng = np.random.default_rng(0)
    big = (6.0 + rng.random((2, 3, 64, 64), dtype=np.float32)).astype(np.float32)
    small = (rng.random((2, 3, 64, 64), dtype=np.float32) * 0.3).astype(np.float32)
    _, rep_big = guard_fp16(_conv_gap(64), [big], budget, measure_ops=REDUCTION)
    _, rep_small = guard_fp16(_conv_gap(64), [small], budget, measure_ops=REDUCTION)
    kept_big = {k["name"]: k["reason"] for k in rep_big.kept_fp32}
    assert "gap" in kept_big and kept_big["gap"].startswith("measured")
    assert "gap" not in {k["name"] for k in rep_small.kept_fp32}
    # without measure_ops the rules keep it by type, whatever the data
    _, rep_rules = guard_fp16(_conv_gap(64), [small], budget)
    assert {k["name"]: k["reason"] for k in rep_rules.kept_fp32}["gap"] == "rule: accumulating reduction"
