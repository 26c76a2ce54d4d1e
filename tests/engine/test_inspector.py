"""The engine inspector report: parsed in both schemas, and compared with what the export asked.

Fixtures are small engines written in the schema NVIDIA documents, not output of a real build here (no TensorRT):
- TensorRT 10.x: layer objects with Name / LayerType / Inputs / Outputs ("Format/Datatype") / TacticValue and a
  "Bindings" list of names: the developer guide's "Engine Inspector" section
  (https://docs.nvidia.com/deeplearning/tensorrt/10.16.1/inference-library/engine-tools.html: the JSON needs
  ProfilingVerbosity.DETAILED) and NVIDIA's own inspector output shipped with trt-engine-explorer
  (NVIDIA/TensorRT v10.3.0, tools/experimental/trt-engine-explorer/examples/pytorch/resnet/A100/fp16/
  resnet.onnx.engine.graph.json: e.g. "Conv_0 + Relu_1", CaskConvolution, "Channel major FP16 format where
  channel % 8 == 0", "Row major linear FP32").
- TensorRT 11.x: "Bindings" replaced by "I/O Tensors" objects (Name, IOMode, DataType, Dimensions, Location,
  IsShapeInferenceIO, ProfileInfo): "Migrating IEngineInspector Usage from TensorRT 10.x to 11.x"
  (https://docs.nvidia.com/deeplearning/tensorrt/11.3.0/api/migration/tensorrt-10x-to-11x-IEngineInspector.html).
  The layer objects are kept as in 10.x: that page names only the Bindings change.
"""

from __future__ import annotations

import json

import pytest

from deployconv.core.errors import BadInputError
from deployconv.engine.inspector import (
    Expected,
    compare,
    datatype_of,
    expected_from_manifest,
    int8_nodes_of,
    parse_engine_information,
)


def _t(name, dims, fmt):
    return {"Name": name, "Location": "Device", "Dimensions": dims, "Format/Datatype": fmt}


LAYERS = [
    {"Name": "Reformatting CopyNode for Input Tensor 0 to Conv_0 + Relu_1", "LayerType": "Reformat",
     "Inputs": [_t("input", [8, 3, 32, 32], "Row major linear FP32")],
     "Outputs": [_t("Reformatted Input Tensor 0 to Conv_0 + Relu_1", [8, 3, 32, 32],
                    "Channel major FP16 format where channel % 4 == 0")],
     "ParameterType": "Reformat", "Origin": "REFORMAT", "TacticValue": "0x0000000000000000"},
    {"Name": "Conv_0 + Relu_1", "LayerType": "CaskConvolution",
     "Inputs": [_t("Reformatted Input Tensor 0 to Conv_0 + Relu_1", [8, 3, 32, 32],
                   "Channel major FP16 format where channel % 4 == 0")],
     "Outputs": [_t("t1", [8, 16, 32, 32], "Channel major FP16 format where channel % 8 == 0")],
     "ParameterType": "Convolution", "Kernel": [3, 3], "TacticValue": "0xe2222883a6602489"},
    {"Name": "Conv_2", "LayerType": "CaskConvolution",  # fp32: a silent fallback on an fp16 target
     "Inputs": [_t("t1", [8, 16, 32, 32], "Row major linear FP32")],
     "Outputs": [_t("t2", [8, 16, 32, 32], "Row major linear FP32")],
     "ParameterType": "Convolution", "TacticValue": "0x00000000000003e8"},
    {"Name": "PWN(Relu_3, Add_4)", "LayerType": "PointWiseV2",
     "Inputs": [_t("t2", [8, 16, 32, 32], "Row major linear FP32")],
     "Outputs": [_t("t4", [8, 16, 32, 32], "Row major linear FP32")], "TacticValue": "0x1"},
    {"Name": "GlobalAveragePool_5", "LayerType": "CudaPooling",
     "Inputs": [_t("t4", [8, 16, 32, 32], "Channel major FP16 format where channel % 8 == 0")],
     "Outputs": [_t("output", [8, 16, 1, 1], "Channel major FP16 format where channel % 8 == 0")],
     "TacticValue": "0xfffffffffffffffe"},
]
TRT10 = json.dumps({"Layers": LAYERS, "Bindings": ["input", "output"]})
TRT11 = json.dumps({"Layers": LAYERS, "I/O Tensors": [
    {"Name": "input", "IOMode": "Input", "DataType": "Float", "Dimensions": [8, 3, 32, 32], "Location": "Device",
     "IsShapeInferenceIO": False, "ProfileInfo": [{"MinShape": [1, 3, 32, 32], "OptShape": [8, 3, 32, 32],
                                                   "MaxShape": [8, 3, 32, 32],
                                                   "Format": "Row major linear FP32 format (kLINEAR)"}]},
    {"Name": "output", "IOMode": "Output", "DataType": "Half", "Dimensions": [8, 16, 1, 1], "Location": "Device",
     "IsShapeInferenceIO": False}]})
ONNX_NODES = ["Conv_0", "Relu_1", "Conv_2", "Relu_3", "Add_4", "GlobalAveragePool_5"]


