"""Session-wide native builds for the plugin tests, each made once:

* `cmake_build`: plugins_cpp/CMakeLists.txt through `build_plugins` for one CUDA arch: the kernels (the only nvcc
  work in the suite's plugin tests) and, where TensorRT headers exist, the plugin library as a user builds it;
* `trt_builds`: for every TensorRT header set (../shared's 10.3, 10.16 and 11.1 when TENSORRT_ROOT is unset), the
  plugin library built host-only with g++ -Wall -Wextra -Wpedantic -Werror against those headers and linked with
  the one kernels archive, plus plugin_probe built against the same headers.

Without headers (a clone without ../shared beside it) the TensorRT tests skip and say why.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from deployconv.plugins import library
from deployconv.plugins.probe import build_host_library, build_probe, find_cuda
from deployconv.plugins.trt_headers import TrtHeaders, all_headers, find_headers, missing_reason

BUILD_ARCH = 87  # one arch keeps the nvcc build around a minute on the 2-core runner (all defaults: ~5x that)


def need_tools(*tools: str) -> None:
    for t in tools:
        if (library._tool(t) if t == "nvcc" else shutil.which(t)) is None:
            pytest.skip(f"{t} not found: cannot configure the CUDA build")


def headers_or_skip() -> TrtHeaders:
    h = find_headers(os.environ)
    if h is None:
        pytest.skip(missing_reason(os.environ))
    return h


@pytest.fixture(scope="session")
def cmake_build(tmp_path_factory):
    """build_plugins for one arch into a fresh directory; with TensorRT headers where they exist."""
    need_tools("cmake", "nvcc")
    trt = find_headers(os.environ)
    out = tmp_path_factory.mktemp("plugins") / "out"
    start = time.perf_counter()
    result = library.build_plugins((BUILD_ARCH,), out, tensorrt_root=str(trt.root) if trt else None, jobs=2)
    print(f"\nbuild_plugins(sm_{BUILD_ARCH}, TensorRT {trt.version if trt else '-'} headers): {result.built} in "
          f"{time.perf_counter() - start:.0f} s")
    return result, out


@dataclass(frozen=True)
class TrtBuild:
    headers: TrtHeaders
    library: Path | None
    probe: Path | None
    error: str | None  # why the build failed (the compile test reports it)
    seconds: float


@pytest.fixture(scope="session")
def trt_builds(cmake_build, tmp_path_factory) -> dict[str, TrtBuild]:
    """{"10.3": TrtBuild, ...}: one host-only library + probe per header set."""
    sets = all_headers(os.environ)
    if not sets:
        pytest.skip(missing_reason(os.environ))
    if shutil.which("g++") is None or find_cuda() is None:
        pytest.skip("g++ or the CUDA toolkit (cuda_runtime_api.h, libcudart_static.a) not found")
    _, out = cmake_build
    archive = out / library.KERNELS_NAME
    builds = {}
    for h in sets:
        d = tmp_path_factory.mktemp(f"trt{h.major_minor}")
        start = time.perf_counter()
        try:
            lib = build_host_library(h, archive, d, jobs=2)
            exe = build_probe(h, d / "plugin_probe")
            builds[h.major_minor] = TrtBuild(h, lib, exe, None, time.perf_counter() - start)
        except Exception as e:
            builds[h.major_minor] = TrtBuild(h, None, None, str(e), time.perf_counter() - start)
        print(f"\nhost build against TensorRT {h.version} headers ({h.found_via}): "
              f"{'ok' if builds[h.major_minor].error is None else 'FAILED'} in {builds[h.major_minor].seconds:.0f} s")
    return builds


def header_ids() -> list[str]:
    """Parametrization ids: the header sets this machine has (one placeholder when none, which then skips)."""
    sets = all_headers(os.environ)
    return [h.major_minor for h in sets] or ["no-headers"]


@pytest.fixture(params=header_ids())
def trt_build(request, trt_builds) -> TrtBuild:
    build = trt_builds.get(request.param)
    if build is None:
        pytest.skip(missing_reason(os.environ))
    if build.error is not None:
        pytest.fail(f"the build against TensorRT {build.headers.version} headers failed:\n{build.error}")
    return build
