"""What this machine has, probed in one place: Python packages, usable CPUs, GPUs (name, driver, compute
capability), Jetson model and JetPack, DLA cores, nvcc. `deployconv doctor`, `deployconv check`, the plugin
library inspection and the run fingerprint all read it. Imports nothing heavy unless asked (torch only for
doctor's detail), so it runs on a torch-free device too.

The parsers (`parse_nvidia_smi`, `parse_tegra_release`, `jetpack_for`) are pure and tested on any machine;
the probes only run the tools and hand their output to them.
"""

from __future__ import annotations

import glob
import importlib.metadata as md
import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deployconv.core.compat import version_parts

NVIDIA_SMI_QUERY = ("--query-gpu=name,driver_version,compute_cap", "--format=csv,noheader")
DLA_NODES = ("/dev/nvhost-nvdla*", "/dev/nvhost-ctrl-nvdla*")
DEVICE_TREE_MODEL = "/proc/device-tree/model"
TEGRA_RELEASE = "/etc/nv_tegra_release"
JETSON_FAMILIES = ("orin", "thor", "xavier")  # as /proc/device-tree/model names them
# Jetson Linux (L4T) release -> JetPack, from NVIDIA's JetPack archive. (major, minor, first revision) rows,
# the last row whose revision is <= the found one wins.
L4T_JETPACK: tuple[tuple[int, int, int, str], ...] = (
    (35, 2, 0, "5.1"), (35, 3, 0, "5.1.1"), (35, 4, 0, "5.1.2"), (35, 5, 0, "5.1.3"), (35, 6, 0, "5.1.4"),
    (36, 3, 0, "6.0"), (36, 4, 0, "6.1"), (36, 4, 3, "6.2"), (36, 4, 4, "6.2.1"), (38, 2, 0, "7.0"),
)


# --- CPUs --------------------------------------------------------------------------------------------------------

def available_cpu_ids() -> list[int]:
    """The CPUs this process may run on (its affinity mask: taskset, cgroups' cpusets), ascending."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity API (macOS, Windows): every logical core
        return list(range(os.cpu_count() or 1))


def available_cpus() -> int:
    """How many CPUs this process may run on: the affinity mask, not the machine's count (a container or taskset
    pinned to 2 of 64 cores gets 2). The one CPU counter for threads, workers and fingerprints."""
    return max(1, len(available_cpu_ids()))


# --- GPUs --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Gpu:
    name: str
    driver: str
    compute_capability: int  # 87 for 8.7

    @property
    def sm(self) -> str:
        return f"sm_{self.compute_capability}"


@dataclass(frozen=True)
class GpuProbe:
    """The GPUs found and how: `via` is "nvidia-smi", "cuda-python", "torch" or "" (none found, `detail` says why)."""

    gpus: tuple[Gpu, ...]
    via: str
    detail: str = ""

    @property
    def compute_caps(self) -> tuple[int, ...]:
        return tuple(g.compute_capability for g in self.gpus)


def parse_compute_capability(text: str) -> int | None:
    """"8.7" -> 87; None for anything else (an old driver answers `[Not Supported]` or an error line)."""
    m = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", text)
    return int(m.group(1)) * 10 + int(m.group(2)) if m else None


def parse_nvidia_smi(text: str) -> tuple[Gpu, ...]:
    """`nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader` -> one Gpu per line that
    carries a compute capability (a bare "8.7" line, as `--query-gpu=compute_cap` prints, counts too)."""
    gpus = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        cc = parse_compute_capability(fields[-1]) if fields else None
        if cc is None:
            continue
        name = ", ".join(fields[:-2]) if len(fields) >= 3 else ""
        driver = fields[-2] if len(fields) >= 3 else ""
        gpus.append(Gpu(name, driver, cc))
    return tuple(gpus)


def _run(cmd: list[str], timeout: float = 20) -> str | None:
    """stdout of a successful run; None when the tool is missing, hangs or fails."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _gpus_from_cuda_python() -> tuple[Gpu, ...]:
    try:
        try:
            from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]
        except ImportError:
            from cuda import cudart  # type: ignore[import-not-found,no-redef]
        err, count = cudart.cudaGetDeviceCount()
        found = []
        for dev in range(int(count) if int(err) == 0 else 0):
            _, major = cudart.cudaDeviceGetAttribute(cudart.cudaDeviceAttr.cudaDevAttrComputeCapabilityMajor, dev)
            _, minor = cudart.cudaDeviceGetAttribute(cudart.cudaDeviceAttr.cudaDevAttrComputeCapabilityMinor, dev)
            found.append(Gpu("", "", int(major) * 10 + int(minor)))
        return tuple(found)
    except Exception:  # no cuda-python, no driver: nothing found this way
        return ()


def _gpus_from_torch() -> tuple[Gpu, ...]:
    import torch

    if not torch.cuda.is_available():
        return ()
    props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
    return tuple(Gpu(p.name, "", p.major * 10 + p.minor) for p in props)


def probe_gpus(*, use_torch: bool = False) -> GpuProbe:
    """nvidia-smi first; cuda-python where there is none (Jetsons); torch only when asked (doctor, where torch
    is already a question) and installed."""
    smi = shutil.which("nvidia-smi")
    gpus = parse_nvidia_smi(_run([smi, *NVIDIA_SMI_QUERY]) or "") if smi else ()
    if gpus:
        return GpuProbe(gpus, "nvidia-smi")
    gpus = _gpus_from_cuda_python()
    if gpus:
        return GpuProbe(gpus, "cuda-python")
    if use_torch and importlib.util.find_spec("torch") is not None:
        gpus = _gpus_from_torch()
        if gpus:
            return GpuProbe(gpus, "torch")
    return GpuProbe((), "", "no NVIDIA GPU visible (nvidia-smi" + (" found none" if smi else " not installed")
                    + ", cuda-python found none)")