@pytest.mark.parametrize("text, schema", [(TRT10, "bindings"), (TRT11, "io-tensors")])
def test_both_schemas_parse_to_the_same_layers(text, schema):
    r = parse_engine_information(text)
    assert r.schema == schema and len(r.layers) == 5
    conv = r.layers[1]
    assert conv.layer_type == "CaskConvolution" and conv.precision == "fp16" and conv.outputs[0].dims == (8, 16, 32, 32)
    assert conv.node_names() == ("Conv_0", "Relu_1") and r.layers[3].node_names() == ("Relu_3", "Add_4")
    assert [t.name for t in r.io] == ["input", "output"]
    if schema == "io-tensors":
        assert [(t.mode, t.dtype, t.dims) for t in r.io] == [("Input", "fp32", (8, 3, 32, 32)),
                                                             ("Output", "fp16", (8, 16, 1, 1))]
    assert parse_engine_information(text) == parse_engine_information(json.loads(text))


def test_layer_names_only_and_bad_input():
    r = parse_engine_information({"Layers": ["Conv_0 + Relu_1", "Conv_2"], "Bindings": ["x", "y"]})
    assert [la.name for la in r.layers] == ["Conv_0 + Relu_1", "Conv_2"] and r.layers[0].precision is None
    with pytest.raises(BadInputError, match="not an engine inspector report"):
        parse_engine_information("{\"Bindings\": []}")
    with pytest.raises(BadInputError):
        parse_engine_information("not json")


@pytest.mark.parametrize("text, dtype", [("Row major linear FP32", "fp32"),
                                         ("Channel major FP16 format where channel % 8 == 0", "fp16"),
                                         ("Thirty-two wide channel vectorized row major Int8 format", "int8"),
                                         ("Float", "fp32"), ("Half", "fp16"), ("N/A", None), (None, None)])
def test_datatype_of(text, dtype):
    assert datatype_of(text) == dtype


@pytest.mark.parametrize("text", [TRT10, TRT11])
def test_silent_fp32_fallback_and_kept_node_are_both_reported(text):
    r = parse_engine_information(text)
    # fp16 target; Relu_3 was on the fp16 guard's keep-list (fp32: matches), GlobalAveragePool_5 was too (fp16: not)
    asked = Expected("fp16", {"Relu_3": "fp32", "GlobalAveragePool_5": "fp32"})
    diffs = {(d.node, d.kind, d.expected, d.actual) for d in compare(r, asked, ONNX_NODES)}
    assert diffs == {("Conv_2", "precision", "fp16", "fp32"), ("Add_4", "precision", "fp16", "fp32"),
                     ("GlobalAveragePool_5", "precision", "fp32", "fp16")}


def test_dla_fallback_is_reported():
    r = parse_engine_information(TRT10)
    asked = Expected(None, {}, {"Conv_2": "DLA", "Conv_0": "GPU"})
    (d,) = compare(r, asked, ONNX_NODES)
    assert (d.node, d.kind, d.actual, d.layer) == ("Conv_2", "placement", "GPU", "Conv_2")
    assert "asked DLA, ran on GPU" in d.describe()


def test_dla_typed_layers_count_as_dla_and_foreign_nodes_are_not_guessed():
    layers = [{"Name": "{ForeignNode[Conv_0...Conv_2]}", "LayerType": "DLA", "Inputs": [], "Outputs": []},
              {"Name": "{ForeignNode[Relu_3...Add_4]}", "LayerType": "Myelin", "Inputs": [], "Outputs": []}]
    r = parse_engine_information({"Layers": layers, "Bindings": []})
    assert r.layers[0].on_dla and r.layers[0].node_names() == ("Conv_0", "Conv_2")
    assert compare(r, Expected(None, {}, {"Conv_0": "DLA", "Relu_3": "DLA"}), ONNX_NODES) == []


def test_int8_expectations():
    int8_conv = {"Name": "Conv_0", "LayerType": "CaskConvolution", "Inputs": [],
                 "Outputs": [_t("t", [1, 32, 8, 8], "Thirty-two wide channel vectorized row major Int8 format")]}
    fp_conv = {"Name": "Conv_2", "LayerType": "CaskConvolution", "Inputs": [],
               "Outputs": [_t("u", [1, 32, 8, 8], "Channel major FP16 format where channel % 8 == 0")]}
    r = parse_engine_information({"Layers": [int8_conv, fp_conv], "Bindings": []})
    asked = Expected(None, {"Conv_0": "int8", "Conv_2": "int8"})
    assert [(d.node, d.actual) for d in compare(r, asked, ONNX_NODES)] == [("Conv_2", "fp16")]
    assert compare(r, Expected(None, {"Conv_0": "float"}), ONNX_NODES)[0].node == "Conv_0"


def test_expected_from_manifest_and_onnx():
    from onnx import TensorProto, helper

    manifest = {"precision": "fp16", "precision_report": {"kept_fp32": [{"name": "Relu_3", "op_type": "Relu"}]},
                "dla": {"layers": [{"name": "Conv_2", "op": "Conv", "device": "DLA"}]}}
    e = expected_from_manifest(manifest)
    assert e.default == "fp16" and e.precision == {"Relu_3": "fp32"} and e.device == {"Conv_2": "DLA"}
    int8 = expected_from_manifest({"precision": "int8", "precision_report": {"kept_float": [{"node": "Conv_9"}]}},
                                  ["Conv_0"])
    assert int8.default is None and int8.precision == {"Conv_9": "float", "Conv_0": "int8"}

    nodes = [helper.make_node("DequantizeLinear", ["wq", "s"], ["w"]),
             helper.make_node("Conv", ["x", "w"], ["y"], name="Conv_0"),
             helper.make_node("Conv", ["y", "w2"], ["z"], name="Conv_1")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)])
    assert int8_nodes_of(helper.make_model(graph)) == ("Conv_0",)
