"""build_engine: ONNX -> TensorRT engine.plan by carrying out a BuildRecipe with the TensorRT Python API.

Thin on purpose: every decision is in the recipe (recipe.py, profiles.py, precision.py); this file loads plugin
libraries, parses, sets the builder config from the recipe, builds, and writes engine.plan (and the timing
cache) atomically. TensorRT is imported inside functions, so the module imports anywhere; without TensorRT the
error says how to build on the device, with the trtexec line for the same recipe.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployconv.core.artifacts.names import ENGINE, MANIFEST, PLUGIN_LIBRARY_NAME
from deployconv.core.errors import BadInputError, CheckFailedError, MissingEnvironmentError
from deployconv.core.fsio import refuse_overwrite, sha256_file, write_atomic
from deployconv.engine.inspector import (
    LAYERS_FILE,
    compare,
    expected_from_manifest,
    int8_nodes_of,
    parse_engine_information,
)
from deployconv.engine.onnx_facts import OnnxFacts, read_onnx_facts
from deployconv.engine.recipe import MEMORY_POOL_TYPES, BuildRecipe, make_recipe
from deployconv.engine.spec import EngineSpec, engine_spec_for
from deployconv.engine.trtexec import trtexec_command
from deployconv.plugins.library import plugin_library
from deployconv.runtime.cuda_io import device_facts
from deployconv.runtime.load_policy import PlanFacts, apply_runtime_settings, runtime_settings
from deployconv.runtime.plugin_loading import load_plugin_libraries, resolve_library_paths
from deployconv.runtime.tensorrt_api import capturing_logger
from deployconv.trust.manifest import read_manifest

ENGINE_FILE = ENGINE
# The TensorRT versions the "no TensorRT here" message writes trtexec lines for (unless the target's range
# says otherwise: see explain_versions).
EXPLAIN_FOR = ("10.16", "11.0")
PLUGIN_PLACEHOLDER = f"/path/to/{PLUGIN_LIBRARY_NAME}"


@dataclass(frozen=True)
class ParserIssue:
    """One ONNX parser error, as plain data."""

    node: int  # node index in the graph, -1 when the error is not about a node
    node_name: str
    op_type: str
    code: str
    desc: str


def parser_failure(onnx_path: str | os.PathLike[str], issues: Sequence[ParserIssue],
                   plugin_ops: Sequence[str] = (), plugin_libraries: Sequence[str] = ()) -> CheckFailedError:
    """The error for a failed ONNX parse: the failing nodes, and a fix that names the likely cause."""
    details = [f"node {i.node} {i.node_name!r} ({i.op_type}): {i.code}: {i.desc}" if i.node >= 0
               else f"{i.code}: {i.desc}" for i in issues] or ["(the parser reported no details)"]
    failing_ops = {i.op_type for i in issues}
    failing_plugins = sorted(failing_ops & set(plugin_ops))
    if failing_plugins:
        loaded = ", ".join(plugin_libraries) or "none"
        fix = (f"the plugin node(s) {', '.join(failing_plugins)} did not import: check the plugin library registers "
               f"them with the same name/version/namespace (loaded: {loaded}); rebuild it against this TensorRT")
    else:
        fix = ("export with a target whose lowering TensorRT supports (the `standard` lowering, opset <= 20), "
               "or inspect the graph with `polygraphy inspect capability MODEL.onnx`")
    return CheckFailedError(f"TensorRT's ONNX parser rejected {onnx_path} ({len(issues)} error(s))", details=details,
                            why="TensorRT builds only graphs whose every node it can import", fix=fix)


def resolve_plugin_libraries(plugins: Sequence[str | os.PathLike[str]] | None, facts: OnnxFacts) -> tuple[str, ...]:
    """The plugin libraries to load, as absolute real paths: the ones given (each must exist), else deployconv's
    own library when the graph has plugin nodes (deployconv.plugins.library.plugin_library(), imported lazily),
    else none."""
    if plugins is not None:
        return resolve_library_paths(plugins)
    if not facts.plugin_nodes:
        return ()

    # MissingEnvironmentError (exit 3, with the build command) when not built
    return resolve_library_paths([plugin_library().path])


def _device_libraries(plugins: Sequence[str | os.PathLike[str]] | None, facts: OnnxFacts) -> tuple[str, ...]:
    """Plugin library paths for a build on another machine: the given ones, else the placeholder when the graph
    needs one (the library is built on the device, against its TensorRT: a local path would not fit there)."""
    if plugins is not None:
        return tuple(str(p) for p in plugins)
    return (PLUGIN_PLACEHOLDER,) if facts.plugin_nodes else ()


def explain_versions(spec: EngineSpec) -> tuple[str, ...]:
    """The TensorRT versions to write trtexec lines for: 10.x and 11.x, or the target's own range."""
    lo = spec.min_trt and int(spec.min_trt.split(".")[0])
    hi = spec.max_trt and int(spec.max_trt.split(".")[0])
    if hi and hi < 10:
        return (str(spec.max_trt),)
    if lo and lo >= 11:  # a TensorRT 11 target (e.g. DLA from 11.4.1): its own minimum, not 10.x
        return (str(spec.min_trt),)
    first = str(spec.max_trt) if hi == 10 else EXPLAIN_FOR[0]
    return (first,) if hi == 10 else (first, EXPLAIN_FOR[1])