# --- Jetson, DLA -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Jetson:
    model: str | None  # /proc/device-tree/model, when it names a Jetson
    l4t: tuple[int, int, int] | None  # (36, 4, 0) from /etc/nv_tegra_release

    @property
    def jetpack(self) -> str | None:
        return jetpack_for(self.l4t) if self.l4t else None


def parse_tegra_release(text: str) -> tuple[int, int, int] | None:
    """`# R36 (release), REVISION: 4.0, ...` -> (36, 4, 0)."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def jetpack_for(l4t: tuple[int, int, int]) -> str | None:
    """The JetPack release of a Jetson Linux (L4T) version, None when not in the table."""
    best = None
    for major, minor, rev, jp in L4T_JETPACK:
        if (major, minor) == l4t[:2] and rev <= l4t[2]:
            best = jp
    return best


def jetpack_matches(found: str, allowed: tuple[str, ...]) -> bool:
    """`found` is one of `allowed`: "6.1" admits 6.1 and 6.1.x; "7.2.2+" admits 7.2.2 and every later release."""
    return any(version_parts(found) >= version_parts(a[:-1]) if a.endswith("+")
               else (found == a or found.startswith(a + ".")) for a in allowed)


def read_text(path: str) -> str | None:
    """A small system file as text (device-tree strings end in NUL), None when unreadable."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return data.replace(b"\x00", b"").decode(errors="replace").strip()


def probe_jetson() -> Jetson:
    model = read_text(DEVICE_TREE_MODEL)
    release = read_text(TEGRA_RELEASE)
    return Jetson(model if model and "jetson" in model.lower() else None,
                  parse_tegra_release(release) if release else None)


def probe_dla(trt_found: bool) -> tuple[int | None, str]:
    """(DLA cores, how they were found): TensorRT's builder where TensorRT imports, else the device nodes."""
    nodes = sorted({p for pattern in DLA_NODES for p in glob.glob(pattern)})
    indices = {m.group(1) for p in nodes if (m := re.search(r"nvdla(\d+)$", p))}
    if trt_found:
        try:
            import tensorrt as trt

            cores = int(trt.Builder(trt.Logger(trt.Logger.ERROR)).num_DLA_cores)
            return cores, "TensorRT builder.num_DLA_cores"
        except Exception as e:  # no CUDA device for the builder: fall back to the device nodes
            if indices:
                return len(indices), f"{', '.join(nodes)} (TensorRT builder failed: {e})"
            return None, f"TensorRT builder failed: {e}"
    if indices:
        return len(indices), ", ".join(nodes)
    return None, f"no {' or '.join(DLA_NODES)}"


# --- packages, tools ---------------------------------------------------------------------------------------------

@dataclass
class Component:
    name: str
    found: bool
    version: str | None
    detail: str = ""


def _pkg(dist: str, module: str | None = None) -> Component:
    module = module or dist
    if importlib.util.find_spec(module) is None:
        return Component(dist, False, None)
    try:
        version = md.version(dist)
    except md.PackageNotFoundError:
        version = None
    return Component(dist, True, version)


def probe_tensorrt() -> tuple[str | None, str]:
    """(TensorRT version, why not) by importing it: a broken install (missing libnvinfer) is as good as none."""
    if importlib.util.find_spec("tensorrt") is None:
        return None, "the tensorrt Python module is not importable"
    try:
        import tensorrt
    except Exception as e:
        return None, f"import tensorrt failed: {e}"
    return str(tensorrt.__version__), ""


def probe_onnxruntime() -> str | None:
    """The installed onnxruntime (or onnxruntime-gpu) version, None when not importable."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            continue
    return "unknown version"


def probe_nvcc() -> Component:
    path = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if shutil.which("/usr/local/cuda/bin/nvcc") else None)
    if not path:
        return Component("nvcc", False, None)
    text = _run([path, "--version"]) or ""
    release = next((ln.split("release", 1)[1].split(",")[0].strip() for ln in text.splitlines() if "release" in ln), None)
    return Component("nvcc", True, release, path)


def _gpu_component() -> Component:
    found = probe_gpus(use_torch=True)
    if not found.gpus:
        return Component("gpu", False, None, "no NVIDIA GPU visible")
    g = found.gpus[0]
    parts = [p for p in (g.name, f"driver {g.driver}" if g.driver else "", g.sm) if p]
    return Component("gpu", True, None, ", ".join(parts) + f" (via {found.via})")


def diagnose() -> list[Component]:
    """`deployconv doctor`: every component, found or not, with its version and a detail."""
    comps = [_pkg("torch"), _pkg("numpy"), _pkg("onnx"), _pkg("onnxruntime"), _pkg("onnxruntime-gpu", "onnxruntime"),
             _pkg("onnxsim"), _pkg("onnxslim"), _pkg("tensorrt"), _pkg("cuda-python", "cuda")]
    # onnxruntime-gpu and onnxruntime share the import name; keep whichever distribution is installed.
    comps = [c for c in comps if not (c.name == "onnxruntime-gpu" and c.version is None)]
    torch_c = comps[0]
    if torch_c.found:
        import torch

        torch_c.detail = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU build"
    ort = next(c for c in comps if c.name == "onnxruntime")
    if ort.found:
        import onnxruntime

        ort.detail = ", ".join(onnxruntime.get_available_providers())
    trt = next(c for c in comps if c.name == "tensorrt")
    if not trt.found:
        trt.detail = "not installed: engines cannot be built here (export still runs)"
    comps += [probe_nvcc(), _gpu_component()]
    comps.append(Component("cpus", True, None, f"{available_cpus()} usable (affinity), {os.cpu_count()} logical"))
    return comps
