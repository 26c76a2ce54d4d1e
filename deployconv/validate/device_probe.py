"""Probing for `deployconv check`: the only part of the device check that touches the machine. The machine facts
come from deployconv.core.env (the one probe); the plugin library from deployconv.plugins.library. The result is
plain data (`Environment`) that deployconv.validate.device_checks decides on."""

from __future__ import annotations

import re
from pathlib import Path

from deployconv.core.artifacts.names import PLUGIN_LIBRARY
from deployconv.core.env import (
    probe_dla,
    probe_gpus,
    probe_jetson,
    probe_onnxruntime,
    probe_tensorrt,
    read_text,
)
from deployconv.core.errors import DeployconvError
from deployconv.plugins.library import parse_build_txt, plugin_library
from deployconv.validate.device_checks import BUILD_INFO, Arch, Environment


def _archs_from_build_info(lib: Path) -> tuple[int, ...] | None:
    text = read_text(str(lib.parent / BUILD_INFO))
    if not text:
        return None
    return tuple(int(a) for a in re.findall(r"\d+", parse_build_txt(text).get("cuda_archs", ""))) or None


def _probe_plugins(directory: Path) -> tuple[str | None, tuple[Arch, ...] | None, tuple[Arch, ...] | None, str]:
    """(library, SASS archs, PTX archs, detail): the bundle's own build (plugins/build) first, else deployconv's
    usual places, inspected by deployconv.plugins.library (cuobjdump reads the real archs, suffixes such as
    sm_90a kept), else by the deployconv_build.txt CMake writes next to the library."""
    local = directory / PLUGIN_LIBRARY
    try:
        lib = plugin_library(local if local.is_file() else None, check_gpu=False)
    except DeployconvError as e:
        return None, None, None, (f"{PLUGIN_LIBRARY} unusable: {e.what}" if local.is_file()
                                  else f"no {PLUGIN_LIBRARY}; elsewhere: {e.what}")
    path = Path(lib.path)
    sass = tuple(lib.sass_archs) if lib.sass_archs is not None else _archs_from_build_info(path)
    ptx = tuple(lib.ptx_archs) if lib.ptx_archs is not None else None
    return str(path), sass or None, ptx, ""


def probe_environment(directory: Path) -> Environment:
    trt, trt_detail = probe_tensorrt()
    gpus = probe_gpus()
    jetson = probe_jetson()
    dla, dla_detail = probe_dla(trt is not None)
    lib, archs, ptx, lib_detail = _probe_plugins(Path(directory))
    return Environment(tensorrt=trt, tensorrt_detail=trt_detail, onnxruntime=probe_onnxruntime(),
                       compute_caps=gpus.compute_caps, gpu_detail=gpus.via or gpus.detail,
                       jetson_model=jetson.model, l4t=jetson.l4t, dla_cores=dla, dla_detail=dla_detail,
                       plugin_library=lib, plugin_archs=archs, plugin_ptx=ptx, plugin_detail=lib_detail)
