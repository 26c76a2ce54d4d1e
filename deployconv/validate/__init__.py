"""Validation: the parity chain (metrics, tolerance budgets, attribution), latency statistics and the
environment fingerprint; later the baseline gate and reports.

Light and torch-free on import: every front door is resolved lazily on first attribute access, so
`deployconv.validate.latency` & co. load on a device without PyTorch and parity code is never pulled in
eagerly.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "run_chain": "deployconv.validate.parity",
    "first_divergence": "deployconv.validate.bisect",
    "compare": "deployconv.validate.metrics",
    "compare_outputs": "deployconv.validate.metrics",
    "CompareResult": "deployconv.validate.metrics",
    "benchmark": "deployconv.validate.latency",
    "summarize": "deployconv.validate.latency",
    "BenchResult": "deployconv.validate.latency",
    "LatencyStats": "deployconv.validate.latency",
    "Fingerprint": "deployconv.validate.fingerprint",
    "comparable": "deployconv.validate.fingerprint",
    "gate": "deployconv.validate.gate",
    "GateResult": "deployconv.validate.gate",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'deployconv.validate' has no attribute {name!r}")
