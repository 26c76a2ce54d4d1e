"""The conditions that go beside every number (device, runtime and version, precision, shapes, threads),
derived from what report.json and manifest.json record. Pure.

report.json names parity stages but does not record their runtime; `stage_runtime` reads it from the stage
name the pipeline gives ('train-fp32', 'onnx-raw (ort-cpu)', ...) and says so on the page.
"""

from __future__ import annotations

import re
from typing import Any

from deployconv.core.artifacts import Manifest
from deployconv.core.artifacts.names import MODEL_ONNX

PRECISION_TOKENS = ("fp64", "fp32", "fp16", "bf16", "int8")


def tool(manifest: Manifest, name: str) -> str | None:
    return manifest.tools.get(name)


def _with_version(name: str, version: str | None) -> str:
    return f"{name} {version}" if version else f"{name} (version not recorded)"


def stage_runtime(stage: str, manifest: Manifest) -> str:
    """Runtime and device of a parity stage, from its name; 'not recorded' when the name does not say."""
    s = stage.lower()
    if "ort-cpu" in s or "onnxruntime" in s:
        return _with_version("ONNX Runtime", tool(manifest, "onnxruntime")) + ", CPU"
    if "ort-cuda" in s:
        return _with_version("ONNX Runtime", tool(manifest, "onnxruntime")) + ", CUDA"
    if re.search(r"\btrt\b|tensorrt", s):
        return _with_version("TensorRT", tool(manifest, "tensorrt")) + ", GPU"
    if s.startswith("reference"):
        return "recorded outputs (reference.npz)"
    if s.startswith(("train-", "deploy-")) or "torch" in s:
        return _with_version("PyTorch", tool(manifest, "torch")) + ", CPU"
    return "not recorded"


def stage_precision(stage: str, target_precision: str | None) -> str:
    """fp64/fp32/... when the stage name says; otherwise the target's precision (the exported graph's)."""
    found = [t for t in PRECISION_TOKENS if t in stage.lower()]
    if found:
        return found[0]
    return target_precision or "not recorded"


def input_shape(manifest: Manifest, batch: int | None) -> str:
    """'1x3x224x224 float32' from the manifest's preprocessing input size (or its ONNX inputs)."""
    size = manifest.input_preprocessing.get("input_size")
    inputs = manifest.io.get("inputs") or []
    dtype = inputs[0].get("dtype", "") if inputs else ""
    if size:
        dims = [batch if batch is not None else "N", *size]
    elif inputs:
        dims = [batch if batch is not None and i == 0 else d for i, d in enumerate(inputs[0].get("shape") or [])]
    else:
        return "not recorded"
    return "x".join(str(d) for d in dims) + (f" {dtype}" if dtype else "")


def parity_inputs(parity: dict[str, Any], manifest: Manifest) -> list[str]:
    """One line per input set the chain ran on (random batches, images, a recorded reference)."""
    lines = []
    for kind, d in (parity.get("inputs") or {}).items():
        if kind == "random" and isinstance(d, dict):
            lines.append(f"{d.get('batches', '?')} random batch(es) of {input_shape(manifest, d.get('batch'))}, "
                         f"{d.get('distribution', 'random')}, seed {d.get('seed', '?')}")
        elif kind == "images" and isinstance(d, dict):
            lines.append(f"{d.get('used', '?')} images from {d.get('dir', '?')} through the model's preprocessing "
                         f"({d.get('skipped', 0)} skipped)")
        else:
            lines.append(f"{kind}: {d}")
    return lines or ["not recorded"]


def host(fp: dict[str, Any] | None) -> str:
    """The machine a latency run (or the export) ran on, from a fingerprint: the accelerator where one was
    used, then the CPU and the OS."""
    if not fp:
        return "not recorded"
    parts = []
    if fp.get("device"):
        parts.append(str(fp["device"]) + (f" (NVIDIA driver {fp['driver']})" if fp.get("driver") else ""))
    cpu = str(fp.get("cpu_model") or "CPU model not recorded")
    if fp.get("machine"):
        cpu += f", {fp['machine']}"
    if fp.get("cpu_logical_cores") is not None:
        cpu += f", {fp['cpu_logical_cores']} logical cores ({fp.get('cpu_affinity', '?')} usable)"
    parts.append(("host " if fp.get("device") else "") + cpu)
    if fp.get("os"):
        parts.append(str(fp["os"]))
    return "; ".join(parts)


def run_runtime(run: dict[str, Any]) -> str:
    """'onnxruntime 1.31.1 (CPUExecutionProvider)' for a bench result."""
    c, fp = run.get("conditions") or {}, run.get("fingerprint") or {}
    name = c.get("runtime") or fp.get("runtime") or "runtime not recorded"
    version = c.get("runtime_version") or fp.get("runtime_version")
    providers = c.get("providers") or fp.get("providers") or []
    return _with_version(name, version) + (f" ({', '.join(providers)})" if providers else "")


def run_inputs(run: dict[str, Any]) -> str:
    inputs = (run.get("conditions") or {}).get("inputs") or (run.get("fingerprint") or {}).get("inputs") or {}
    if not inputs:
        return "not recorded"
    return ", ".join(f"{n}: {d.get('dtype', '?')}[{'x'.join(map(str, d.get('shape', [])))}]"
                     for n, d in inputs.items())


def run_threads(run: dict[str, Any]) -> str:
    threads = (run.get("conditions") or {}).get("threads") or (run.get("fingerprint") or {}).get("threads")
    return "not recorded" if threads is None else f"{threads} intra-op"


def run_timing(run: dict[str, Any]) -> str:
    c, n = run.get("conditions") or {}, (run.get("stats") or {}).get("count")
    if "timed_elapsed_s" not in c:
        return f"{n} runs" if n is not None else "not recorded"
    text = f"{n} runs in {c['timed_elapsed_s']:.3g} s"
    if c.get("mode") == "duration" and c.get("duration_s_requested") is not None:
        text += f" (asked {c['duration_s_requested']:g} s)"
    if "warmup_elapsed_s" in c:
        text += f", after {c['warmup_elapsed_s']:.3g} s warm-up ({c.get('warmup_iters', '?')} runs)"
    return text


def run_load(run: dict[str, Any]) -> str:
    load = (run.get("fingerprint") or {}).get("load_avg")
    return "not recorded" if not load else " / ".join(f"{x:.2f}" for x in load) + " (1/5/15 min, at start)"


def run_precision(run: dict[str, Any], manifest: Manifest, target: dict[str, Any]) -> str:
    """The timed inputs' dtype and, when the run timed this export's own model.onnx (same sha256), the
    target's precision; a PyTorch run records only its input dtype."""
    c, fp = run.get("conditions") or {}, run.get("fingerprint") or {}
    text = f"inputs {c.get('dtype') or 'not recorded'}"
    graph = c.get("graph_sha256") or fp.get("graph_sha256")
    if graph and graph == manifest.files.get(MODEL_ONNX):
        text += f"; graph: this export's model.onnx, target {target.get('name')} ({target.get('precision')})"
    elif graph:
        text += "; graph: not this export's model.onnx (sha256 differs)"
    return text
