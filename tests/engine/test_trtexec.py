"""trtexec command lines equivalent to a BuildPlan, written out by hand for each kind of build (flag
spellings as trtexec's own option parser has them, TensorRT 8.5 - 11)."""

from __future__ import annotations

import shlex

from deployconv.engine.onnx_facts import facts_from_model
from deployconv.engine.plan import make_plan
from deployconv.engine.spec import EngineSpec
from deployconv.engine.trtexec import trtexec_argv, trtexec_command
from tests.engine.graphs import conv_net, plugin_net, two_batched_inputs

PLAIN = facts_from_model(conv_net())
FP16 = facts_from_model(conv_net("fp16"))
QDQ = facts_from_model(conv_net("int8"))
LIB = "/opt/lib/libdeployconv_plugins.so"
SHAPES = ["--minShapes=x:1x3x8x8", "--optShapes=x:1x3x8x8", "--maxShapes=x:16x3x8x8"]


def argv(spec: EngineSpec, version: str, facts=PLAIN, libs=(), **kw) -> list[str]:
    return trtexec_argv(make_plan(spec, version, facts, libs), "model.onnx", **kw)


def test_trt10_fp16_weakly_typed():
    assert argv(EngineSpec("t", precision="fp16"), "10.3") == [
        "trtexec", "--onnx=model.onnx", "--saveEngine=engine.plan", *SHAPES, "--fp16",
        "--builderOptimizationLevel=3", "--skipInference"]


def test_trt10_strongly_typed_from_an_fp16_onnx():
    assert argv(EngineSpec("t", precision="fp16"), "10.16", FP16) == [
        "trtexec", "--onnx=model.onnx", "--saveEngine=engine.plan", *SHAPES, "--stronglyTyped",
        "--builderOptimizationLevel=3", "--skipInference"]


def test_trt10_int8_qdq_weakly_typed_on_request():
    a = argv(EngineSpec("t", precision="int8", strongly_typed="never"), "10.3", QDQ)
    assert "--int8" in a and "--stronglyTyped" not in a and "--fp16" not in a


def test_trt11_has_no_precision_flags():
    a = argv(EngineSpec("t", precision="fp16"), "11.0", FP16)
    assert not {"--fp16", "--int8", "--bf16", "--stronglyTyped"} & set(a)


def test_trt85_omits_the_optimization_level():
    a = argv(EngineSpec("xavier", precision="fp16"), "8.5.2")
    assert a == ["trtexec", "--onnx=model.onnx", "--saveEngine=engine.plan", *SHAPES, "--fp16", "--skipInference"]


def test_every_knob():
    spec = EngineSpec("t", precision="fp16", max_batch=4, optimization_level=5, timing_cache="cache/tc.bin",
                      memory_pools_mib={"workspace": 1024}, version_compatible=True,
                      hardware_compatibility="same_compute_capability")
    assert argv(spec, "10.9", engine="out/engine.plan") == [
        "trtexec", "--onnx=model.onnx", "--saveEngine=out/engine.plan", "--minShapes=x:1x3x8x8",
        "--optShapes=x:1x3x8x8", "--maxShapes=x:4x3x8x8", "--fp16", "--timingCacheFile=cache/tc.bin",
        "--builderOptimizationLevel=5", "--memPoolSize=workspace:1024", "--versionCompatible",
        "--hardwareCompatibilityLevel=sameComputeCapability", "--skipInference"]
    assert "--hardwareCompatibilityLevel=ampere+" in argv(EngineSpec("t", hardware_compatibility="ampere+"), "10.3")


def test_dla_with_fallback_and_pools():
    spec = EngineSpec("dla", precision="fp16", dla_core=1, gpu_fallback=True,
                      memory_pools_mib={"dla_sram": 1, "workspace": 256, "dla_local_dram": 512})
    assert argv(spec, "10.3") == [
        "trtexec", "--onnx=model.onnx", "--saveEngine=engine.plan", "--minShapes=x:1x3x8x8",
        "--optShapes=x:1x3x8x8", "--maxShapes=x:1x3x8x8", "--fp16", "--builderOptimizationLevel=3",
        "--memPoolSize=dlaLocalDRAM:512,dlaSRAM:1,workspace:256", "--useDLACore=1", "--allowGPUFallback",
        "--skipInference"]


def test_plugins_static_or_serialized():
    facts = facts_from_model(plugin_net())
    plain = argv(EngineSpec("t"), "10.3", facts, (LIB,))
    assert f"--staticPlugins={LIB}" in plain and not any("Serialize" in a for a in plain)
    assert "--minShapes=x:1x4x8x8,w:1x1x9x8x8" in plain
    vc = argv(EngineSpec("t", version_compatible=True), "10.3", facts, (LIB,))
    assert [a for a in vc if "Plugins" in a or "Serialize" in a] == [
        f"--dynamicPlugins={LIB}", f"--setPluginsToSerialize={LIB}"]
    device = argv(EngineSpec("t", version_compatible=True), "10.3", facts, (LIB,), plugins=["/jetson/lib.so"])
    assert "--dynamicPlugins=/jetson/lib.so" in device and "--setPluginsToSerialize=/jetson/lib.so" in device


def test_static_inputs_are_left_out_of_the_shapes():
    a = argv(EngineSpec("t", max_batch=2), "10.3", facts_from_model(two_batched_inputs()))
    assert a[3:6] == ["--minShapes=a:1x4,idx:1", "--optShapes=a:1x4,idx:1", "--maxShapes=a:2x4,idx:2"]


def test_static_model_has_no_shapes():
    from tests.runtime import tiny_classifier

    a = argv(EngineSpec("t"), "10.3", facts_from_model(tiny_classifier(batch=1)))
    assert not any(x.startswith(("--minShapes", "--optShapes", "--maxShapes")) for x in a)


def test_names_with_colons_are_quoted_and_the_line_is_shell_safe():
    plan = make_plan(EngineSpec("t"), "10.3", facts_from_model(conv_net(input_name="input:0")))
    line = trtexec_command(plan, "my model.onnx")
    assert shlex.split(line) == trtexec_argv(plan, "my model.onnx")
    assert "--minShapes='input:0':1x3x8x8" in shlex.split(line)
