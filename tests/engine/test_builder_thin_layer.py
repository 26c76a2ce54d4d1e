"""build_engine's thin TensorRT layer, driven by a fake `tensorrt` (tests/fake_tensorrt.py).

These test OUR decisions: that the plugin library is loaded once per process, that return values are checked,
that TensorRT 8.x parser errors are read without the 10.x-only methods, that the DLA parser flag and the
inspector's verbosity are set, and that the layer report is written and compared. They do not verify TensorRT:
the fake only copies the bindings' names and return conventions (pyCore.cpp, pyPlugin.cpp, pyOnnx.cpp).
"""

from __future__ import annotations

import json
import os

import pytest

from deployconv.core.errors import BadInputError, CheckFailedError
from deployconv.engine.builder import ENGINE_FILE, build_engine, check_profile_index, parser_issue
from deployconv.engine.inspector import LAYERS_FILE
from deployconv.engine.onnx_facts import facts_from_model
from deployconv.engine.recipe import make_recipe
from deployconv.engine.spec import EngineSpec
from deployconv.runtime.plugin_loading import forget_loaded, libraries_to_load, resolve_library_paths
from tests.artifact_samples import manifest_dict
from tests.engine.graphs import conv_net, plugin_net
from tests.fake_tensorrt import FakeParserError, FakeTensorRT, LegacyParserError
from tests.runtime import save


@pytest.fixture
def fake():
    trt = FakeTensorRT()
    yield trt
    forget_loaded(trt)


@pytest.fixture
def plugin_onnx(tmp_path):
    lib = tmp_path / "libdeployconv_plugins.so"
    lib.write_bytes(b"\x7fELF")
    return save(plugin_net(), tmp_path / "m" / "model.onnx"), lib


def test_second_build_in_one_process_does_not_reload_the_plugins(fake, plugin_onnx, tmp_path):
    """loadLibrary fails when the plugins are already registered (NvInferRuntimeCommon.h); the fake registry
    does the same, so a second load would surface as exit 3."""
    onnx_path, lib = plugin_onnx
    build_engine(onnx_path, EngineSpec("t"), tmp_path / "a", plugins=[lib], trt_module=fake)
    build_engine(onnx_path, EngineSpec("t"), tmp_path / "b", plugins=[lib], trt_module=fake)
    assert [c for c in fake.calls if c[0] == "load_library"] == [("load_library", os.path.realpath(lib))]


def test_plugin_paths_are_resolved_before_load_library(fake, plugin_onnx, tmp_path, monkeypatch):
    onnx_path, lib = plugin_onnx
    monkeypatch.chdir(lib.parent)
    build_engine(onnx_path, EngineSpec("t"), tmp_path / "a", plugins=["libdeployconv_plugins.so"], trt_module=fake)
    (call,) = [c for c in fake.calls if c[0] == "load_library"]
    assert os.path.isabs(call[1]) and call[1] == os.path.realpath(lib)
    with pytest.raises(BadInputError, match=r"plugin library not found: libnope\.so") as e:
        resolve_library_paths(["libnope.so"])
    assert "current folder" in e.value.why


def test_libraries_to_load_is_pure_and_deduplicates(tmp_path):
    a, b = tmp_path / "a.so", tmp_path / "b.so"
    for p in (a, b):
        p.write_bytes(b"")
    link = tmp_path / "link.so"
    link.symlink_to(a)
    assert libraries_to_load([str(a), str(link), str(b)], []) == (str(a), str(b))
    assert libraries_to_load([str(a), str(b)], [str(link)]) == (str(b),)
    assert libraries_to_load([str(a), str(b)], [], carried_by_plan=[str(b)]) == (str(a),)


def test_invalid_optimization_profile_stops_the_build(fake, tmp_path):
    """add_optimization_profile returns -1 for an invalid profile (NvInfer.h): raise at once."""
    fake.profile_index = -1
    onnx_path = save(conv_net(), tmp_path / "model.onnx")
    with pytest.raises(BadInputError, match="rejected the optimization profile") as e:
        build_engine(onnx_path, EngineSpec("t", max_batch=4), tmp_path, trt_module=fake)
    assert "x: min (1, 3, 8, 8)" in e.value.details[0] and "returned -1" in e.value.why
    assert ("build_serialized_network", None) not in fake.calls and not (tmp_path / ENGINE_FILE).exists()
    plan = make_recipe(EngineSpec("t"), "10.3", facts_from_model(conv_net()))
    assert check_profile_index(0, plan) == 0


