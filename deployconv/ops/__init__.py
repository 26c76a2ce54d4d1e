"""Custom ops: one file per op, each with its PyTorch reference math, a `torch.library` op (so exporters see one
node), its ONNX lowerings (`ENTRY`, see registry.py) and the nn.Module models use.

Importing this package registers `torch.ops.deployconv.ska` and `torch.ops.deployconv.deform_conv2d`; ONNX
tooling (onnx, onnxscript) is imported only when a lowering runs.
"""

from deployconv.ops.deform_conv import ModulatedDeformConv2dPack, deform_conv2d
from deployconv.ops.ska import SKA, ska

__all__ = ["SKA", "ModulatedDeformConv2dPack", "deform_conv2d", "ska"]