def _explain_missing_tensorrt(spec: EngineSpec, facts: OnnxFacts, onnx_path: Path, engine_path: Path,
                              plugins: Sequence[str | os.PathLike[str]] | None, why: str) -> MissingEnvironmentError:
    """MissingEnvironmentError whose fix holds the trtexec line(s) for this exact build. Bad input found on the
    way (an int8 target without Q/DQ, ...) is raised as such: it would fail on the device too."""
    libs = _device_libraries(plugins, facts)
    lines = []
    versions = explain_versions(spec)
    for version in versions:
        label = f"TensorRT {version}" if spec.max_trt and version == spec.max_trt else f"TensorRT {version.split('.')[0]}.x"
        try:
            recipe = make_recipe(spec, version, facts, libs)
        except BadInputError as e:
            if version == versions[0]:
                raise
            lines.append(f"{label}: cannot build this target: {e.what}")
            continue
        except MissingEnvironmentError as e:
            lines.append(f"{label}: {e.what}")
            continue
        lines.append(f"{label}: {trtexec_command(recipe, onnx_path, libs, engine_path)}")
    return MissingEnvironmentError(
        f"TensorRT is not installed here, so {onnx_path} cannot be built into an engine on this machine",
        details=lines,
        why=f"{why}; engines are bound to the TensorRT version and GPU that build them, so build on the target "
            "device (the ONNX is the portable artifact)",
        fix="on the device, run the same deployconv call where TensorRT is installed, or trtexec with the line "
            "above for its TensorRT major" + (f" ({PLUGIN_PLACEHOLDER} = the plugin library built on the device)"
                                              if PLUGIN_PLACEHOLDER in libs else ""))


def parser_issue(err: Any) -> ParserIssue:
    """A ParserError as plain data. `node_name()` and `node_operator()` exist only from TensorRT 10.0
    (pyOnnx.cpp); on 8.5/8.6 (Xavier) they are absent and the fields stay empty."""
    code = err.code()
    name = getattr(err, "node_name", None)
    op = getattr(err, "node_operator", None)
    return ParserIssue(int(err.node()), str((name() if name else "") or ""), str((op() if op else "") or ""),
                       getattr(code, "name", str(code)), str(err.desc()))


def _parse(trt: Any, network: Any, logger: Any, onnx_path: Path, recipe: BuildRecipe) -> Any:
    parser = trt.OnnxParser(network, logger)
    for flag in recipe.parser_flags:
        parser.set_flag(getattr(trt.OnnxParserFlag, flag))
    if parser.parse_from_file(str(onnx_path)):
        return parser
    issues = [parser_issue(parser.get_error(k)) for k in range(parser.num_errors)]
    raise parser_failure(onnx_path, issues, tuple(recipe.plugin_nodes), recipe.plugin_libraries)


