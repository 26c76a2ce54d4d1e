"""A complete, schema-valid manifest for tests that need a Manifest but not an export (pure tests of readers)."""

from __future__ import annotations

from typing import Any

from deployconv.core.artifacts import Manifest


def manifest_dict(**over: Any) -> dict[str, Any]:
    """The manifest.json an fp32 export of a one-input image model writes, with `over` replacing keys."""
    data: dict[str, Any] = {
        "format": "deployconv.export/1", "model": "tiny", "model_source_sha256": None, "weights": None,
        "weights_sha256": None, "allow_missing": [], "reproducible": True, "init_seed": 0, "target": "trt-fp32",
        "target_spec": None, "runtime": "tensorrt", "precision": "fp32", "io_dtype": "float32", "opset": 17,
        "batch": None, "exporter": "torchscript", "exporter_fallback_reason": None, "lowering": {}, "plugins": [],
        "ort_model": "model.onnx", "precision_report": None, "dla": None, "engine": None,
        "io": {"inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", 4]}],
               "outputs": [{"name": "output", "dtype": "float32", "shape": ["batch", 4]}]},
        "io_spec": None, "input_preprocessing": {"input_size": [4]}, "parity_passed": True,
        "files": {}, "tools": {"deployconv": "0"},
    }
    data.update(over)
    return data


def manifest(**over: Any) -> Manifest:
    return Manifest.from_dict(manifest_dict(**over))
