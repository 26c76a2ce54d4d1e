"""BuildRecipe: flags per TensorRT version, the target's TensorRT range, plugins (missing library, DLA, version
compatible serialization), compatibility gates, and a to_dict() that is its own JSON round trip."""

from __future__ import annotations

import json

import pytest

from deployconv.core.errors import EXIT_BAD_INPUT, EXIT_MISSING_ENV, BadInputError, MissingEnvironmentError
from deployconv.engine.onnx_facts import facts_from_model
from deployconv.engine.recipe import TrtVersion, make_recipe
from deployconv.engine.spec import EngineSpec
from tests.engine import error_of
from tests.engine.graphs import conv_net, custom_domain_net, plugin_net

PLAIN = facts_from_model(conv_net())
FP16 = facts_from_model(conv_net("fp16"))
PLUGINS = facts_from_model(plugin_net(count=2))
LIB = "/opt/deployconv/libdeployconv_plugins.so"


@pytest.mark.parametrize("text, expected", [("10.3.0.30", (10, 3, 0)), ("11", (11, 0, 0)), ("8.5.2", (8, 5, 2)),
                                            (" 10.16.1 ", (10, 16, 1))])
def test_trt_version_parse(text, expected):
    v = TrtVersion.parse(text)
    assert (v.major, v.minor, v.patch) == expected and TrtVersion.parse(v) is v


def test_trt_version_parse_rejects_garbage():
    with pytest.raises(BadInputError):
        TrtVersion.parse("unknown")


@pytest.mark.parametrize("version, facts, network_flags, builder_flags", [
    ("8.5.2", PLAIN, ("EXPLICIT_BATCH",), ("FP16",)),
    ("10.3", PLAIN, (), ("FP16",)),
    ("10.3", FP16, ("STRONGLY_TYPED",), ()),
    ("11.0", FP16, (), ()),  # strongly typed without the (deprecated) flag
])
def test_network_and_builder_flags_per_version(version, facts, network_flags, builder_flags):
    plan = make_recipe(EngineSpec("t", precision="fp16"), version, facts)
    assert plan.network_flags == network_flags and plan.builder_flags == builder_flags


def test_trt85_has_no_optimization_level():
    plan = make_recipe(EngineSpec("t", optimization_level=5), "8.5.2", PLAIN)
    assert plan.optimization_level is None and any("no builder optimization level" in n for n in plan.notes)
    assert make_recipe(EngineSpec("t", optimization_level=5), "8.6.1", PLAIN).optimization_level == 5


@pytest.mark.parametrize("spec, version, needle", [
    (EngineSpec("orin", min_trt="10.3"), "10.2.0", "is for TensorRT 10.3 .. any newer; this is TensorRT 10.2.0"),
    (EngineSpec("xavier", min_trt="8.5", max_trt="8.5"), "10.3", "is for TensorRT 8.5 .. 8.5"),
    (EngineSpec("t"), "8.4.3", "too old"),
    (EngineSpec("t", hardware_compatibility="same_compute_capability"), "10.8", "needs TensorRT 10.9+"),
    (EngineSpec("t", version_compatible=True), "8.5", "version_compatible needs TensorRT 8.6+"),
])
def test_version_gates_are_missing_environment(spec, version, needle):
    err = error_of(MissingEnvironmentError, make_recipe, spec, version, PLAIN)
    assert needle in err.what and err.exit_code == EXIT_MISSING_ENV


def test_upper_bound_covers_patch_releases():
    spec = EngineSpec("xavier", min_trt="8.5", max_trt="8.5")
    assert make_recipe(spec, "8.5.2.2", PLAIN).trt_version == "8.5.2"
    assert make_recipe(EngineSpec("t", hardware_compatibility="same_compute_capability"), "10.9", PLAIN).hardware_level \
        == "SAME_COMPUTE_CAPABILITY"


def test_plugin_nodes_need_a_library():
    err = error_of(MissingEnvironmentError, make_recipe, EngineSpec("t"), "10.3", PLUGINS)
    assert "DeployconvSKA x2" in err.what and "plugins=[...]" in err.fix and "standard" in err.fix
    plan = make_recipe(EngineSpec("t"), "10.3", PLUGINS, [LIB])
    assert plan.plugin_libraries == (LIB,) and plan.plugin_nodes == {"DeployconvSKA": 2}
    assert plan.plugins_to_serialize == () and not plan.runtime_needs_host_code


def test_plugin_nodes_need_trt_10_1():
    err = error_of(MissingEnvironmentError, make_recipe, EngineSpec("t"), "10.0.1", PLUGINS, [LIB])
    assert "IPluginV3" in err.why and "standard" in err.fix


def test_library_without_plugin_nodes_and_custom_domains_are_noted():
    plan = make_recipe(EngineSpec("t"), "10.3", PLAIN, [LIB])
    assert any("no deployconv plugin nodes" in n for n in plan.notes)
    plan = make_recipe(EngineSpec("t"), "10.3", facts_from_model(custom_domain_net()))
    assert any("com.example::FancyOp" in n for n in plan.notes)


def test_dla_with_plugins_needs_gpu_fallback_and_reports_them():
    spec = EngineSpec("dla", precision="fp16", dla_core=0)
    err = error_of(BadInputError, make_recipe, spec, "10.3", PLUGINS, [LIB])
    assert "plugins never run on DLA" in err.why and err.exit_code == EXIT_BAD_INPUT
    plan = make_recipe(EngineSpec("dla", precision="fp16", dla_core=1, gpu_fallback=True), "10.3", PLUGINS, [LIB])
    assert plan.device == "dla" and plan.dla_core == 1 and plan.builder_flags == ("FP16", "GPU_FALLBACK")
    assert any("2 plugin node(s) (DeployconvSKA) run on the GPU" in n for n in plan.notes)
    assert any("move to the GPU silently" in n for n in plan.notes)
    assert plan.profile.static


def test_version_compatible_serializes_plugins_and_needs_host_code():
    plan = make_recipe(EngineSpec("t", version_compatible=True), "10.3", PLUGINS, [LIB])
    assert plan.builder_flags == ("VERSION_COMPATIBLE",) and plan.plugins_to_serialize == (LIB,)
    assert plan.runtime_needs_host_code
    lean = make_recipe(EngineSpec("t", version_compatible=True, exclude_lean_runtime=True), "10.3", PLUGINS, [LIB])
    assert lean.builder_flags == ("VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME")
    assert lean.plugins_to_serialize == () and not lean.runtime_needs_host_code


def test_to_dict_is_json_and_says_everything():
    spec = EngineSpec("t", precision="fp16", max_batch=8, optimization_level=4, timing_cache="tc.bin",
                      memory_pools_mib={"workspace": 2048}, hardware_compatibility="ampere+")
    plan = make_recipe(spec, "10.16.0", PLAIN)
    d = plan.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["trt_version"] == "10.16.0" and d["trt_major"] == 10 and d["strongly_typed"] is False
    assert d["precision"]["builder_flags"] == ["FP16"] and d["builder_flags"] == ["FP16"]
    assert d["profile"]["inputs"]["x"]["max"] == [8, 3, 8, 8]
    assert (d["optimization_level"], d["timing_cache"], d["memory_pools_mib"]) == (4, "tc.bin", {"workspace": 2048})
    assert d["hardware_compatibility"] == "ampere+" and plan.hardware_level == "AMPERE_PLUS"
    assert d["tactic_sources"] == "default" and d["device"] == "gpu"
    assert any("hardware compatibility ampere+" in n for n in d["notes"])
