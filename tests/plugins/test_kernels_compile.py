"""The CUDA kernels compile warning-free for every default arch this nvcc knows (no GPU needed), the torch binding
passes a strict syntax check against torch's headers, and the arch helpers do what CMake and the build rely on.

Each .cu is compiled once for all archs (one nvcc call, -gencode per arch); files compile two at a time (this
runs on 2-core CI machines: ~45 s of CPU for the kernels plus ~20 s for the binding, measured with CUDA 13.0).
The flags are the strict end of what the builds use: host -Wall -Wextra as errors, every nvcc/ptxas warning an
error, and the half/bfloat16 macros torch's extension build defines (no implicit conversions or operators).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from deployconv.plugins.archs import (
    DEFAULT_ARCHS,
    cmake_cuda_architectures,
    gencode_flags,
    listed_archs,
    supported_archs,
)

REPO = Path(__file__).resolve().parents[2]
KERNELS = REPO / "plugins_cpp" / "kernels"
BINDING = REPO / "plugins_cpp" / "torch_ext" / "deployconv_ext.cpp"
SOURCES = sorted(KERNELS.glob("*.cu"))
TORCH_EXT_MACROS = ["-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
                    "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__"]
STRICT = ["-std=c++17", "-O3", "-Xcompiler", "-Wall,-Wextra,-Werror", "-Werror", "all-warnings"]

pytestmark = pytest.mark.slow


def _nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    for home in (Path("/usr/local/cuda"),):
        if (home / "bin" / "nvcc").exists():
            return str(home / "bin" / "nvcc")
    return None


NVCC = _nvcc()


def _compile_kernel(src: Path, out_dir: Path, archs: list[int]) -> subprocess.CompletedProcess:
    cmd = [NVCC, "-c", str(src), "-o", str(out_dir / f"{src.stem}.o"), *STRICT, *TORCH_EXT_MACROS,
           *gencode_flags(archs)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _cuda_include_dir() -> Path | None:
    """The CUDA toolkit's include dir (nvcc may be a wrapper script, so several places are tried)."""
    homes = [Path(NVCC).resolve().parents[1]] if NVCC else []
    homes += [Path(os.environ["CUDA_HOME"])] if os.environ.get("CUDA_HOME") else []
    homes.append(Path("/usr/local/cuda"))
    return next((h / "include" for h in homes if (h / "include" / "cuda_runtime.h").exists()), None)


def _check_binding(out_dir: Path) -> subprocess.CompletedProcess | str:
    """g++ -fsyntax-only on the binding with torch's and CUDA's headers; a reason string when it cannot run.

    A CPU build of torch ships c10/cuda headers but not the generated c10/cuda/impl/cuda_cmake_macros.h; an
    empty stand-in is enough for a syntax check (it only defines shared-library export macros)."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None or NVCC is None:
        return "no host C++ compiler or nvcc"
    try:
        from torch.utils.cpp_extension import include_paths
    except ImportError:
        return "torch is not installed"
    torch_inc = [Path(p) for p in include_paths()]
    if not (torch_inc[0] / "torch" / "extension.h").exists():
        return "this torch has no C++ headers"
    cuda_inc = _cuda_include_dir()
    if cuda_inc is None:
        return "no CUDA headers (cuda_runtime.h) next to nvcc, in $CUDA_HOME or /usr/local/cuda"
    stub = out_dir / "stub"
    macros = stub / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h"
    macros.parent.mkdir(parents=True)
    macros.write_text("#pragma once\n")
    inc = [f"-isystem{p}" for p in (*torch_inc, cuda_inc, sysconfig.get_paths()["include"], stub)]
    cmd = [cxx, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", *inc, f"-I{KERNELS}",
           "-DTORCH_EXTENSION_NAME=deployconv_ext", "-DTORCH_API_INCLUDE_EXTENSION_H", str(BINDING)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, subprocess.CompletedProcess | str]:
    """Compile every kernel and check the binding, two jobs at a time; results by file name."""
    if NVCC is None:
        pytest.skip("nvcc not found (neither on PATH nor in /usr/local/cuda): the CUDA kernels cannot be compiled")
    listing = subprocess.run([NVCC, "--list-gpu-arch"], capture_output=True, text=True, timeout=60).stdout
    archs = supported_archs(listing)
    if not archs:
        pytest.skip(f"this nvcc supports none of the default archs {DEFAULT_ARCHS}: {sorted(listed_archs(listing))}")
    out = tmp_path_factory.mktemp("kernels")
    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = {src.name: pool.submit(_compile_kernel, src, out, archs) for src in SOURCES}
        jobs[BINDING.name] = pool.submit(_check_binding, out)
        return {name: job.result() for name, job in jobs.items()}


def _assert_clean(result: subprocess.CompletedProcess | str) -> None:
    if isinstance(result, str):
        pytest.skip(f"binding syntax check not run: {result}")
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert "warning" not in log.lower(), log


def test_every_kernel_file_is_checked():
    assert {s.name for s in SOURCES} >= {"ska.cu", "deform_conv.cu", "dcnv4.cu", "dwconv.cu"}


@pytest.mark.parametrize("name", [s.name for s in SOURCES])
def test_kernel_compiles_warning_free_for_default_archs(builds, name):
    _assert_clean(builds[name])


def test_torch_binding_passes_strict_syntax_check(builds):
    _assert_clean(builds[BINDING.name])


# --- the pure arch helpers --------------------------------------------------------------------------------------

_NVCC_13 = "compute_75\ncompute_80\ncompute_86\ncompute_87\ncompute_88\ncompute_89\ncompute_90\ncompute_100\n" \
           "compute_110\ncompute_103\ncompute_120\ncompute_121\n"
_NVCC_12_2_CODES = "sm_50\nsm_52\nsm_60\nsm_70\nsm_75\nsm_80\nsm_86\nsm_87\nsm_89\nsm_90\nsm_90a\n"


@pytest.mark.parametrize("listing, expected", [
    (_NVCC_13, [87, 89, 90, 100, 110]),  # CUDA 13.0's --list-gpu-arch
    (_NVCC_12_2_CODES, [87, 89, 90]),   # CUDA 12.2's --list-gpu-code: no Blackwell, no Thor
    ("compute_100\ncompute_110\n", [100, 110]),
    ("", []),
])
def test_supported_archs_keeps_defaults_nvcc_knows(listing, expected):
    assert supported_archs(listing) == expected


def test_listed_archs_reads_both_listings_and_arch_variants():
    assert listed_archs("sm_90a\ncompute_100f\nsm_87") == {87, 90, 100}
    assert listed_archs("compute_1000 nothing_90") == {1000}  # digits are read whole, never a prefix


def test_supported_archs_honours_a_wanted_list():
    assert supported_archs(_NVCC_13, wanted=(90, 121, 999)) == [90, 121]


def test_gencode_flags_give_sass_per_arch_and_ptx_for_the_newest():
    assert gencode_flags([90, 87, 90]) == [
        "-gencode", "arch=compute_87,code=sm_87",
        "-gencode", "arch=compute_90,code=sm_90",
        "-gencode", "arch=compute_90,code=compute_90",
    ]
    assert gencode_flags([]) == []


def test_cmake_architectures_string():
    assert cmake_cuda_architectures(DEFAULT_ARCHS) == "87-real;89-real;90-real;100-real;110"
    assert cmake_cuda_architectures([90]) == "90"
    assert cmake_cuda_architectures([]) == ""
