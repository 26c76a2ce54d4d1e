"""DLA placement rules on small onnx.helper graphs: what runs on DLA, what falls back to the GPU and why, and
what check_dla_limits refuses at export time."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from deployconv.core.errors import BadInputError
from deployconv.core.target import get_target
from deployconv.engine.dla import check_dla_limits, dla_capability

DLA = get_target("jetson-orin-dla-fp16")
DLA_INT8 = get_target("jetson-orin-dla-int8")


def _model(nodes, x_shape, inits=(), out="y", out_shape=None, domains=()):
    """x: float32[x_shape] -> nodes -> `out`. Initializers are (name, array) pairs."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(np.asarray(a, dtype=np.float32 if np.asarray(a).dtype.kind == "f"
                                                        else np.int64), n) for n, a in inits])
    opsets = [helper.make_opsetid("", 17), *[helper.make_opsetid(d, 1) for d in domains]]
    return helper.make_model(graph, opset_imports=opsets, ir_version=10)


def _conv(k, c_in=8, c_out=8, pad=None, stride=1, group=1, x_hw=64):
    w = np.zeros((c_out, c_in // group, k, k), np.float32)
    p = k // 2 if pad is None else pad
    node = helper.make_node("Conv", ["x", "w"], ["y"], name=f"conv{k}", kernel_shape=[k, k], pads=[p] * 4,
                            strides=[stride, stride], group=group)
    return _model([node], [1, c_in, x_hw, x_hw], [("w", w)])


def _rows(model, target=DLA):
    return {r.name: r for r in dla_capability(model, target).layers}


def test_plugin_node_runs_on_the_gpu():
    w = np.zeros((1, 8, 9), np.float32)  # SKA weights: (B, G, 9) per pixel in the real op; only the domain matters
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("DeployconvSKA", ["r", "w"], ["y"], name="ska", domain="deployconv")]
    rows = _rows(_model(nodes, [1, 8, 16, 16], [("w", w)], domains=("deployconv",)))
    assert rows["ska"].device == "GPU" and "plugins never run on DLA" in rows["ska"].reason
    assert rows["ska"].op == "deployconv::DeployconvSKA"
    assert rows["relu"].device == "DLA"


def test_kernel_size_limit_31_fits_33_does_not():
    dw31 = _rows(_conv(31, c_in=16, c_out=16, group=16))["conv31"]  # UniRepLKNet-style large-kernel depthwise
    assert dw31.device == "DLA", dw31.reason
    big = _rows(_conv(33))["conv33"]
    assert big.device == "GPU" and "33x33" in big.reason and "[1, 32]" in big.reason and not big.approximate


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"k": 1, "pad": 1}, "smaller than the kernel"),  # padding must be < kernel
    ({"k": 3, "stride": 9}, "stride 9x9"),
    ({"k": 3, "c_out": 8200, "c_in": 8}, "8200 (> 8192"),  # the general non-batch dim limit
])
def test_convolution_limits(kwargs, words):
    row = next(iter(_rows(_conv(**kwargs)).values()))
    assert row.device == "GPU" and words in row.reason


def test_dynamic_batch_on_a_dla_target_is_an_error():
    dyn = _conv(3)
    dyn.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    with pytest.raises(BadInputError, match="cannot run this model on DLA") as e:
        check_dla_limits(dyn, DLA)
    assert any("dynamic dims" in d for d in e.value.details)
    with pytest.raises(BadInputError) as e:  # a target that claims a dynamic batch, whatever the ONNX says
        check_dla_limits(_conv(3), replace(DLA, dynamic_batch=True))
    assert any("dynamic batch" in d for d in e.value.details)


def test_fp32_dla_target_is_an_error():
    with pytest.raises(BadInputError) as e:
        check_dla_limits(_conv(3), replace(DLA, precision="fp32"))
    assert any("fp16 and int8 only" in d for d in e.value.details)


def test_fallback_is_reported_unless_the_target_forbids_it():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Gelu", ["r"], ["y"], name="gelu")]
    model = _model(nodes, [1, 8, 8, 8])
    report = check_dla_limits(model, DLA)
    assert report is not None and report.counts == {"DLA": 1, "GPU": 1, "total": 2, "approximate": 0}
    assert [r.name for r in report.gpu_layers] == ["gelu"] and "not among DLA's activations" in report.gpu_layers[0].reason
    strict = replace(DLA, tensorrt=replace(DLA.tensorrt, gpu_fallback=False))
    with pytest.raises(BadInputError, match="turns GPU fallback off") as e:
        check_dla_limits(model, strict)
    assert e.value.details == ["gelu (Gelu): Gelu: not among DLA's activations (ReLU, Sigmoid, TanH, Clip, Leaky ReLU) "
                               "[table]"]
    assert check_dla_limits(_model(nodes[:1], [1, 8, 8, 8], out="r"), strict).counts["GPU"] == 0


