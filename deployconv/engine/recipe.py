"""BuildRecipe: every decision of one TensorRT build, assembled from the EngineSpec, the TensorRT version and
the ONNX facts. Pure: the builder only carries a recipe out, `trtexec_command` prints the same recipe as a
command line, and `recipe.to_dict()` goes into the manifest so an engine says how it was made.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from deployconv.core.compat import version_in_range
from deployconv.core.errors import BadInputError, MissingEnvironmentError
from deployconv.core.support_matrix import target_refusals
from deployconv.engine.onnx_facts import OnnxFacts
from deployconv.engine.op_limits import check_profiles
from deployconv.engine.precision import PrecisionChoice, choose_precision
from deployconv.engine.profiles import Profile, make_profiles
from deployconv.engine.spec import DEFAULT_OPTIMIZATION_LEVEL, EngineSpec

MIN_TRT = (8, 5)  # execute_async_v3 and named I/O tensors (JetPack 5.1); deployconv plugins need more:
PLUGINS_SINCE = (10, 1)  # IPluginV3 is TensorRT 10.0+, and the ONNX parser imports V3 plugins from 10.1
BUILDER_KNOBS_SINCE = (8, 6)  # builder optimization level, hardware and version compatibility
SAME_COMPUTE_CAPABILITY_SINCE = (10, 9)
# OnnxParserFlag.ADJUST_FOR_DLA: in NvOnnxParser.h and pyOnnx.cpp from TensorRT 10.16 (absent up to 10.15); the
# TensorRT docs recommend it for DLA builds once DLA returns on JetPack, in 11.4.1 ("Strongly Typed Networks for
# DLA": parser.set_flag(trt.OnnxParserFlag.ADJUST_FOR_DLA)). 10.8 to 11.3 have no DLA at all.
ADJUST_FOR_DLA_SINCE = (11, 4, 1)
# TensorRT HardwareCompatibilityLevel member per deployconv name
HARDWARE_LEVELS = {"none": "NONE", "ampere+": "AMPERE_PLUS", "same_compute_capability": "SAME_COMPUTE_CAPABILITY"}
# TensorRT MemoryPoolType member per deployconv pool name
MEMORY_POOL_TYPES = {"workspace": "WORKSPACE", "dla_sram": "DLA_MANAGED_SRAM", "dla_local_dram": "DLA_LOCAL_DRAM",
                     "dla_global_dram": "DLA_GLOBAL_DRAM"}


@dataclass(frozen=True, order=True)
class TrtVersion:
    major: int
    minor: int = 0
    patch: int = 0

    @classmethod
    def parse(cls, text: str | TrtVersion) -> TrtVersion:
        if isinstance(text, TrtVersion):
            return text
        m = re.match(r"\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(text))
        if not m:
            raise BadInputError(f"cannot read a TensorRT version from {text!r}", fix="give it as MAJOR.MINOR[.PATCH]")
        return cls(*(int(g) if g else 0 for g in m.groups()))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class BuildRecipe:
    target: str
    trt_version: str
    trt_major: int
    precision: PrecisionChoice
    profile: Profile
    network_flags: tuple[str, ...]  # NetworkDefinitionCreationFlag member names
    builder_flags: tuple[str, ...]  # BuilderFlag member names
    optimization_level: int | None  # None: this TensorRT has no such knob (8.5)
    memory_pools_mib: dict[str, int]
    timing_cache: str | None
    device: str  # "gpu" | "dla"
    dla_core: int | None
    gpu_fallback: bool
    hardware_compatibility: str  # deployconv name: "none" | "ampere+" | "same_compute_capability"
    version_compatible: bool
    exclude_lean_runtime: bool
    plugin_libraries: tuple[str, ...]  # loaded into the plugin registry before parsing
    plugins_to_serialize: tuple[str, ...]  # embedded in a version-compatible plan
    plugin_nodes: dict[str, int]  # plugin op -> node count
    runtime_needs_host_code: bool  # the runtime must set engine_host_code_allowed to load it
    tactic_sources: str = "default"
    notes: tuple[str, ...] = field(default=())
    parser_flags: tuple[str, ...] = ()  # OnnxParserFlag member names set before parsing
    profiles: tuple[Profile, ...] = ()  # every optimization profile, in order (profile is the first); () = (profile,)

    @property
    def all_profiles(self) -> tuple[Profile, ...]:
        return self.profiles or (self.profile,)

    @property
    def strongly_typed(self) -> bool:
        return self.precision.strongly_typed

    @property
    def hardware_level(self) -> str:
        """The TensorRT HardwareCompatibilityLevel member name."""
        return HARDWARE_LEVELS[self.hardware_compatibility]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["precision"] = self.precision.to_dict()
        d["profile"] = self.profile.to_dict()
        d["profiles"] = [p.to_dict() for p in self.all_profiles]
        d["strongly_typed"] = self.strongly_typed
        return _lists(d)


def _lists(v: Any) -> Any:
    """Tuples as lists all the way down, so to_dict() equals its JSON round trip."""
    if isinstance(v, dict):
        return {k: _lists(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_lists(x) for x in v]
    return v


def check_trt_version(version: TrtVersion, spec: EngineSpec, facts: OnnxFacts | None = None) -> None:
    """MissingEnvironmentError when this TensorRT cannot build what `spec` (and the graph) asks."""
    v = (version.major, version.minor)
    if v < MIN_TRT:
        raise MissingEnvironmentError(
            f"TensorRT {version} is too old for deployconv engines (8.5 or newer; 10.1+ for plugins)",
            why="the runner needs named I/O tensors and execute_async_v3 (TensorRT 8.5+)",
            fix="upgrade TensorRT: pip install 'tensorrt>=10' on x86/SBSA; on Jetson, JetPack 6.1+ ships TensorRT 10.3")
    if not version_in_range(str(version), spec.min_trt, spec.max_trt):
        wanted = f"{spec.min_trt or 'any'} .. {spec.max_trt or 'any newer'}"
        raise MissingEnvironmentError(
            f"target {spec.target!r} is for TensorRT {wanted}; this is TensorRT {version}",
            why="the target's [tensorrt] min_version/max_version say which TensorRT its engines are made for",
            fix="build on a device with a TensorRT in that range, or choose the target made for this one "
                "(`deployconv targets`)")
    if facts is not None and facts.plugin_nodes and v < PLUGINS_SINCE:
        raise MissingEnvironmentError(
            f"the graph has deployconv plugin nodes ({', '.join(sorted(set(facts.plugin_nodes)))}); TensorRT "
            f"{version} cannot import them",
            why="deployconv plugins are IPluginV3 (TensorRT 10.0+) and the ONNX parser imports them from 10.1",
            fix="export with a `standard` lowering target for this device (e.g. jetson-xavier-fp16), or upgrade TensorRT")
    needs_knobs = [k for k, on in (("version_compatible", spec.version_compatible),
                                   ("hardware_compatibility", spec.hardware_compatibility != "none")) if on]
    if needs_knobs and v < BUILDER_KNOBS_SINCE:
        raise MissingEnvironmentError(f"{', '.join(needs_knobs)} needs TensorRT 8.6+, this is {version}",
                                      fix="drop the setting, or upgrade TensorRT")
    if spec.hardware_compatibility == "same_compute_capability" and v < SAME_COMPUTE_CAPABILITY_SINCE:
        raise MissingEnvironmentError(
            f"hardware compatibility 'same_compute_capability' needs TensorRT 10.9+, this is {version}",
            fix="use hardware_compatibility='ampere+' or 'none', or upgrade TensorRT")


def check_platform(version: TrtVersion, spec: EngineSpec) -> None:
    """BadInputError (exit 2, with the nearest valid choice) when deployconv.core.support_matrix says this TensorRT
    cannot give what `spec` asks: DLA in a TensorRT without DLA on Jetson, DLA on Thor."""
    if not spec.uses_dla:
        return
    text = str(version)
    for refusal in target_refusals(family=None, jetpack=(), sm=spec.device_sm, min_trt=text, max_trt=text, dla=True,
                                   precision=spec.precision):
        raise refusal.error(f"target {spec.target!r} on TensorRT {version}")


def make_recipe(spec: EngineSpec, trt_version: str | TrtVersion, facts: OnnxFacts,
              plugin_libraries: tuple[str, ...] | list[str] = ()) -> BuildRecipe:
    """Every decision of the build (see the module docstring). Raises BadInputError for impossible asks,
    MissingEnvironmentError for what this TensorRT or the missing plugin library cannot do."""
    version = TrtVersion.parse(trt_version)
    check_platform(version, spec)
    check_trt_version(version, spec, facts)
    dla = spec.uses_dla
    precision = choose_precision(spec.precision, version.major, facts, strongly_typed=spec.strongly_typed, dla=dla)
    profiles = make_profiles(facts, spec)
    profile = profiles[0]
    libs = tuple(str(p) for p in plugin_libraries)
    plugin_nodes = facts.plugin_counts()
    notes = list(precision.notes)
    notes.extend(check_profiles(facts, profiles))  # DCN index limits at each profile's max, before TensorRT

    if plugin_nodes and not libs:
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(plugin_nodes.items()))
        raise MissingEnvironmentError(
            f"the ONNX has deployconv plugin nodes ({ops}) and no plugin library was given",
            why="TensorRT imports a plugin node only when a library registering that plugin is loaded",
            fix="build the plugin library (plugins_cpp/, see deployconv.plugins.library) on this device and pass "
                "its path (plugins=[...]); or export with a `standard` lowering target (no plugin nodes)")
    if libs and not plugin_nodes:
        notes.append("plugin libraries are loaded but the graph has no deployconv plugin nodes")
    if facts.custom_nodes:
        ops = sorted(set(facts.custom_nodes))
        notes.append(f"custom-domain nodes {', '.join(ops)}: TensorRT imports them only if a loaded plugin has that name")

    if dla:
        if plugin_nodes and not spec.gpu_fallback:
            raise BadInputError(
                f"the graph has plugin nodes ({', '.join(sorted(plugin_nodes))}) and GPU fallback is off",
                why="plugins never run on DLA: without GPU fallback the build fails",
                fix="set gpu_fallback=True (plugins then run on the GPU), or export with a `standard` lowering")
        if plugin_nodes:
            notes.append(f"plugins never run on DLA: {sum(plugin_nodes.values())} plugin node(s) "
                         f"({', '.join(sorted(plugin_nodes))}) run on the GPU")
        if spec.gpu_fallback:
            notes.append("GPU fallback is on: DLA-unsupported layers move to the GPU silently; "
                         "read the engine's layer report to see what ran where")
    if spec.hardware_compatibility != "none":
        notes.append(f"hardware compatibility {spec.hardware_compatibility}: fewer tactics, possibly slower; needs an "
                     "Ampere or newer GPU to build, and is not supported on JetPack/DRIVE")

    builder_flags = list(precision.builder_flags)
    if dla and spec.gpu_fallback:
        builder_flags.append("GPU_FALLBACK")
    serialize: tuple[str, ...] = ()
    if spec.version_compatible:
        builder_flags.append("VERSION_COMPATIBLE")
        if spec.exclude_lean_runtime:
            builder_flags.append("EXCLUDE_LEAN_RUNTIME")
            notes.append("lean runtime excluded: the loading side needs a matching lean runtime library")
        else:
            serialize = libs  # only version-compatible plans carry plugin libraries
            notes.append("version compatible: the plan embeds a lean runtime"
                         + (" and the plugin libraries" if libs else "")
                         + "; loading it needs engine_host_code_allowed (trusted plans only)")
    parser_flags: tuple[str, ...] = ()
    if dla and (version.major, version.minor, version.patch) >= ADJUST_FOR_DLA_SINCE:
        parser_flags = ("ADJUST_FOR_DLA",)
        notes.append("ONNX parser flag ADJUST_FOR_DLA: the parser reshapes layers to suit DLA (TensorRT 11.4.1+)")
    if version.major < 10:
        network_flags: tuple[str, ...] = ("EXPLICIT_BATCH",)  # required before TensorRT 10
    else:
        network_flags = ("STRONGLY_TYPED",) if precision.strongly_typed and version.major == 10 else ()
    optimization_level: int | None = spec.optimization_level
    if (version.major, version.minor) < BUILDER_KNOBS_SINCE:
        optimization_level = None
        if spec.optimization_level != DEFAULT_OPTIMIZATION_LEVEL:
            notes.append(f"TensorRT {version} has no builder optimization level: "
                         f"{spec.optimization_level} is not applied")
    notes.extend(dict.fromkeys(n for p in profiles for n in p.notes))

    return BuildRecipe(
        target=spec.target, trt_version=str(version), trt_major=version.major, precision=precision, profile=profile,
        network_flags=network_flags, builder_flags=tuple(builder_flags), optimization_level=optimization_level,
        memory_pools_mib=dict(spec.memory_pools_mib), timing_cache=spec.timing_cache,
        device="dla" if dla else "gpu", dla_core=spec.dla_core, gpu_fallback=spec.gpu_fallback,
        hardware_compatibility=spec.hardware_compatibility, version_compatible=spec.version_compatible,
        exclude_lean_runtime=spec.exclude_lean_runtime, plugin_libraries=libs, plugins_to_serialize=serialize,
        plugin_nodes=plugin_nodes,
        runtime_needs_host_code=spec.version_compatible and not spec.exclude_lean_runtime,
        notes=tuple(notes), parser_flags=parser_flags, profiles=profiles)
