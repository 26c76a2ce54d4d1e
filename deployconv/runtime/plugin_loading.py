"""Loading plugin libraries into TensorRT's plugin registry: once per process, by resolved path.

`IPluginRegistry::loadLibrary` returns nullptr "if any of the plugins are already registered"
(NvInferRuntimeCommon.h, TensorRT 10.3 and 11.1), so loading the same library a second time (a second build, a
runner re-activated between `bench --repeat` blocks, a build then a runner in one process) fails. One
process-wide record of what was loaded, keyed by the tensorrt module and the library's real path, makes every
later load a no-op. Paths are resolved first: `load_library("libX.so")` would search the dynamic linker's path,
not the current folder. The decisions are pure functions; `load_plugin_libraries` is the thin binding.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from deployconv.core.errors import BadInputError, MissingEnvironmentError

# (id of the tensorrt module, real path) -> the handle load_library returned. Process-wide on purpose: the
# registry it mirrors is process-wide too.
_LOADED: dict[tuple[int, str], Any] = {}


def resolve_library_paths(paths: Iterable[str | os.PathLike[str]]) -> tuple[str, ...]:
    """Absolute real paths of plugin libraries; BadInputError (exit 2) naming every one that does not exist."""
    out, missing = [], []
    for p in paths:
        path = Path(p).expanduser()
        if not path.is_file():
            missing.append(str(p))
        else:
            out.append(os.path.realpath(path))
    if missing:
        raise BadInputError(f"plugin library not found: {', '.join(missing)}",
                            why="paths are taken relative to the current folder (TensorRT would otherwise search "
                                "the dynamic linker's path for a bare name)",
                            fix="give the path of the built .so (plugins_cpp/ build output)")
    return tuple(out)


def libraries_to_load(requested: Sequence[str], already_loaded: Iterable[str],
                      carried_by_plan: Iterable[str] = ()) -> tuple[str, ...]:
    """The libraries still to load, in order, without duplicates: not loaded before in this process, and not
    serialized into the plan (a version-compatible plan carries its plugins; loading them again would
    register them twice, which trtexec avoids too). Paths are compared by real path."""
    done = {os.path.realpath(p) for p in already_loaded} | {os.path.realpath(p) for p in carried_by_plan}
    out: list[str] = []
    for lib in requested:
        real = os.path.realpath(lib)
        if real not in done:
            done.add(real)
            out.append(real)
    return tuple(out)


def loaded_libraries(trt: Any) -> tuple[str, ...]:
    """The real paths loaded into `trt`'s registry by this process."""
    return tuple(path for key, path in _LOADED if key == id(trt))


def load_plugin_libraries(trt: Any, libraries: Sequence[str], carried_by_plan: Iterable[str] = ()) -> tuple[str, ...]:
    """Load each library into `trt`'s plugin registry unless this process already did (or the plan carries it);
    returns the ones loaded now. MissingEnvironmentError (exit 3) when TensorRT refuses one."""
    todo = libraries_to_load(resolve_library_paths(libraries), loaded_libraries(trt), carried_by_plan)
    registry = trt.get_plugin_registry() if todo else None
    for lib in todo:
        handle = registry.load_library(lib)
        if handle is None:
            raise MissingEnvironmentError(
                f"TensorRT could not load the plugin library {lib}",
                why="a missing dependency (libnvinfer / libcudart version), a library built for another TensorRT, "
                    "or plugins with the same names already registered (the library loaded from another path, or "
                    "linked into this process)",
                fix=f"check `ldd {lib}`; rebuild the plugins on this device; load one copy of the library")
        _LOADED[(id(trt), lib)] = handle
    return todo


def forget_loaded(trt: Any | None = None) -> None:
    """Drop the record (all modules, or one): for tests that hand in a fresh fake registry."""
    for key in [k for k in _LOADED if trt is None or k[0] == id(trt)]:
        del _LOADED[key]


__all__ = ["forget_loaded", "libraries_to_load", "load_plugin_libraries", "loaded_libraries",
           "resolve_library_paths"]
