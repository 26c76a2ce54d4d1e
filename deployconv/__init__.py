"""deployconv: model zoo -> verified reparameterization -> ONNX/TensorRT with parity proofs.

`import deployconv` must work on a device without PyTorch (a Jetson with only TensorRT and numpy), so the
torch-backed front doors are resolved lazily on first attribute access.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from deployconv.core.errors import DeployconvError
from deployconv.core.version import __version__
from deployconv.models.registry import create_model, list_models  # torch-free: a family loads on first use

_LAZY = {  # these load torch on import
    "reparameterize": "deployconv.reparam",
    "tune_mode": "deployconv.reparam",
}

__all__ = ["DeployconvError", "__version__", "create_model", "list_models", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'deployconv' has no attribute {name!r}")
