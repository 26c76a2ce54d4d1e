"""trtexec command lines equivalent to a BuildRecipe, written out by hand for each kind of build, and the run
line for the plan it builds. Every flag must be one trtexec's own option parser reads for that TensorRT
(deployconv.engine.trtexec_flags: release branch, commit, file, line and the quoted line)."""

from __future__ import annotations

import shlex

from deployconv.engine.onnx_facts import facts_from_model
from deployconv.engine.recipe import make_recipe
from deployconv.engine.spec import EngineSpec
from deployconv.engine.trtexec import (
    LEAN_RUNTIME_PLACEHOLDER,
    trtexec_argv,
    trtexec_command,
    trtexec_run_argv,
    trtexec_run_command,
)
from deployconv.engine.trtexec_flags import BEHAVIOUR, COMMITS, PARSED, parsed_flags, release_for
from tests.engine.graphs import conv_net, plugin_net, two_batched_inputs

PLAIN = facts_from_model(conv_net())
FP16 = facts_from_model(conv_net("fp16"))
QDQ = facts_from_model(conv_net("int8"))
LIB = "/opt/lib/libdeployconv_plugins.so"
SHAPES = ["--minShapes=x:1x3x8x8", "--optShapes=x:1x3x8x8", "--maxShapes=x:16x3x8x8"]


def argv(spec: EngineSpec, version: str, facts=PLAIN, libs=(), **kw) -> list[str]:
    return trtexec_argv(make_recipe(spec, version, facts, libs), "model.onnx", **kw)


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
    # TensorRT 8.5's trtexec has no --skipInference (added in 8.6): "build only" is --buildOnly there
    assert a == ["trtexec", "--onnx=model.onnx", "--saveEngine=engine.plan", *SHAPES, "--fp16", "--buildOnly"]


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


def test_plugins_are_loaded_dynamically_and_serialized_only_when_version_compatible():
    facts = facts_from_model(plugin_net())
    plain = argv(EngineSpec("t"), "10.3", facts, (LIB,))
    # --staticPlugins only dlopens; our library registers through getCreators, which only loadLibrary calls
    assert f"--dynamicPlugins={LIB}" in plain and not any("static" in a or "Serialize" in a for a in plain)
    assert "--minShapes=x:1x4x8x8,w:1x1x9x8x8" in plain
    vc = argv(EngineSpec("t", version_compatible=True), "10.3", facts, (LIB,))
    assert [a for a in vc if "Plugin" in a or "Serialize" in a] == [
        f"--dynamicPlugins={LIB}", f"--setPluginsToSerialize={LIB}", "--ignoreParsedPluginLibs"]
    device = argv(EngineSpec("t", version_compatible=True), "10.3", facts, (LIB,), plugins=["/jetson/lib.so"])
    assert "--dynamicPlugins=/jetson/lib.so" in device and "--setPluginsToSerialize=/jetson/lib.so" in device
    lean = argv(EngineSpec("t", version_compatible=True, exclude_lean_runtime=True), "10.3", facts, (LIB,))
    assert f"--dynamicPlugins={LIB}" in lean and not any("Serialize" in a for a in lean)


def run(spec: EngineSpec, version: str, facts=PLAIN, libs=(), **kw) -> list[str]:
    return trtexec_run_argv(make_recipe(spec, version, facts, libs), **kw)


def test_run_lines_load_what_the_plan_does_not_carry():
    facts = facts_from_model(plugin_net())
    # a plain plan carries no plugins: the runtime loads them again, through loadLibrary
    assert run(EngineSpec("t"), "10.3", facts, (LIB,)) == [
        "trtexec", "--loadEngine=engine.plan", "--shapes=x:1x4x8x8,w:1x1x9x8x8", f"--dynamicPlugins={LIB}"]
    # a version-compatible plan carries them: not loaded twice; --versionCompatible lets trtexec allow host code
    assert run(EngineSpec("t", version_compatible=True), "10.16", facts, (LIB,)) == [
        "trtexec", "--loadEngine=engine.plan", "--shapes=x:1x4x8x8,w:1x1x9x8x8", "--versionCompatible"]
    # without the lean runtime in the plan, the run names one and loads the plugins itself
    assert run(EngineSpec("t", version_compatible=True, exclude_lean_runtime=True), "11.0", facts, (LIB,),
               plugins=["/jetson/lib.so"], engine="e.plan") == [
        "trtexec", "--loadEngine=e.plan", "--shapes=x:1x4x8x8,w:1x1x9x8x8", "--versionCompatible",
        f"--leanDLLPath={LEAN_RUNTIME_PLACEHOLDER}", "--dynamicPlugins=/jetson/lib.so"]
    dla = run(EngineSpec("dla", precision="fp16", dla_core=1, gpu_fallback=True), "10.3")
    assert dla == ["trtexec", "--loadEngine=engine.plan", "--shapes=x:1x3x8x8", "--useDLACore=1"]
    plan = make_recipe(EngineSpec("t"), "10.3", facts, (LIB,))
    assert shlex.split(trtexec_run_command(plan, engine="my engine.plan")) == trtexec_run_argv(
        plan, engine="my engine.plan")