def test_parse_failure_on_tensorrt_8_is_a_clear_error(fake, tmp_path):
    """TensorRT 8.5/8.6's ParserError has no node_name()/node_operator() (pyOnnx.cpp before 10.0)."""
    fake.__version__ = "8.6.1"
    fake.parse_errors = [LegacyParserError(3, "no importer for op Foo")]
    onnx_path = save(conv_net(), tmp_path / "model.onnx")
    with pytest.raises(CheckFailedError) as e:
        build_engine(onnx_path, EngineSpec("t"), tmp_path, trt_module=fake)
    assert e.value.details == ["node 3 '' (): UNSUPPORTED_NODE: no importer for op Foo"]
    issue = parser_issue(FakeParserError(2, "ska_1", "DeployconvSKA", "Plugin not found"))
    assert (issue.node, issue.node_name, issue.op_type) == (2, "ska_1", "DeployconvSKA")


def test_dla_build_on_11_4_1_sets_adjust_for_dla(fake, tmp_path):
    fake.__version__ = "11.4.1"
    onnx_path = save(conv_net("fp16"), tmp_path / "model.onnx")
    spec = EngineSpec("orin-dla", precision="fp16", dla_core=0, gpu_fallback=True, dynamic_batch=False)
    build_engine(onnx_path, spec, tmp_path, trt_module=fake)
    assert ("parser.set_flag", "ADJUST_FOR_DLA") in fake.calls
    # the plan decides it; older TensorRT (DLA on 10.3) has no such flag
    facts = facts_from_model(conv_net("fp16"))
    assert make_recipe(spec, "11.4.1", facts).parser_flags == ("ADJUST_FOR_DLA",)
    assert make_recipe(spec, "10.3", facts).parser_flags == ()
    assert make_recipe(EngineSpec("gpu", precision="fp16"), "11.4.1", facts).parser_flags == ()


def test_layer_report_is_written_and_compared(fake, tmp_path):
    model = conv_net()
    for i, node in enumerate(model.graph.node):
        node.name = f"{node.op_type}_{i}"
    onnx_path = save(model, tmp_path / "model.onnx")
    conv = next(n.name for n in model.graph.node if n.op_type == "Conv")
    fake.inspector_json = json.dumps({"Layers": [
        {"Name": conv, "LayerType": "CaskConvolution", "Inputs": [],
         "Outputs": [{"Name": "y", "Dimensions": [1, 4, 8, 8], "Format/Datatype": "Row major linear FP32"}]}],
        "Bindings": ["x", "y"]})
    (tmp_path / "manifest.json").write_text(json.dumps(manifest_dict(precision="fp16")))
    entries = build_engine(onnx_path, EngineSpec("t", precision="fp16"), tmp_path, trt_module=fake)
    assert ("config.profiling_verbosity", fake.ProfilingVerbosity.DETAILED) in fake.calls
    assert ("get_engine_information", "JSON") in fake.calls
    assert json.loads((tmp_path / LAYERS_FILE).read_text()) == json.loads(fake.inspector_json)
    layers = entries["engine"]["layers"]
    assert layers["file"] == LAYERS_FILE and layers["schema"] == "bindings" and layers["layers"] == 1
    assert layers["differences"] == [f"{conv}: asked fp16, ran in fp32 (engine layer {conv!r})"]
    assert any(conv in m and "asked fp16" in m for m in entries["engine"]["messages"])


def test_build_engine_cli_lists_the_differences(capsys):
    from deployconv.cli.engine import render_layer_report

    render_layer_report({"file": LAYERS_FILE, "layers": 3, "on_dla": 0,
                         "differences": ["Conv_2: asked fp16, ran in fp32 (engine layer 'Conv_2')"]})
    assert "1 difference(s)" in capsys.readouterr().err
    render_layer_report({"file": None, "note": "no engine layer report: boom"})
    assert "boom" in capsys.readouterr().err


def test_layer_report_uses_the_exports_request(fake, tmp_path):
    """The export builds before its manifest exists: it hands its request (the fp16 keep-list) in directly."""
    model = conv_net()
    for i, node in enumerate(model.graph.node):
        node.name = f"{node.op_type}_{i}"
    onnx_path = save(model, tmp_path / "model.onnx")
    conv = next(n.name for n in model.graph.node if n.op_type == "Conv")
    fake.inspector_json = json.dumps({"Layers": [
        {"Name": conv, "LayerType": "CaskConvolution", "Inputs": [],
         "Outputs": [{"Name": "y", "Dimensions": [1, 4, 8, 8], "Format/Datatype": "Row major linear FP32"}]}],
        "Bindings": ["x", "y"]})
    asked = {"precision": "fp16", "precision_report": {"kept_fp32": [{"name": conv}]}}
    entries = build_engine(onnx_path, EngineSpec("t", precision="fp16"), tmp_path, trt_module=fake, requested=asked)
    assert entries["engine"]["layers"]["differences"] == []
