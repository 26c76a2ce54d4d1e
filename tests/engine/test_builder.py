"""build_engine at its edges: without TensorRT it fails with exit 3 and the trtexec line(s) for this exact
build; bad input still wins (exit 2); outputs are never overwritten without force; parser failures list the
failing nodes (exit 1); the manifest entry. A real build runs only where TensorRT and a GPU are (marker trt)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shlex

import pytest

from deployconv.core.errors import (
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    EXIT_MISSING_ENV,
    BadInputError,
    CheckFailedError,
    MissingEnvironmentError,
)
from deployconv.engine.builder import (
    ENGINE_FILE,
    PLUGIN_PLACEHOLDER,
    ParserIssue,
    build_engine,
    device_notes,
    engine_entries,
    explain_versions,
    parser_failure,
    recipe_for,
    resolve_plugin_libraries,
)
from deployconv.engine.onnx_facts import facts_from_model
from deployconv.engine.recipe import make_recipe
from deployconv.engine.spec import EngineSpec
from tests.engine import error_of
from tests.engine.graphs import conv_net, plugin_net
from tests.runtime import save

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
no_trt = pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here: these test the path without it")


@pytest.fixture
def plain(tmp_path):
    return save(conv_net(), tmp_path / "model.onnx")


@no_trt
def test_without_tensorrt_exit_3_with_the_trtexec_lines(plain, tmp_path):
    spec = EngineSpec("trt-fp16", precision="fp16", max_batch=8)
    with pytest.raises(MissingEnvironmentError) as e:
        build_engine(plain, spec, tmp_path)
    err = e.value
    assert err.exit_code == EXIT_MISSING_ENV and "TensorRT is not installed" in err.what
    trt10, trt11 = err.details
    assert trt10.startswith("TensorRT 10.x: trtexec ")
    assert shlex.split(trt10.split(": ", 1)[1]) == [
        "trtexec", f"--onnx={plain}", f"--saveEngine={tmp_path / ENGINE_FILE}", "--minShapes=x:1x3x8x8",
        "--optShapes=x:1x3x8x8", "--maxShapes=x:8x3x8x8", "--fp16", "--builderOptimizationLevel=3", "--skipInference"]
    assert trt11.startswith("TensorRT 11.x: cannot build this target: an fp16 engine on TensorRT 11 needs an fp16 ONNX")
    assert "build on the target device" in err.why and "trtexec" in err.fix
    assert not (tmp_path / ENGINE_FILE).exists()


@no_trt
def test_without_tensorrt_the_fix_covers_both_majors_when_both_work(tmp_path):
    path = save(conv_net("fp16"), tmp_path / "model.onnx")
    err = error_of(MissingEnvironmentError, build_engine, path, {"name": "trt-fp16", "precision": "fp16"}, tmp_path)
    assert err.exit_code == EXIT_MISSING_ENV
    assert "--stronglyTyped" in err.details[0] and err.details[1].startswith("TensorRT 11.x: trtexec ")
    assert "--stronglyTyped" not in err.details[1]


@no_trt
def test_without_tensorrt_plugin_graph_gets_a_placeholder_library(tmp_path):
    path = save(plugin_net(), tmp_path / "model.onnx")
    err = error_of(MissingEnvironmentError, build_engine, path, EngineSpec("trt-fp32"), tmp_path)
    assert err.exit_code == EXIT_MISSING_ENV
    assert f"--dynamicPlugins={PLUGIN_PLACEHOLDER}" in err.details[0] and PLUGIN_PLACEHOLDER in err.fix


@no_trt
def test_bad_input_wins_over_missing_tensorrt(plain, tmp_path):
    err = error_of(BadInputError, build_engine, plain, EngineSpec("trt-int8", precision="int8"), tmp_path)
    assert err.exit_code == EXIT_BAD_INPUT and "Q/DQ" in err.what


def test_existing_engine_needs_force(plain, tmp_path):
    (tmp_path / ENGINE_FILE).write_bytes(b"old")
    with pytest.raises(BadInputError, match="already exists"):
        build_engine(plain, EngineSpec("t"), tmp_path)
    assert (tmp_path / ENGINE_FILE).read_bytes() == b"old"


def test_missing_onnx_is_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="no such ONNX file"):
        build_engine(tmp_path / "absent.onnx", EngineSpec("t"), tmp_path)


def test_plan_build_needs_no_tensorrt(tmp_path):
    path = save(plugin_net(), tmp_path / "model.onnx")
    plan = recipe_for(path, {"name": "trt-fp16", "precision": "fp16", "max_batch": 4}, "10.3")
    assert plan.plugin_libraries == (PLUGIN_PLACEHOLDER,) and plan.builder_flags == ("FP16",)
    assert plan.profile["x"].max == (4, 4, 8, 8)
    assert recipe_for(path, EngineSpec("t"), "11.0", plugins=["/dev/lib.so"]).plugin_libraries == ("/dev/lib.so",)


def test_explain_versions_follow_the_target_range():
    assert explain_versions(EngineSpec("t")) == ("10.16", "11.0")
    assert explain_versions(EngineSpec("t", min_trt="10.3")) == ("10.16", "11.0")
    assert explain_versions(EngineSpec("xavier", min_trt="8.5", max_trt="8.5")) == ("8.5",)
    assert explain_versions(EngineSpec("t", max_trt="10.3")) == ("10.3",)
    assert explain_versions(EngineSpec("t", min_trt="12.0")) == ("12.0",)


def test_device_notes():
    from deployconv.runtime.cuda_io import DeviceFacts

    orin = DeviceFacts("Orin", "8.7", 30000, "torch")
    assert device_notes(EngineSpec("orin", device_sm=(87,)), orin) == []
    assert device_notes(EngineSpec("any"), orin) == []
    (note,) = device_notes(EngineSpec("thor", device_sm=(110,)), orin)
    assert "is for sm_110" in note and "Orin (sm_87)" in note
    assert "could not be identified" in device_notes(EngineSpec("any"), None)[0]


def test_plugin_libraries_given_must_exist(tmp_path):
    facts = facts_from_model(plugin_net())
    with pytest.raises(BadInputError, match="plugin library not found"):
        resolve_plugin_libraries([tmp_path / "nope.so"], facts)
    lib = tmp_path / "lib.so"
    lib.write_bytes(b"\x7fELF")
    assert resolve_plugin_libraries([lib], facts) == (str(lib),)
    assert resolve_plugin_libraries(None, facts_from_model(conv_net())) == ()


def test_parser_failure_names_nodes_and_plugin_cause():
    issues = [ParserIssue(3, "ska_1", "DeployconvSKA", "UNSUPPORTED_NODE", "Plugin not found"),
              ParserIssue(-1, "", "", "INVALID_GRAPH", "graph is broken")]
    err = parser_failure("m.onnx", issues, ["DeployconvSKA"], ["/x/lib.so"])
    assert isinstance(err, CheckFailedError) and err.exit_code == EXIT_CHECK_FAILED
    assert err.details == ["node 3 'ska_1' (DeployconvSKA): UNSUPPORTED_NODE: Plugin not found",
                           "INVALID_GRAPH: graph is broken"]
    assert "DeployconvSKA did not import" in err.fix and "/x/lib.so" in err.fix
    generic = parser_failure("m.onnx", [ParserIssue(0, "n", "Foo", "UNSUPPORTED_NODE", "no importer")])
    assert "standard" in generic.fix and "polygraphy" in generic.fix


def test_engine_entries_describe_the_build(tmp_path, plain):
    """The manifest entry for a plan file on disk (its bytes are not an engine here: only hashing and the
    assembled record are under test)."""
    lib = tmp_path / "lib.so"
    lib.write_bytes(b"plugin bytes")
    engine = tmp_path / ENGINE_FILE
    engine.write_bytes(b"plan bytes")
    plan = make_recipe(EngineSpec("t", precision="fp16"), "10.3.0", facts_from_model(conv_net()), [str(lib)])

    class Device:
        name, sm = "Orin", "8.7"

    d = engine_entries(plan, engine, plain, device=Device(), build_seconds=1.23456,
                       messages=[("WARNING", "w1")])["engine"]
    assert json.loads(json.dumps(d)) == d
    assert (d["file"], d["bytes"], d["tensorrt"], d["gpu"], d["sm"]) == (ENGINE_FILE, 10, "10.3.0", "Orin", "8.7")
    assert d["sha256"] == hashlib.sha256(b"plan bytes").hexdigest()
    assert d["plugins"] == [{"path": str(lib), "sha256": hashlib.sha256(b"plugin bytes").hexdigest()}]
    assert d["build_seconds"] == 1.235 and d["messages"] == ["WARNING: w1"] and d["messages_total"] == 1
    assert d["plan"] == plan.to_dict() and d["trtexec"].startswith("trtexec --onnx=model.onnx --saveEngine=engine.plan")


@pytest.mark.trt
def test_real_build(tmp_path, plain):
    if not HAS_TRT:
        pytest.skip("TensorRT not installed")
    from deployconv.runtime.cuda_io import device_facts

    if device_facts() is None:
        pytest.skip("no CUDA device (or no torch/cuda-python to reach it)")
    entries = build_engine(plain, EngineSpec("trt-fp32", max_batch=4, timing_cache=str(tmp_path / "tc.bin")), tmp_path)
    e = entries["engine"]
    assert (tmp_path / ENGINE_FILE).stat().st_size == e["bytes"] > 0 and e["gpu"] and e["sm"]
    assert (tmp_path / "tc.bin").is_file() and e["timing_cache"]["sha256"]
    with pytest.raises(BadInputError, match="already exists"):
        build_engine(plain, EngineSpec("trt-fp32"), tmp_path)
