"""Custom ops: one file per op, each with its PyTorch reference math and the nn.Module models use."""

from deployconv.ops.ska import SKA, ska

__all__ = ["SKA", "ska"]
