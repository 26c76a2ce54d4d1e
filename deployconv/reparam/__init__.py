"""Structural reparameterization: pure fusion math, the model-wide walker, and ConvBN Tune mode."""

from typing import Any

from deployconv.reparam.report import ReparamReport, RewriteRecord
from deployconv.reparam.walker import reparameterize

__all__ = ["ReparamReport", "RewriteRecord", "reparameterize", "tune_mode"]


def __getattr__(name: str) -> Any:
    if name == "tune_mode":
        from deployconv.reparam.tune_mode import tune_mode

        return tune_mode
    raise AttributeError(name)
