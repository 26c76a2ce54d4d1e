"""The trtexec command lines that build the same engine as a BuildRecipe, and run it. Pure.

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
from deployconv.core.errors import BadInputError
from deployconv.engine.profiles import ShapeRange
from deployconv.engine.recipe import BuildRecipe
from deployconv.engine.trtexec_flags import release_for, several_profiles

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


def trtexec_argv(recipe: BuildRecipe, onnx: str | os.PathLike[str], plugins: Sequence[str] | None = None,
                 engine: str | os.PathLike[str] = ENGINE) -> list[str]:
    """argv of the trtexec build equivalent to `plan` (build only: --skipInference). `plugins` defaults to the
    plan's plugin libraries (pass device-side paths when the command is meant for another machine)."""
    libs = list(recipe.plugin_libraries if plugins is None else plugins)
    argv = ["trtexec", f"--onnx={onnx}", f"--saveEngine={engine}"]
    argv += _profile_flags(recipe)
    if recipe.trt_major < 11:  # TensorRT 11 has no precision flags: the network is always strongly typed
        if recipe.strongly_typed:
            argv.append("--stronglyTyped")
        argv += [f"--{f.lower()}" for f in recipe.precision.builder_flags]  # --fp16 / --bf16 / --int8
    serialize = _serialized(recipe, libs)
    for lib in libs:  # getCreators is called only through IPluginRegistry::loadLibrary (--dynamicPlugins)
        argv.append(f"--dynamicPlugins={lib}")
    for lib in libs:
        if lib in serialize:
            argv.append(f"--setPluginsToSerialize={lib}")
    if recipe.version_compatible and libs:  # the plan carries exactly the libraries above, not the parser's list too
        argv.append("--ignoreParsedPluginLibs")
    if recipe.timing_cache:
        argv.append(f"--timingCacheFile={recipe.timing_cache}")
    if recipe.optimization_level is not None:
        argv.append(f"--builderOptimizationLevel={recipe.optimization_level}")
    if recipe.memory_pools_mib:
        pools = ",".join(f"{TRTEXEC_POOLS[k]}:{v}" for k, v in sorted(recipe.memory_pools_mib.items()))
        argv.append(f"--memPoolSize={pools}")
    if recipe.dla_core is not None:
        argv.append(f"--useDLACore={recipe.dla_core}")
        if recipe.gpu_fallback:
            argv.append("--allowGPUFallback")
    if recipe.version_compatible:
        argv.append("--versionCompatible")
        if recipe.exclude_lean_runtime:
            argv.append("--excludeLeanRuntime")
    if recipe.hardware_compatibility != "none":
        argv.append(f"--hardwareCompatibilityLevel={TRTEXEC_HARDWARE[recipe.hardware_compatibility]}")
    argv.append("--skipInference" if (recipe.trt_major, _minor(recipe)) >= SKIP_INFERENCE_SINCE else "--buildOnly")
    return argv


def check_profile_count(target: str, max_trt: str | None, count: int) -> None:
    """Refuse (exit 2) several optimization profiles for a target whose newest TensorRT's trtexec reads one set
    (8.5/8.6: no --profile), before any export work; the line itself refuses too (`_profile_flags`)."""
    if count < 2 or max_trt is None:
        return
    major, minor = (int(p) for p in [*str(max_trt).split("."), "0"][:2])
    release = release_for(major, minor)
    if not several_profiles(release):
        raise BadInputError(f"target {target!r} is for TensorRT {max_trt}, whose trtexec builds one optimization "
                            f"profile; {count} were asked (--profile)",
                            why=f"trtexec {release} has no --profile option (samples/common/sampleOptions.cpp reads "
                                "one --minShapes/--optShapes/--maxShapes set)",
                            fix="drop --profile (one profile over the --dim ranges), or use a TensorRT 10+ target")


def _profile_flags(recipe: BuildRecipe) -> list[str]:
    """One --minShapes/--optShapes/--maxShapes set; with several profiles each set right behind its --profile=N
    (trtexec pairs them by position, see trtexec_flags), refused where trtexec has no --profile (8.x)."""
    profiles = recipe.all_profiles
    if not profiles[0].dynamic_inputs():
        return []
    sets = [[f"--minShapes={_shapes(p.dynamic_inputs(), 'min')}", f"--optShapes={_shapes(p.dynamic_inputs(), 'opt')}",
             f"--maxShapes={_shapes(p.dynamic_inputs(), 'max')}"] for p in profiles]
    if len(sets) == 1:
        return sets[0]
    check_profile_count(recipe.target, recipe.trt_version, len(sets))
    return [flag for i, s in enumerate(sets) for flag in (f"--profile={i}", *s)]


def _minor(recipe: BuildRecipe) -> int:
    return int(recipe.trt_version.split(".")[1])


def _serialized(recipe: BuildRecipe, libs: Sequence[str]) -> set[str]:
    """The libraries the plan embeds, under the paths this command uses (device paths replace the plan's own)."""
    if not recipe.plugins_to_serialize:
        return set()
    return set(recipe.plugins_to_serialize) & set(libs) or set(libs)


def trtexec_run_argv(recipe: BuildRecipe, plugins: Sequence[str] | None = None,
                     engine: str | os.PathLike[str] = ENGINE) -> list[str]:
    """argv of the trtexec run of the plan `trtexec_argv` built (latency at the opt shapes). Libraries the plan
    carries (version compatible) are not loaded again; the others are loaded with --dynamicPlugins."""
    libs = list(recipe.plugin_libraries if plugins is None else plugins)
    argv = ["trtexec", f"--loadEngine={engine}"]
    dynamic = recipe.profile.dynamic_inputs()
    if dynamic:
        argv.append(f"--shapes={_shapes(dynamic, 'opt')}")
    if recipe.dla_core is not None:
        argv.append(f"--useDLACore={recipe.dla_core}")
    if recipe.version_compatible:
        argv.append("--versionCompatible")  # trtexec then allows the plan's host code (lean runtime, plugins)
        if recipe.exclude_lean_runtime:
            argv.append(f"--leanDLLPath={LEAN_RUNTIME_PLACEHOLDER}")
    carried = _serialized(recipe, libs)
    argv += [f"--dynamicPlugins={lib}" for lib in libs if lib not in carried]
    return argv


def trtexec_run_command(recipe: BuildRecipe, plugins: Sequence[str] | None = None,
                        engine: str | os.PathLike[str] = ENGINE) -> str:
    """`trtexec_run_argv` as one shell-quoted line."""
    return shlex.join(trtexec_run_argv(recipe, plugins, engine))


def trtexec_command(recipe: BuildRecipe, onnx: str | os.PathLike[str], plugins: Sequence[str] | None = None,
                    engine: str | os.PathLike[str] = ENGINE) -> str:
    """`trtexec_argv` as one shell-quoted line, ready to paste on the device."""
    return shlex.join(trtexec_argv(recipe, onnx, plugins, engine))
