"""What the environment has: torch, ONNX tooling, TensorRT, CUDA, nvcc, a GPU. Imports nothing heavy unless
present, so it runs on a torch-free device too."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import shutil
import subprocess
from dataclasses import dataclass


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


def _run(cmd: list[str]) -> str | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None


def _nvcc() -> Component:
    path = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if shutil.which("/usr/local/cuda/bin/nvcc") else None)
    if not path:
        return Component("nvcc", False, None)
    text = _run([path, "--version"]) or ""
    release = next((ln.split("release", 1)[1].split(",")[0].strip() for ln in text.splitlines() if "release" in ln), None)
    return Component("nvcc", True, release, path)


def _gpu(torch_found: bool) -> Component:
    smi = shutil.which("nvidia-smi")
    if smi:
        text = _run([smi, "--query-gpu=name,driver_version,compute_cap", "--format=csv,noheader"])
        if text and text.strip():
            first = text.strip().splitlines()[0]
            return Component("gpu", True, None, first)
    if torch_found:
        import torch

        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            return Component("gpu", True, None, f"{p.name}, sm_{p.major}{p.minor}")
    return Component("gpu", False, None, "no NVIDIA GPU visible")


def diagnose() -> list[Component]:
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
    comps += [_nvcc(), _gpu(torch_c.found)]
    return comps
