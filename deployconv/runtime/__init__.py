"""Runners with one interface for PyTorch, ONNX Runtime and TensorRT; `load_runner(artifact)` is the front door.

Torch-free: importing this package (and running ONNX models through it) never imports torch. `TorchRunner`
is resolved lazily on first attribute access, and onnxruntime is imported only when a session is made.
"""

from __future__ import annotations

import os
from importlib import import_module
from pathlib import Path
from typing import Any

from deployconv.core.artifacts.names import ENGINE, MODEL_ONNX, ORT_MODEL
from deployconv.core.errors import BadInputError, MissingEnvironmentError
from deployconv.runtime.base import Runner, TensorMeta, is_dynamic, random_feed
from deployconv.runtime.ort import CPU, CUDA, OrtRunner, resolve_providers, sha256_of
from deployconv.runtime.trt import TrtRunner

# runtime name (the CLI's --runtime) -> ONNX Runtime providers; "trt" is TensorRT.
RUNTIMES: dict[str, list[str] | None] = {"ort-cpu": [CPU], "ort-cuda": [CUDA, CPU], "trt": None}
ENGINE_SUFFIXES = (".plan", ".engine")

__all__ = ["RUNTIMES", "OrtRunner", "Runner", "TensorMeta", "TorchRunner", "is_dynamic",
           "load_runner", "random_feed", "resolve_artifact", "sha256_of"]


def __getattr__(name: str) -> Any:
    if name == "TorchRunner":
        return import_module("deployconv.runtime.torch_runner").TorchRunner
    raise AttributeError(f"module 'deployconv.runtime' has no attribute {name!r}")


def resolve_artifact(artifact: str | os.PathLike[str], runtime: str = "ort-cpu") -> Path:
    """The file `runtime` would run for `artifact`: a model file as given, or DIR/model.onnx (DIR/engine.plan
    for trt where it exists; else its model.onnx, to build one from). Raises BadInputError for a missing or
    unrecognised artifact."""
    if runtime not in RUNTIMES:
        raise BadInputError(f"unknown runtime {runtime!r}", fix=f"choose one of {', '.join(RUNTIMES)}")
    path = Path(artifact)
    if not path.exists():
        raise BadInputError(f"{path}: no such file or directory",
                            fix="give an exported directory (with model.onnx) or a .onnx file")
    if path.is_dir():
        name = ENGINE if runtime == "trt" and (path / ENGINE).is_file() else MODEL_ONNX
        if runtime != "trt" and (path / ORT_MODEL).is_file():
            name = ORT_MODEL  # the artifact has plugin nodes: ONNX Runtime runs the twin
        if not (path / name).is_file():
            found = sorted(p.name for p in path.iterdir() if p.suffix in (".onnx", *ENGINE_SUFFIXES))
            raise BadInputError(f"{path} has no {name}",
                                why=f"it holds {', '.join(found)}" if found else "it is not an exported directory",
                                fix="give the .onnx file itself, or a directory written by `deployconv export`")
        return path / name
    if path.suffix.lower() not in (".onnx", *ENGINE_SUFFIXES):
        raise BadInputError(f"{path}: not a model file deployconv knows",
                            fix="give a .onnx file, a TensorRT .plan/.engine, or an exported directory")
    return path


def load_runner(artifact: str | os.PathLike[str], *, runtime: str = "ort-cpu", threads: int | None = None,
                plugins: list[str] | None = None, allow_host_code: bool = False) -> Runner:
    """A runner (not yet active) for an artifact: `.onnx` or DIR/model.onnx -> OrtRunner (`ort-cpu`, or
    `ort-cuda` where onnxruntime-gpu is present); `.plan`/`.engine` or `--runtime trt` -> TrtRunner (TensorRT and
    CUDA needed; MissingEnvironmentError, exit 3, without them). `plugins` and `allow_host_code` are for
    TensorRT only; given with an ONNX Runtime runtime they are a BadInputError rather than silently unused."""
    path = resolve_artifact(artifact, runtime)
    if runtime == "trt" or path.suffix.lower() in ENGINE_SUFFIXES:
        import importlib.util

        if importlib.util.find_spec("tensorrt") is None:
            raise MissingEnvironmentError(f"TensorRT is not installed, so {path} cannot run here",
                                          fix="install TensorRT (JetPack ships it; on x86 `pip install tensorrt`), "
                                              "or run the ONNX model: `deployconv bench DIR|MODEL.onnx --runtime ort-cpu`")
        if path.suffix.lower() not in ENGINE_SUFFIXES:
            raise BadInputError(f"{path} is an ONNX model, not a TensorRT engine",
                                fix=f"build one first: `deployconv build-engine {path} --target TARGET`")
        return TrtRunner(path, plugins=plugins, allow_host_code=allow_host_code)
    if plugins or allow_host_code:
        raise BadInputError("--plugins and --allow-host-code are for TensorRT engines (--runtime trt)",
                            fix="drop them, or bench the engine.plan with --runtime trt")
    providers = RUNTIMES[runtime]
    resolve_providers(providers)  # fail early (exit 3) when ort-cuda is asked for and absent
    return OrtRunner(path, threads=threads, providers=providers)
