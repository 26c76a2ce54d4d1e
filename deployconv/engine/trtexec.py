"""The trtexec command lines that build the same engine as a BuildPlan, and run it. Pure.

For devices where deployconv's Python side cannot run the build (a Jetson with JetPack's TensorRT but no pip
packages): `trtexec` ships with every TensorRT. Every flag written here is one trtexec's own option parser reads
for that TensorRT (`trtexec_flags.PARSED`: release branch, commit, file, line); memory pool sizes are in MiB
(trtexec's default unit), TensorRT 11 takes no precision flags (strongly typed only).

Plugins (see trtexec_flags.BEHAVIOUR): deployconv's library registers its creators through `getCreators`, so it
is loaded with `--dynamicPlugins` (IPluginRegistry::loadLibrary), never `--staticPlugins` (a bare dlopen), both to
build and to run. A version-compatible plan embeds it (`--setPluginsToSerialize`) and is then run without loading
it again, with `--versionCompatible` so trtexec allows the plan's host code.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence

from deployconv.core.artifacts.names import ENGINE
from deployconv.engine.plan import BuildPlan
from deployconv.engine.profiles import ShapeRange

LEAN_RUNTIME_PLACEHOLDER = "/path/to/libnvinfer_lean.so"  # the lean runtime of the TensorRT that built the plan
SKIP_INFERENCE_SINCE = (8, 6)  # TensorRT 8.5's trtexec calls it --buildOnly

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
                 engine: str | os.PathLike[str] = ENGINE) -> list[str]:
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
    serialize = _serialized(plan, libs)
    for lib in libs:  # getCreators is called only through IPluginRegistry::loadLibrary (--dynamicPlugins)
        argv.append(f"--dynamicPlugins={lib}")
    for lib in libs:
        if lib in serialize:
            argv.append(f"--setPluginsToSerialize={lib}")
    if plan.version_compatible and libs:  # the plan carries exactly the libraries above, not the parser's list too
        argv.append("--ignoreParsedPluginLibs")
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
    argv.append("--skipInference" if (plan.trt_major, _minor(plan)) >= SKIP_INFERENCE_SINCE else "--buildOnly")
    return argv


def _minor(plan: BuildPlan) -> int:
    return int(plan.trt_version.split(".")[1])


def _serialized(plan: BuildPlan, libs: Sequence[str]) -> set[str]:
    """The libraries the plan embeds, under the paths this command uses (device paths replace the plan's own)."""
    if not plan.plugins_to_serialize:
        return set()
    return set(plan.plugins_to_serialize) & set(libs) or set(libs)


def trtexec_run_argv(plan: BuildPlan, plugins: Sequence[str] | None = None,
                     engine: str | os.PathLike[str] = ENGINE) -> list[str]:
    """argv of the trtexec run of the plan `trtexec_argv` built (latency at the opt shapes). Libraries the plan
    carries (version compatible) are not loaded again; the others are loaded with --dynamicPlugins."""
    libs = list(plan.plugin_libraries if plugins is None else plugins)
    argv = ["trtexec", f"--loadEngine={engine}"]
    dynamic = plan.profile.dynamic_inputs()
    if dynamic:
        argv.append(f"--shapes={_shapes(dynamic, 'opt')}")
    if plan.dla_core is not None:
        argv.append(f"--useDLACore={plan.dla_core}")
    if plan.version_compatible:
        argv.append("--versionCompatible")  # trtexec then allows the plan's host code (lean runtime, plugins)
        if plan.exclude_lean_runtime:
            argv.append(f"--leanDLLPath={LEAN_RUNTIME_PLACEHOLDER}")
    carried = _serialized(plan, libs)
    argv += [f"--dynamicPlugins={lib}" for lib in libs if lib not in carried]
    return argv


def trtexec_run_command(plan: BuildPlan, plugins: Sequence[str] | None = None,
                        engine: str | os.PathLike[str] = ENGINE) -> str:
    """`trtexec_run_argv` as one shell-quoted line."""
    return shlex.join(trtexec_run_argv(plan, plugins, engine))


def trtexec_command(plan: BuildPlan, onnx: str | os.PathLike[str], plugins: Sequence[str] | None = None,
                    engine: str | os.PathLike[str] = ENGINE) -> str:
    """`trtexec_argv` as one shell-quoted line, ready to paste on the device."""
    return shlex.join(trtexec_argv(plan, onnx, plugins, engine))
