"""Environment fingerprint for benchmark results: the conditions a reader needs to judge a number.

Host fields come from deployconv.validate.fingerprint (the one the bench/gate path uses); this adds what a
PyTorch benchmark needs beyond it. Torch is optional (a Jetson may have TensorRT and numpy only): its fields are None when it cannot be imported.
Call `fingerprint()` inside the process that measured, after it set its thread counts.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deployconv.core.env import available_cpus
from deployconv.validate.fingerprint import cpu_model

_REPO = Path(__file__).resolve().parent.parent


@dataclass
class Env:
    date_utc: str
    python: str
    platform: str
    cpu_model: str
    cpu_simd: list[str]  # the vector extensions oneDNN can use (avx2, avx512*, amx*)
    cpu_logical: int | None  # os.cpu_count(): what the machine reports
    cpu_usable: int | None  # CPUs this process may run on (affinity / cgroup cpuset)
    mem_total_gib: float | None
    load_avg_1_5_15: list[float] | None  # high on a shared machine: timings then carry other people's work
    torch: str | None = None
    torch_threads: int | None = None
    torch_interop_threads: int | None = None
    torch_mkldnn: bool | None = None
    cuda_device: str | None = None
    thread_env: dict[str, str] = field(default_factory=dict)  # OMP_NUM_THREADS and friends, where set
    git_commit: str | None = None
    git_dirty: bool | None = None


def _cpu_simd() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f.startswith(("avx", "amx")) or f in ("fma", "sse4_2"))
    except OSError:
        pass
    return []


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


def _git() -> tuple[str | None, bool | None]:
    def run(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "-C", str(_REPO), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no")
    return commit, (bool(status) if status is not None else None)


def fingerprint() -> dict:
    """The environment as a JSON-ready dict (asdict of Env)."""
    usable = available_cpus()
    load = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    env = Env(
        date_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        python=sys.version.split()[0],
        platform=platform.platform(),
        cpu_model=cpu_model(),
        cpu_simd=_cpu_simd(),
        cpu_logical=os.cpu_count(),
        cpu_usable=usable,
        mem_total_gib=_mem_total_gib(),
        load_avg_1_5_15=load,
        thread_env={k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
                    if k in os.environ},
    )
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        env.torch = torch.__version__
        env.torch_threads = torch.get_num_threads()
        env.torch_interop_threads = torch.get_num_interop_threads()
        env.torch_mkldnn = bool(torch.backends.mkldnn.is_available())
        if torch.cuda.is_available():
            env.cuda_device = torch.cuda.get_device_name()
    env.git_commit, env.git_dirty = _git()
    return asdict(env)


def package_version(dist: str) -> str | None:
    """The installed version of distribution `dist`, or None when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _nvidia_smi(*fields: str) -> list[str] | None:
    """One value per field for GPU 0 from `nvidia-smi --query-gpu`, or None when nvidia-smi is absent or fails."""
    try:
        r = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits",
                            "-i", "0"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0 or not r.stdout.strip():
        return None
    values = [v.strip() for v in r.stdout.strip().splitlines()[0].split(",")]
    return values if len(values) == len(fields) else None


def _nvcc_version() -> str | None:
    import shutil

    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None)
    if nvcc is None:
        return None
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [ln for ln in out.splitlines() if "release" in ln]
    return lines[-1].split("release", 1)[1].strip() if lines else None


_SMI_FIELDS = ("name", "driver_version", "clocks.sm", "clocks.max.sm", "clocks.mem", "power.limit", "temperature.gpu",
               "persistence_mode", "mig.mode.current")


def gpu_fingerprint() -> dict:
    """The GPU side of a result's conditions: device, driver, CUDA (runtime torch was built with, driver API,
    nvcc), torch / cuDNN / Triton / torchvision versions, and nvidia-smi's clocks, power limit, temperature and
    modes at the time of the call (clocks cannot be fixed on a lent machine, so they are recorded instead).
    Every field is None where it cannot be read; never raises."""
    out: dict = {"gpu": None, "compute_capability": None, "sms": None, "memory_gib": None, "l2_bytes": None,
                 "driver": None, "cuda_runtime": None, "cuda_driver_api": None, "nvcc": _nvcc_version(),
                 "torch": None, "cudnn": None, "triton": package_version("triton"),
                 "torchvision": package_version("torchvision"), "nvidia_smi": None}
    smi = _nvidia_smi(*_SMI_FIELDS)
    if smi is not None:
        out["nvidia_smi"] = dict(zip(_SMI_FIELDS, smi))
        out["gpu"], out["driver"] = smi[0], smi[1]
    try:
        import torch
    except ImportError:
        return out
    out["torch"], out["cuda_runtime"] = torch.__version__, torch.version.cuda
    try:
        out["cudnn"] = torch.backends.cudnn.version()
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            out.update(gpu=p.name, compute_capability=f"{p.major}.{p.minor}", sms=p.multi_processor_count,
                       memory_gib=round(p.total_memory / 2**30, 1), l2_bytes=int(getattr(p, "L2_cache_size", 0)))
            v = torch._C._cuda_getDriverVersion()  # e.g. 13000 for CUDA 13.0
            out["cuda_driver_api"] = f"{v // 1000}.{v % 1000 // 10}"
    except Exception as e:  # a broken driver install: record it, the run goes on
        out["error"] = f"{type(e).__name__}: {e}"
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(gpu_fingerprint() if "--gpu" in sys.argv[1:] else fingerprint(), indent=2))
