"""Precision transforms of an fp32 ONNX graph (fp16 mixed precision, int8 Q/DQ). Imports are lazy: each
name loads its own module on first use."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "to_fp16": "deployconv.export.precision.fp16",
    "convert_fp16": "deployconv.export.precision.fp16",
    "guard_fp16": "deployconv.export.precision.fp16_guard",
    "Fp16Report": "deployconv.export.precision.fp16_guard",
    "FP16_BUDGET": "deployconv.export.precision.fp16_guard",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
