"""Build and run plugins_cpp/trt/probe/plugin_probe.cpp, which drives libdeployconv_plugins.so through its IPluginV3
interfaces without TensorRT (dlopen + getCreators, as IPluginRegistry::loadLibrary does).

Also builds the plugin library host-only with g++ against a given TensorRT header set and an already built kernels
archive (libdeployconv_kernels.a, from `build_plugins`): the CUDA kernels do not depend on TensorRT, so one nvcc
build serves every header version and checking 10.3, 10.16 and 11.1 costs three g++ builds, not three CMake builds.
Both compile with -Wall -Wextra -Wpedantic -Werror. The commands are pure functions; the subprocess edge is thin.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from deployconv.core.errors import MissingEnvironmentError
from deployconv.plugins.trt_headers import TrtHeaders

SOURCE_DIR = Path(__file__).resolve().parents[2] / "plugins_cpp"
PROBE_SOURCE = SOURCE_DIR / "trt" / "probe" / "plugin_probe.cpp"
WARNINGS = ("-Wall", "-Wextra", "-Wpedantic", "-Werror")
# The probe's enqueue mode calls the CUDA runtime; linked statically it needs only the driver (libcuda) on a GPU
# machine, and its other modes never call CUDA, so it runs on a machine without a GPU as well.
CUDART_STATIC = ("-lcudart_static", "-ldl", "-lpthread", "-lrt")


@dataclass(frozen=True)
class CudaToolkit:
    include: Path
    lib: Path


def find_cuda(env: dict[str, str] | None = None) -> CudaToolkit | None:
    """The CUDA toolkit with cuda_runtime_api.h and libcudart_static.a: $CUDA_HOME/$CUDA_PATH, nvcc's, /usr/local/cuda."""
    env = dict(os.environ) if env is None else env
    roots = [Path(env[v]) for v in ("CUDA_HOME", "CUDA_PATH") if env.get(v)]
    nvcc = shutil.which("nvcc")
    if nvcc:
        roots.append(Path(nvcc).resolve().parent.parent)
    roots.append(Path("/usr/local/cuda"))
    for root in roots:
        for lib in ("lib64", "lib", "targets/x86_64-linux/lib", "targets/sbsa-linux/lib", "targets/aarch64-linux/lib"):
            if (root / "include" / "cuda_runtime_api.h").is_file() and (root / lib / "libcudart_static.a").is_file():
                return CudaToolkit(root / "include", root / lib)
    return None


def _includes(trt: TrtHeaders, cuda: CudaToolkit) -> list[str]:
    return ["-isystem", str(trt.include), "-isystem", str(cuda.include)]


def probe_command(trt: TrtHeaders, cuda: CudaToolkit, out: Path, source: Path = PROBE_SOURCE) -> list[str]:
    return ["g++", "-std=c++17", "-O1", *WARNINGS, *_includes(trt, cuda), str(source), "-o", str(out),
            f"-L{cuda.lib}", *CUDART_STATIC]


def plugin_object_commands(trt: TrtHeaders, cuda: CudaToolkit, obj_dir: Path,
                           source_dir: Path = SOURCE_DIR) -> list[list[str]]:
    """One g++ -c per plugins_cpp/trt/*.cpp (host code only; no nvcc)."""
    return [["g++", "-std=c++17", "-O1", "-fPIC", "-fvisibility=hidden", *WARNINGS, *_includes(trt, cuda),
             "-I", str(source_dir / "kernels"), "-I", str(source_dir / "trt"), "-c", str(src),
             "-o", str(obj_dir / (src.stem + ".o"))]
            for src in sorted((source_dir / "trt").glob("*.cpp"))]


def plugin_link_command(objects: Sequence[Path], kernels_archive: Path, cuda: CudaToolkit, out: Path,
                        source_dir: Path = SOURCE_DIR) -> list[str]:
    """The shared library as CMakeLists.txt links it: only TensorRT's entry points exported, nothing undefined."""
    return ["g++", "-shared", "-o", str(out), *map(str, objects), str(kernels_archive), f"-L{cuda.lib}",
            *CUDART_STATIC, f"-Wl,--version-script={source_dir / 'trt' / 'exports.map'}", "-Wl,--no-undefined"]