def test_non_dla_targets_pass_and_fp32_reports_everything_on_the_gpu():
    model = _conv(3)
    assert check_dla_limits(model, get_target("trt-fp16")) is None
    rows = dla_capability(model, get_target("trt-fp32")).layers
    assert [r.device for r in rows] == ["GPU"] and "fp16 and int8 only" in rows[0].reason


def test_reductions_max_only_over_chw():
    nodes = [helper.make_node("ReduceMax", ["x"], ["m"], name="max_hw", axes=[2, 3], keepdims=1),
             helper.make_node("ReduceMean", ["m"], ["a"], name="mean_c", axes=[1], keepdims=1),
             helper.make_node("ReduceMax", ["a"], ["b"], name="max_n", axes=[0], keepdims=1),
             helper.make_node("GlobalAveragePool", ["b"], ["y"], name="gap")]
    rows = _rows(_model(nodes, [1, 8, 8, 8]))
    assert rows["max_hw"].device == "DLA"
    assert rows["mean_c"].device == "GPU" and "MAX only" in rows["mean_c"].reason
    assert rows["max_n"].device == "GPU" and "batch" in rows["max_n"].reason
    assert rows["gap"].device == "GPU" and rows["gap"].approximate and "Reduce AVG" in rows["gap"].reason


def test_pooling_window_and_concat_axis():
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], name="pool3", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("AveragePool", ["p"], ["q"], name="pool9", kernel_shape=[9, 9], pads=[4, 4, 4, 4]),
             helper.make_node("Concat", ["p", "q"], ["c"], name="cat_c", axis=1),
             helper.make_node("Concat", ["c", "c"], ["y"], name="cat_h", axis=2)]
    rows = _rows(_model(nodes, [1, 4, 16, 16]))
    assert rows["pool3"].device == "DLA"
    assert rows["pool9"].device == "GPU" and "window 9x9" in rows["pool9"].reason
    assert rows["cat_c"].device == "DLA"
    assert rows["cat_h"].device == "GPU" and "channels only" in rows["cat_h"].reason


def test_elementwise_broadcast_patterns():
    nodes = [helper.make_node("Mul", ["x", "per_channel"], ["a"], name="scale_c"),
             helper.make_node("Add", ["a", "scalar"], ["b"], name="add_scalar"),
             helper.make_node("Add", ["b", "per_width"], ["y"], name="add_w")]
    inits = [("per_channel", np.ones((4, 1, 1))), ("scalar", np.ones((1,))), ("per_width", np.ones((1, 1, 1, 8)))]
    rows = _rows(_model(nodes, [1, 4, 8, 8], inits))
    assert rows["scale_c"].device == rows["add_scalar"].device == "DLA"
    assert rows["add_w"].device == "GPU" and rows["add_w"].approximate


def test_softmax_resize_and_comparison():
    nodes = [helper.make_node("Softmax", ["x"], ["s"], name="softmax", axis=1),
             helper.make_node("Resize", ["s", "", "scales2"], ["r"], name="up2", mode="nearest",
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
             helper.make_node("Resize", ["r", "", "scales2"], ["c"], name="cubic", mode="cubic"),
             helper.make_node("Greater", ["c", "zero"], ["g"], name="greater"),
             helper.make_node("Cast", ["g"], ["y"], name="cast", to=TensorProto.FLOAT16)]
    inits = [("scales2", np.array([1, 1, 2, 2], np.float32)), ("zero", np.zeros((1,)))]
    model = _model(nodes, [1, 2000, 1, 1], inits, out_shape=None)
    rows = _rows(model)
    assert rows["softmax"].device == "DLA"  # 2000 <= 8192 when H = W = 1
    assert rows["up2"].device == "DLA"
    assert rows["cubic"].device == "GPU" and "cubic" in rows["cubic"].reason
    assert rows["greater"].device == "GPU" and "int8 only" in rows["greater"].reason
    assert _rows(model, DLA_INT8)["greater"].device == "DLA"  # int8, and its output goes straight into a Cast
    wide = _model([helper.make_node("Softmax", ["x"], ["y"], name="softmax", axis=1)], [1, 2000, 7, 7])
    assert _rows(wide)["softmax"].device == "GPU"  # other dims > 1: axis <= 1024


def test_qdq_and_constants_make_no_layers_and_every_gpu_row_says_why():
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
             helper.make_node("Identity", ["d"], ["i"]),
             helper.make_node("Erf", ["i"], ["y"], name="erf")]
    inits = [("s", np.array(0.1, np.float32))]
    model = _model(nodes, [1, 4, 8, 8], inits)
    model.graph.initializer.append(numpy_helper.from_array(np.array(0, np.int8), "z"))
    report = dla_capability(model, DLA_INT8)
    assert report.not_layers == {"DequantizeLinear": 1, "Identity": 1, "QuantizeLinear": 1}
    assert [(r.name, r.device) for r in report.layers] == [("erf", "GPU")]
    assert "Abs only" in report.layers[0].reason
    assert any("Q/DQ" in n for n in report.notes)
    d = report.to_dict()
    assert d["counts"]["GPU"] == 1 and d["layers"][0]["reason"]
