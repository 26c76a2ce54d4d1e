"""OnnxFacts: inputs with symbolic dims, the precisions a graph carries (also inside subgraphs), plugin and
custom-domain nodes; reading a file without its weights; clear errors for a missing or broken file."""

from __future__ import annotations

import onnx
import pytest

from deployconv.core.errors import BadInputError
from deployconv.engine.onnx_facts import facts_from_model, read_onnx_facts
from tests.engine.graphs import conv_net, custom_domain_net, if_subgraph_net, plugin_net, two_batched_inputs


@pytest.mark.parametrize("form, carried", [("fp32", set()), ("fp16", {"fp16"}), ("bf16", {"bf16"}),
                                           ("int8", {"int8"})])
def test_carried_precisions(form, carried):
    facts = facts_from_model(conv_net(form))
    assert facts.carried_precisions == carried
    assert facts.qdq_nodes == (4 if form == "int8" else 0)


def test_inputs_keep_symbolic_and_anonymous_dims():
    facts = facts_from_model(conv_net(batch="batch", hw=("H", None)))
    (x,) = facts.inputs
    assert (x.name, x.dtype, x.shape, x.elem_type) == ("x", "float32", ("batch", 3, "H", None), "FLOAT")
    assert x.dynamic_dims == (0, 2, 3)
    assert facts.opset == 20


def test_initializers_listed_as_inputs_are_not_feeds():
    model = conv_net()
    model.graph.input.append(onnx.helper.make_tensor_value_info("W", onnx.TensorProto.FLOAT, [4, 3, 3, 3]))
    assert [i.name for i in facts_from_model(model).inputs] == ["x"]


def test_fp16_inside_an_if_branch_is_seen():
    assert facts_from_model(if_subgraph_net()).carried_precisions == {"fp16"}


def test_plugin_and_custom_nodes():
    facts = facts_from_model(plugin_net(count=3))
    assert facts.plugin_nodes == ("DeployconvSKA",) * 3 and facts.plugin_counts() == {"DeployconvSKA": 3}
    assert facts.custom_nodes == ()
    other = facts_from_model(custom_domain_net())
    assert other.plugin_nodes == () and other.custom_nodes == ("com.example::FancyOp",)


def test_dtypes_of_several_inputs():
    facts = facts_from_model(two_batched_inputs())
    assert [(i.name, i.dtype, i.shape) for i in facts.inputs] == [
        ("a", "float32", ("N", 4)), ("idx", "int64", ("N",)), ("table", "float32", (5, 4))]
    assert facts.input("idx").dtype == "int64"


def test_bf16_input_has_no_numpy_dtype():
    model = conv_net()
    model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.BFLOAT16
    (x,) = facts_from_model(model).inputs
    assert x.dtype is None and x.elem_type == "BFLOAT16"


def test_read_from_file_without_external_weights(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(conv_net("int8"), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="m.onnx.data", size_threshold=0)
    (tmp_path / "m.onnx.data").unlink()  # facts never need the weights
    facts = read_onnx_facts(path)
    assert facts.path == str(path) and facts.carried_precisions == {"int8"}
    assert facts.inputs[0].shape == ("batch", 3, 8, 8)


def test_missing_and_broken_files_are_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="no such ONNX file"):
        read_onnx_facts(tmp_path / "absent.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not protobuf\xff\xff")
    with pytest.raises(BadInputError, match="not a readable ONNX model"):
        read_onnx_facts(bad)