def _check(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise MissingEnvironmentError(f"{what} failed", why=(proc.stderr or proc.stdout).strip()[-3000:],
                                      fix=f"command: {' '.join(cmd)}")


def build_probe(trt: TrtHeaders, out: Path, cuda: CudaToolkit | None = None) -> Path:
    cuda = cuda or find_cuda()
    if cuda is None:
        raise MissingEnvironmentError("cannot build the plugin probe: CUDA runtime headers/libcudart_static.a not "
                                      "found", fix="install the CUDA toolkit or set CUDA_HOME")
    out.parent.mkdir(parents=True, exist_ok=True)
    _check(probe_command(trt, cuda, out), f"compiling plugin_probe against TensorRT {trt.version} headers")
    return out


def build_host_library(trt: TrtHeaders, kernels_archive: Path, out_dir: Path, cuda: CudaToolkit | None = None,
                       jobs: int = 2) -> Path:
    """libdeployconv_plugins.so for `trt`'s headers in `out_dir`, from g++ objects and a prebuilt kernels archive."""
    cuda = cuda or find_cuda()
    if cuda is None:
        raise MissingEnvironmentError("cannot build the plugin library: CUDA toolkit not found",
                                      fix="install the CUDA toolkit or set CUDA_HOME")
    obj_dir = out_dir / "obj"
    obj_dir.mkdir(parents=True, exist_ok=True)
    cmds = plugin_object_commands(trt, cuda, obj_dir)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(lambda c: _check(c, f"compiling {Path(c[-3]).name} against TensorRT {trt.version} headers"),
                      cmds))
    lib = out_dir / "libdeployconv_plugins.so"
    _check(plugin_link_command([Path(c[-1]) for c in cmds], kernels_archive, cuda, lib), "linking the plugin library")
    return lib


def run_probe(exe: Path, lib: Path, lines: Sequence[str], timeout: float = 120) -> list[dict]:
    """Feed `lines` to the probe; one parsed JSON object per output line. Raises RuntimeError when it fails."""
    proc = subprocess.run([str(exe), str(lib)], input="\n".join(lines) + "\n", capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"plugin_probe exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def kernels_commands(nvcc: str, arch: int, obj_dir: Path, out: Path,
                     source_dir: Path = SOURCE_DIR) -> tuple[list[list[str]], list[str]]:
    """nvcc -c per kernels/*.cu for one arch (SASS + PTX; flags as CMakeLists.txt: -O3, no fast math), then `ar`."""
    cmds = [[nvcc, "-std=c++17", "-O3", "-Xcompiler=-O3,-fPIC", f"-gencode=arch=compute_{arch},code=[sm_{arch},"
             f"compute_{arch}]", "-I", str(source_dir / "kernels"), "-c", str(src), "-o", str(obj_dir / (src.stem + ".o"))]
            for src in sorted((source_dir / "kernels").glob("*.cu"))]
    return cmds, ["ar", "rcs", str(out), *(c[-1] for c in cmds)]


def build_kernels_archive(arch: int, out_dir: Path, jobs: int = 4) -> Path:
    """libdeployconv_kernels.a for one CUDA arch, with nvcc alone (no CMake: a GPU machine may lack it)."""
    nvcc = shutil.which("nvcc") or next((str(p) for p in (Path("/usr/local/cuda/bin/nvcc"),) if p.is_file()), None)
    if nvcc is None:
        raise MissingEnvironmentError("nvcc not found", fix="install the CUDA toolkit or put nvcc on PATH")
    obj_dir = out_dir / "kobj"
    obj_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "libdeployconv_kernels.a"
    cmds, ar = kernels_commands(nvcc, arch, obj_dir, out)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(lambda c: _check(c, f"nvcc {Path(c[-3]).name} for sm_{arch}"), cmds))
    _check(ar, "ar (kernels archive)")
    return out
