"""EngineSpec: validation of every knob, and derivation from a Target (object, dict form, name) with overrides."""

from __future__ import annotations

import pytest

from deployconv.core.errors import EXIT_BAD_INPUT, BadInputError
from deployconv.engine.spec import EngineSpec, engine_spec_for


def test_defaults_are_a_plain_gpu_build():
    s = EngineSpec("t")
    assert (s.precision, s.dynamic_batch, s.optimization_level, s.hardware_compatibility, s.strongly_typed) == \
        ("fp32", True, 3, "none", "auto")
    assert s.dla_core is None and not s.uses_dla and s.shapes == {} and s.memory_pools_mib == {}


@pytest.mark.parametrize("kwargs, needle", [
    ({"precision": "fp8"}, "unknown precision 'fp8'"),
    ({"optimization_level": 6}, "optimization level 6 is outside 0..5"),
    ({"optimization_level": -1}, "outside 0..5"),
    ({"min_batch": 0}, "min_batch must be >= 1"),
    ({"min_batch": 8, "max_batch": 4}, "min <= opt <= max"),
    ({"opt_batch": 8, "max_batch": 4}, "min <= opt <= max"),
    ({"hardware_compatibility": "turing+"}, "unknown hardware compatibility"),
    ({"strongly_typed": "sometimes"}, "unknown strongly_typed policy"),
    ({"dla_core": -1}, "DLA core must be >= 0"),
    ({"gpu_fallback": True}, "gpu_fallback is set without a DLA core"),
    ({"dla_core": 0, "hardware_compatibility": "ampere+"}, "DLA engine cannot be hardware compatible"),
    ({"exclude_lean_runtime": True}, "exclude_lean_runtime needs version_compatible"),
    ({"memory_pools_mib": {"scratch": 64}}, "unknown memory pool 'scratch'"),
    ({"memory_pools_mib": {"workspace": 0}}, "whole number of MiB >= 1"),
    ({"memory_pools_mib": {"dla_sram": 1}}, "DLA pool but no DLA core"),
    ({"shapes": {"x": ((1, 3), (1, 3, 8))}}, "one shape or three"),
    ({"shapes": {"x": ((1, 3), (1, 3), (1, 3, 8))}}, "different ranks"),
    ({"shapes": {"x": ((0, 3), (1, 3), (2, 3))}}, "every dim must be >= 1"),
    ({"shapes": {"x": ((4, 3), (2, 3), (8, 3))}}, "min <= opt <= max in every dim"),
    ({"min_trt": "ten"}, "is not a TensorRT version"),
])
def test_invalid_specs_are_bad_input(kwargs, needle):
    with pytest.raises(BadInputError) as e:
        EngineSpec("t", **kwargs)
    assert needle in str(e.value) and e.value.exit_code == EXIT_BAD_INPUT


def test_one_shape_means_min_opt_max_equal():
    s = EngineSpec("t", shapes={"x": [1, 3, 224, 224]})
    assert s.shapes == {"x": ((1, 3, 224, 224),) * 3}
    assert s.to_dict()["shapes"] == {"x": [[1, 3, 224, 224]] * 3}


def test_dla_knobs_are_accepted_together():
    s = EngineSpec("t", precision="fp16", dla_core=1, gpu_fallback=True, memory_pools_mib={"dla_sram": 1})
    assert s.uses_dla and s.gpu_fallback


def test_from_builtin_target_name():
    s = engine_spec_for("onnx")
    assert s.target == "onnx" and s.precision == "fp32" and s.dynamic_batch is True


def test_from_target_dict_maps_tensorrt_and_device_sections():
    target = {
        "name": "orin-dla", "precision": "fp16", "dynamic_batch": False, "batch": 2, "max_batch": 32,
        "tensorrt": {"min_version": "10.3", "max_version": None, "plugin_archs": [87], "builder_optimization_level": 5,
                     "workspace_mib": 512, "dla_core": 0, "gpu_fallback": True, "version_compatible": False,
                     "hardware_compatibility": "none"},
        "device": {"sm": [87], "has_dla": True},
    }
    s = engine_spec_for(target)
    assert (s.target, s.precision, s.dynamic_batch) == ("orin-dla", "fp16", False)
    assert s.opt_batch == 2 and s.max_batch is None  # static target: its batch, not the dynamic max
    assert (s.optimization_level, s.memory_pools_mib, s.dla_core, s.gpu_fallback) == (5, {"workspace": 512}, 0, True)
    assert (s.min_trt, s.max_trt, s.device_sm) == ("10.3", None, (87,))


def test_gpu_fallback_default_is_ignored_without_dla():
    # a target's [tensorrt] gpu_fallback default (True) must not make a GPU target invalid
    s = engine_spec_for({"name": "gpu", "precision": "fp16", "max_batch": 8,
                         "tensorrt": {"gpu_fallback": True, "dla_core": None}})
    assert s.gpu_fallback is False and s.dla_core is None and s.max_batch == 8


def test_same_named_tensorrt_keys_flow_in():
    s = engine_spec_for({"name": "t", "tensorrt": {"strongly_typed": "always", "timing_cache": "tc.bin",
                                                   "exclude_lean_runtime": True, "version_compatible": True}})
    assert (s.strongly_typed, s.timing_cache, s.exclude_lean_runtime) == ("always", "tc.bin", True)


def test_overrides_win_and_unknown_overrides_are_bad_input():
    s = engine_spec_for({"name": "t", "precision": "fp32", "max_batch": 32}, precision="fp16", max_batch=4)
    assert (s.precision, s.max_batch) == ("fp16", 4)
    with pytest.raises(BadInputError, match="unknown engine setting"):
        engine_spec_for({"name": "t"}, maxbatch=4)


def test_adjusting_an_engine_spec():
    base = EngineSpec("t", precision="fp16")
    s = engine_spec_for(base, opt_batch=4)
    assert s.opt_batch == 4 and s.precision == "fp16" and base.opt_batch is None


def test_targets_without_name_or_of_unknown_kind_are_bad_input():
    with pytest.raises(BadInputError, match="no name"):
        engine_spec_for({"precision": "fp16"})
    with pytest.raises(BadInputError, match="cannot read a target"):
        engine_spec_for(42)


def test_every_builtin_target_gives_a_valid_spec():
    from deployconv.core.target import TARGETS

    for name, target in TARGETS.items():
        s = engine_spec_for(target)
        assert s.target == name and s.precision == target.precision


@pytest.mark.parametrize("pool, mib, lo, hi", [("dla_sram", 3, 2, 4), ("dla_local_dram", 1000, 512, 1024),
                                              ("dla_global_dram", 513, 512, 1024)])
def test_dla_pools_must_be_powers_of_two(pool, mib, lo, hi):
    """NvInfer.h (MemoryPoolType): each DLA pool "must be at least 4 KiB and must be a power of 2"; whole MiB
    are always >= 4 KiB, so the power of two is what a spec can get wrong."""
    with pytest.raises(BadInputError) as e:
        EngineSpec("dla", precision="fp16", dla_core=0, memory_pools_mib={pool: mib})
    assert e.value.exit_code == EXIT_BAD_INPUT and "not a power of two" in e.value.what
    assert e.value.fix == f"use {lo} or {hi} MiB"
    EngineSpec("dla", precision="fp16", dla_core=0, memory_pools_mib={pool: hi})
    EngineSpec("t", memory_pools_mib={"workspace": 1000})  # the GPU workspace has no such rule