def _configure(trt: Any, builder: Any, config: Any, recipe: BuildRecipe) -> None:
    for flag in recipe.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    for pool, mib in recipe.memory_pools_mib.items():
        config.set_memory_pool_limit(getattr(trt.MemoryPoolType, MEMORY_POOL_TYPES[pool]), int(mib) << 20)
    if recipe.optimization_level is not None:
        config.builder_optimization_level = recipe.optimization_level
    if recipe.device == "dla":
        cores = int(builder.num_DLA_cores)
        if recipe.dla_core is None or recipe.dla_core >= cores:
            raise MissingEnvironmentError(f"DLA core {recipe.dla_core} is not available: this device has {cores} DLA core(s)",
                                          fix="use a DLA core below that number, or build for the GPU (Thor has no DLA)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = recipe.dla_core
    if recipe.hardware_compatibility != "none":
        config.hardware_compatibility_level = getattr(trt.HardwareCompatibilityLevel, recipe.hardware_level)
    if recipe.plugins_to_serialize:
        config.plugins_to_serialize = list(recipe.plugins_to_serialize)
    if recipe.profile.needed:
        for i, plan in enumerate(recipe.all_profiles):  # one TensorRT optimization profile each, in order
            profile = builder.create_optimization_profile()
            for r in plan.dynamic_inputs():
                profile.set_shape(r.name, r.min, r.opt, r.max)
            check_profile_index(config.add_optimization_profile(profile), recipe, i)
    # layer names, precisions and placements in the engine's layer report (IEngineInspector)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED


def check_profile_index(index: int, recipe: BuildRecipe, which: int = 0) -> int:
    """`add_optimization_profile` returns the profile's index, or -1 when TensorRT finds it invalid (NvInfer.h);
    the build must stop there, not fail later with a vaguer message. `which`: the recipe profile just added."""
    if int(index) < 0:
        plan = recipe.all_profiles[which]
        shapes = "; ".join(f"{r.name}: min {r.min}, opt {r.opt}, max {r.max}" for r in plan.dynamic_inputs())
        label = f" {which}" if len(recipe.all_profiles) > 1 else ""
        raise BadInputError(f"TensorRT rejected the optimization profile{label}", details=[shapes] if shapes else [],
                            why="add_optimization_profile returned -1: a shape is missing, out of order "
                                "(min <= opt <= max) or does not fit the network's input rank",
                            fix="check the target's batch range and `shapes` against the ONNX inputs")
    return int(index)


def _timing_cache(config: Any, path: Path | None) -> str | None:
    """Load the timing cache at `path` into the config (a fresh one when absent or made elsewhere); a note
    when an existing cache could not be used."""
    if path is None:
        return None
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return None
    config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    return f"timing cache {path} was made by another TensorRT/GPU (or is damaged): started a new one"


def device_notes(spec: EngineSpec, device: Any) -> list[str]:
    """What to tell the user about the build GPU against the target's device (engines only run where built)."""
    if device is None:
        return ["the GPU could not be identified (no torch/cuda-python): the manifest has no gpu/sm for this engine"]
    if spec.device_sm and device.sm_number not in spec.device_sm:
        wanted = ", ".join(f"sm_{s}" for s in spec.device_sm)
        return [f"target {spec.target!r} is for {wanted}; this engine was built on {device.name} "
                f"(sm_{device.sm_number}) and runs only on that kind of GPU"]
    return []


def engine_entries(recipe: BuildRecipe, engine_path: Path, onnx_path: Path, *, device: Any = None,
                   build_seconds: float | None = None, timing_cache: Path | None = None,
                   messages: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """The manifest's "engine" entry for a built plan: what was built, with what, on what, and how."""

    log = [f"{sev}: {msg}" for sev, msg in messages]
    return {"engine": {
        "file": engine_path.name,
        "sha256": sha256_file(engine_path),
        "bytes": engine_path.stat().st_size,
        "onnx": onnx_path.name,
        "onnx_sha256": sha256_file(onnx_path),
        "tensorrt": recipe.trt_version,
        "gpu": None if device is None else device.name,
        "sm": None if device is None else device.sm,
        "plugins": [{"path": p, "sha256": sha256_file(Path(p))} for p in recipe.plugin_libraries],
        "timing_cache": None if timing_cache is None or not timing_cache.is_file()
        else {"path": str(timing_cache), "sha256": sha256_file(timing_cache)},
        "build_seconds": None if build_seconds is None else round(build_seconds, 3),
        "messages": log[:20],  # deployconv's notes, then TensorRT's warnings
        "messages_total": len(log),
        "plan": recipe.to_dict(),
        "trtexec": trtexec_command(recipe, onnx_path.name, engine=engine_path.name),
    }}


def recipe_for(onnx_path: str | os.PathLike[str], target: Any, trt_version: str,
               plugins: Sequence[str | os.PathLike[str]] | None = None) -> BuildRecipe:
    """The BuildRecipe `build_engine` would carry out on TensorRT `trt_version`, without TensorRT: for showing the
    plan or printing its trtexec line for another device. Plugin nodes without `plugins` get the placeholder
    library path (the library is built on the device)."""
    spec = target if isinstance(target, EngineSpec) else engine_spec_for(target)
    facts = read_onnx_facts(onnx_path)
    return make_recipe(spec, trt_version, facts, _device_libraries(plugins, facts))


def build_engine(onnx_path: str | os.PathLike[str], target: Any, out_dir: str | os.PathLike[str], *,
                 plugins: Sequence[str | os.PathLike[str]] | None = None, trt_module: Any = None,
                 force: bool = False, requested: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build OUT/engine.plan from `onnx_path` for `target` (a Target, its dict, a name, or an EngineSpec) and
    return the manifest entries ({"engine": {...}}). `plugins`: plugin library paths (default: deployconv's own
    library when the graph has plugin nodes). `trt_module`: a tensorrt module to use instead of importing one.
    `requested`: what the export asked, manifest-shaped (precision, precision_report, dla), to compare the
    engine's layer report with (default: the manifest.json beside the ONNX, where there is one).
    Raises BadInputError (exit 2), MissingEnvironmentError (exit 3, with the trtexec line when TensorRT is
    absent), CheckFailedError (exit 1: the parser or the builder failed)."""
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    spec = target if isinstance(target, EngineSpec) else engine_spec_for(target)
    facts = read_onnx_facts(onnx_path)
    engine_path = out_dir / ENGINE_FILE
    refuse_overwrite(engine_path, force)
    trt = trt_module
    if trt is None:
        try:
            import tensorrt as trt
        except ImportError as e:
            raise _explain_missing_tensorrt(spec, facts, onnx_path, engine_path, plugins, str(e)) from None
    libs = resolve_plugin_libraries(plugins, facts)
    recipe = make_recipe(spec, trt.__version__, facts, libs)

    device = device_facts()
    if recipe.hardware_compatibility == "ampere+" and device is not None and device.sm_major < 8:
        raise MissingEnvironmentError(f"hardware compatibility ampere+ needs an Ampere or newer GPU to build; "
                                      f"{device.name} is sm_{device.sm_number}", fix="build on an Ampere+ GPU, or use 'none'")
    notes = [("NOTE", n) for n in device_notes(spec, device)]
    logger = capturing_logger(trt)
    logger.take()
    load_plugin_libraries(trt, recipe.plugin_libraries)
    t0 = time.perf_counter()
    builder = trt.Builder(logger)
    flags = 0
    for name in recipe.network_flags:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = _parse(trt, network, logger, onnx_path, recipe)
    config = builder.create_builder_config()
    _configure(trt, builder, config, recipe)
    cache_path = Path(recipe.timing_cache) if recipe.timing_cache else None
    cache_note = _timing_cache(config, cache_path)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        errors = [f"{sev}: {msg}" for sev, msg in logger.take() if sev in ("ERROR", "INTERNAL_ERROR")]
        raise CheckFailedError(f"TensorRT could not build an engine from {onnx_path}", details=errors[-20:],
                               why=f"plan: {recipe.precision.precision}, {recipe.device}, profile {recipe.profile.to_dict()}",
                               fix="read the errors above; a smaller max batch or a larger workspace "
                                   "(memory_pools_mib={'workspace': MiB}) often helps")
    build_seconds = time.perf_counter() - t0
    write_atomic(engine_path, lambda tmp: tmp.write_bytes(memoryview(serialized)))
    if cache_path is not None:
        data = config.get_timing_cache().serialize()
        write_atomic(cache_path, lambda tmp: tmp.write_bytes(memoryview(data)))
    del parser
    layers = _write_layer_report(trt, logger, serialized, recipe, engine_path, onnx_path, requested)
    messages = notes + logger.take() + ([("NOTE", cache_note)] if cache_note else [])
    messages += [("NOTE", d) for d in layers.get("differences", [])[:10]]
    entries = engine_entries(recipe, engine_path, onnx_path, device=device, build_seconds=build_seconds,
                             timing_cache=cache_path, messages=messages)
    entries["engine"]["layers"] = layers
    return entries


def inspect_engine(trt: Any, logger: Any, serialized: Any, recipe: BuildRecipe) -> str:
    """The engine's layer report: IEngineInspector.get_engine_information(LayerInformationFormat.JSON) of the
    plan just built (deserialized the way a runner would, with its DLA core and host code allowed: we built it)."""

    runtime = trt.Runtime(logger)
    facts = PlanFacts(recipe.runtime_needs_host_code, recipe.dla_core if recipe.device == "dla" else None)
    apply_runtime_settings(runtime, runtime_settings(facts, allow_host_code=recipe.runtime_needs_host_code))
    engine = runtime.deserialize_cuda_engine(serialized)
    if engine is None:
        raise RuntimeError("the plan just built did not deserialize")
    inspector = engine.create_engine_inspector()
    return str(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def layer_report_entry(text: str, onnx_path: Path, manifest: dict[str, Any] | None,
                       precision: str) -> dict[str, Any]:
    """The manifest's engine.layers entry: the inspector report against what the export asked (the fp16
    keep-list, the int8 placement from the ONNX's Q/DQ, the DLA prediction), every difference listed."""
    import onnx

    report = parse_engine_information(text)
    model = onnx.load(str(onnx_path), load_external_data=False)
    asked = {**(manifest or {}), "precision": (manifest or {}).get("precision", precision)}
    expected = expected_from_manifest(asked, int8_nodes_of(model))
    diffs = compare(report, expected, [n.name for n in model.graph.node])
    return {"file": LAYERS_FILE, "schema": report.schema, "layers": len(report.layers),
            "on_dla": sum(1 for la in report.layers if la.on_dla),
            "differences": [d.describe() for d in diffs]}


def _write_layer_report(trt: Any, logger: Any, serialized: Any, recipe: BuildRecipe, engine_path: Path,
                        onnx_path: Path, requested: dict[str, Any] | None) -> dict[str, Any]:
    """Write engine.layers.json next to the plan and compare it with the export's request; a note instead
    when the inspector cannot run (the engine itself is fine)."""

    try:
        text = inspect_engine(trt, logger, serialized, recipe)
    except Exception as e:  # the report is a diagnosis: its absence must not cost the user the engine
        return {"file": None, "note": f"no engine layer report: {e}"}
    path = engine_path.parent / LAYERS_FILE
    write_atomic(path, lambda tmp: tmp.write_text(text))
    if requested is None and (onnx_path.parent / MANIFEST).is_file():
        asked = read_manifest(onnx_path.parent)
        requested = {"precision": asked.precision, "precision_report": asked.precision_report, "dla": asked.dla}
    return layer_report_entry(text, onnx_path, requested, recipe.precision.precision)
