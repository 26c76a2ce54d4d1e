"""Every custom op deployconv exports, and how to lower each one to ONNX.

Each op file (ska.py, deform_conv.py, dcnv4.py) defines an `ENTRY: OpEntry`: its torch.library op, its
lowerings ("standard": ONNX-domain ops only, runs on ONNX Runtime; "plugin": one node for the TensorRT
plugin described in deployconv/plugins/table.py) and the minimum opset of each. The exporter asks this
module for a translation table given the lowering a Target chose per op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from deployconv.errors import BadInputError

LOWERINGS = ("standard", "plugin")
_OP_MODULES = ("deployconv.ops.ska", "deployconv.ops.deform_conv", "deployconv.ops.dcnv4")


@dataclass(frozen=True)
class OpEntry:
    name: str  # short name used in targets and manifests: "ska", "deform_conv2d", "dcnv4"
    qualname: str  # torch.library name: "deployconv::ska"
    lowerings: dict[str, Callable]  # lowering name -> onnxscript translation function
    min_opset: dict[str, int]

    @property
    def torch_op(self):
        import torch

        ns, name = self.qualname.split("::")
        return getattr(getattr(torch.ops, ns), name).default


def entries() -> dict[str, OpEntry]:
    out = {}
    for mod in _OP_MODULES:
        entry = import_module(mod).ENTRY
        out[entry.name] = entry
    return out


def translation_table(choice: dict[str, str], opset: int) -> dict:
    """{torch op overload: onnxscript function} for the chosen lowering of every op.

    Raises BadInputError when a lowering is unknown or the opset is below the lowering's minimum."""
    from deployconv.plugins.onnx_schemas import register_plugin_schemas

    register_plugin_schemas()
    table = {}
    for name, entry in entries().items():
        lowering = choice.get(name, "standard")
        if lowering not in entry.lowerings:
            raise BadInputError(f"op {name} has no {lowering!r} lowering",
                                fix=f"choose one of {', '.join(entry.lowerings)}")
        need = entry.min_opset[lowering]
        if opset < need:
            raise BadInputError(f"opset {opset} is too low for {name} ({lowering} lowering)",
                                why=f"it needs ONNX opset >= {need}", fix=f"pass --opset {need} or higher")
        table[entry.torch_op] = entry.lowerings[lowering]
    return table