# One build per use case and TensorRT release: every flag written must be parsed by that release's trtexec.
CASES = [
    (EngineSpec("t", precision="fp16"), PLAIN, ()),
    (EngineSpec("t", precision="fp16"), FP16, ()),
    (EngineSpec("t", precision="int8", strongly_typed="never"), QDQ, ()),
    (EngineSpec("t", precision="int8"), QDQ, ()),
    (EngineSpec("t", precision="bf16"), PLAIN, ()),
    (EngineSpec("t", max_batch=4, optimization_level=5, timing_cache="tc.bin", memory_pools_mib={"workspace": 64},
                hardware_compatibility="ampere+"), PLAIN, ()),
    (EngineSpec("dla", precision="fp16", dla_core=0, gpu_fallback=True, memory_pools_mib={"dla_sram": 1}), PLAIN, ()),
    (EngineSpec("t"), facts_from_model(plugin_net()), (LIB,)),
    (EngineSpec("t", version_compatible=True), facts_from_model(plugin_net()), (LIB,)),
    (EngineSpec("t", version_compatible=True, exclude_lean_runtime=True), facts_from_model(plugin_net()), (LIB,)),
]
VERSIONS = ["8.5.2", "8.6.1", "10.1", "10.3", "10.7", "10.13", "10.16", "11.0", "11.4.1"]


def _plans():
    from deployconv.core.errors import DeployconvError

    for spec, facts, libs in CASES:
        for version in VERSIONS:
            try:
                yield version, make_recipe(spec, version, facts, libs)
            except DeployconvError:  # that TensorRT cannot build this (no bf16 on 8.x, no plugins before 10.1, ...)
                continue


def test_every_flag_written_is_parsed_by_that_releases_trtexec():
    seen = set()
    for version, plan in _plans():
        major, minor = (int(p) for p in version.split(".")[:2])
        release = release_for(major, minor)
        known = parsed_flags(release)
        for line in (trtexec_argv(plan, "model.onnx"), trtexec_run_argv(plan)):
            flags = {a.split("=", 1)[0] for a in line[1:]}
            assert flags <= known, (version, release, sorted(flags - known))
            seen |= flags
    assert "--staticPlugins" not in seen
    assert {"--dynamicPlugins", "--setPluginsToSerialize", "--versionCompatible", "--leanDLLPath", "--loadEngine",
            "--buildOnly", "--skipInference", "--useDLACore"} <= seen


def test_the_flag_table_is_consistent():
    for src in PARSED + BEHAVIOUR:
        assert src.release in COMMITS and len(src.commit) == 40 and src.line > 0
        assert src.url.endswith(f"/{src.file}#L{src.line}") and src.commit in src.url
    for src in PARSED:
        assert f'"{src.flag}"' in src.quote, src  # the quoted parser line names the flag
    assert release_for(8, 5) == "8.5" and release_for(10, 1) == "10.3" and release_for(10, 13) == "10.3"
    assert release_for(10, 16) == "10.16" and release_for(11, 4) == "11.1" and release_for(9, 0) == "8.6"
    assert "--skipInference" not in parsed_flags("8.5") and "--fp16" not in parsed_flags("11.1")


def test_the_flag_table_matches_the_trtexec_sources_where_a_mirror_is_here():
    """Re-reads each quoted line at its commit from a local git mirror of NVIDIA/TensorRT (set
    DEPLOYCONV_TENSORRT_MIRROR=/path/to/TensorRT.git, or the mirror this project's tools fetch)."""
    import os
    import subprocess
    from pathlib import Path

    import pytest

    mirror = os.environ.get("DEPLOYCONV_TENSORRT_MIRROR", "/work/.mirror/NVIDIA+TensorRT/repo")
    if not Path(mirror).is_dir():
        pytest.skip(f"no git mirror of NVIDIA/TensorRT at {mirror} (set DEPLOYCONV_TENSORRT_MIRROR)")
    files: dict[tuple[str, str], list[str]] = {}
    for src in PARSED + BEHAVIOUR:
        key = (src.commit, src.file)
        if key not in files:
            text = subprocess.run(["git", "-C", mirror, "show", f"{src.commit}:{src.file}"], capture_output=True,
                                  text=True, check=True).stdout
            files[key] = text.splitlines()
        assert files[key][src.line - 1].strip() == src.quote, src


def test_static_inputs_are_left_out_of_the_shapes():
    a = argv(EngineSpec("t", max_batch=2), "10.3", facts_from_model(two_batched_inputs()))
    assert a[3:6] == ["--minShapes=a:1x4,idx:1", "--optShapes=a:1x4,idx:1", "--maxShapes=a:2x4,idx:2"]


def test_static_model_has_no_shapes():
    from tests.runtime import tiny_classifier

    a = argv(EngineSpec("t"), "10.3", facts_from_model(tiny_classifier(batch=1)))
    assert not any(x.startswith(("--minShapes", "--optShapes", "--maxShapes")) for x in a)


def test_names_with_colons_are_quoted_and_the_line_is_shell_safe():
    plan = make_recipe(EngineSpec("t"), "10.3", facts_from_model(conv_net(input_name="input:0")))
    line = trtexec_command(plan, "my model.onnx")
    assert shlex.split(line) == trtexec_argv(plan, "my model.onnx")
    assert "--minShapes='input:0':1x3x8x8" in shlex.split(line)
