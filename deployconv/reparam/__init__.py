"""Structural reparameterization: pure fusion math, the model-wide walker, and ConvBN Tune mode."""

from deployconv.reparam.report import ReparamReport, RewriteRecord
from deployconv.reparam.tune_mode import tune_mode
from deployconv.reparam.walker import reparameterize

__all__ = ["ReparamReport", "RewriteRecord", "reparameterize", "tune_mode"]
