"""The trtexec command line that builds the same engine as a BuildPlan. Pure.

For devices where deployconv's Python side cannot run the build (a Jetson with JetPack's TensorRT but no pip
packages): `trtexec` ships with every TensorRT. Flag spellings follow trtexec's own option parser
(samples/common/sampleOptions.cpp, TensorRT 8.5 - 11.x): memory pool sizes are given in MiB (trtexec's
default unit), TensorRT 11 takes no precision flags (strongly typed only).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence

from deployconv.engine.plan import BuildPlan
from deployconv.engine.profiles import ShapeRange

# deployconv memory pool name -> trtexec --memPoolSize pool name
TRTEXEC_POOLS = {"workspace": "workspace", "dla_sram": "dlaSRAM", "dla_local_dram": "dlaLocalDRAM",
                 "dla_global_dram": "dlaGlobalDRAM"}
TRTEXEC_HARDWARE = {"ampere+": "ampere+", "same_compute_capability": "sameComputeCapability"}


def _tensor_name(name: str) -> str:
    # trtexec splits shape specs on ',' and on the last ':'; names with either are wrapped in single quotes
    return f"'{name}'" if ("," in name or ":" in name) else name


def _shapes(ranges: Sequence[ShapeRange], which: str) -> str:
    # only dynamic inputs get here, so never a scalar (rank 0 has no dynamic dim)
    return ",".join(f"{_tensor_name(r.name)}:{'x'.join(str(d) for d in getattr(r, which))}" for r in ranges)


def trtexec_argv(plan: BuildPlan, onnx: str | os.PathLike[str], plugins: Sequence[str] | None = None,
                 engine: str | os.PathLike[str] = "engine.plan") -> list[str]:
    """argv of the trtexec build equivalent to `plan` (build only: --skipInference). `plugins` defaults to the
    plan's plugin libraries (pass device-side paths when the command is meant for another machine)."""
    libs = list(plan.plugin_libraries if plugins is None else plugins)
    argv = ["trtexec", f"--onnx={onnx}", f"--saveEngine={engine}"]
    dynamic = plan.profile.dynamic_inputs()
    if dynamic:
        argv += [f"--minShapes={_shapes(dynamic, 'min')}", f"--optShapes={_shapes(dynamic, 'opt')}",
                 f"--maxShapes={_shapes(dynamic, 'max')}"]
    if plan.trt_major < 11:  # TensorRT 11 has no precision flags: the network is always strongly typed
        if plan.strongly_typed:
            argv.append("--stronglyTyped")
        argv += [f"--{f.lower()}" for f in plan.precision.builder_flags]  # --fp16 / --bf16 / --int8
    serialize = set(plan.plugins_to_serialize) if plugins is None else (set(libs) if plan.plugins_to_serialize else set())
    for lib in libs:
        if lib in serialize:  # a dynamically loaded library may be serialized into the plan
            argv += [f"--dynamicPlugins={lib}", f"--setPluginsToSerialize={lib}"]
        else:
            argv.append(f"--staticPlugins={lib}")
    if plan.timing_cache:
        argv.append(f"--timingCacheFile={plan.timing_cache}")
    if plan.optimization_level is not None:
        argv.append(f"--builderOptimizationLevel={plan.optimization_level}")
    if plan.memory_pools_mib:
        pools = ",".join(f"{TRTEXEC_POOLS[k]}:{v}" for k, v in sorted(plan.memory_pools_mib.items()))
        argv.append(f"--memPoolSize={pools}")
    if plan.dla_core is not None:
        argv.append(f"--useDLACore={plan.dla_core}")
        if plan.gpu_fallback:
            argv.append("--allowGPUFallback")
    if plan.version_compatible:
        argv.append("--versionCompatible")
        if plan.exclude_lean_runtime:
            argv.append("--excludeLeanRuntime")
    if plan.hardware_compatibility != "none":
        argv.append(f"--hardwareCompatibilityLevel={TRTEXEC_HARDWARE[plan.hardware_compatibility]}")
    argv.append("--skipInference")
    return argv


def trtexec_command(plan: BuildPlan, onnx: str | os.PathLike[str], plugins: Sequence[str] | None = None,
                    engine: str | os.PathLike[str] = "engine.plan") -> str:
    """`trtexec_argv` as one shell-quoted line, ready to paste on the device."""
    return shlex.join(trtexec_argv(plan, onnx, plugins, engine))
