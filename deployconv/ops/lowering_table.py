"""Every custom op deployconv exports, and the translation table the exporter hands to torch.onnx: the lowering
a Target chose per op ("standard" or "plugin"), held to each op's minimum opset. Imports the op files (each
registers its torch.library op and defines its `ENTRY`), above deployconv.ops.registry which they import.
"""

from __future__ import annotations

from deployconv.core.errors import BadInputError
from deployconv.ops.dcnv4 import ENTRY as DCNV4
from deployconv.ops.deform_conv import ENTRY as DEFORM_CONV
from deployconv.ops.registry import OpEntry
from deployconv.ops.ska import ENTRY as SKA
from deployconv.plugins.onnx_schemas import register_plugin_schemas

ENTRIES: tuple[OpEntry, ...] = (SKA, DEFORM_CONV, DCNV4)


def entries() -> dict[str, OpEntry]:
    """Every op's entry by its short name."""
    return {e.name: e for e in ENTRIES}


def translation_table(choice: dict[str, str], opset: int, used: set[str] | None = None) -> dict:
    """{torch op overload: onnxscript function} for the chosen lowering of every op.

    `used`: qualnames of the ops the model actually calls (from torch.export); only those are held to their
    minimum opset, so a model without DeformConv can export at opset 18. Raises BadInputError when a lowering
    is unknown or the opset is below a used op's minimum."""
    register_plugin_schemas()
    table = {}
    for name, entry in entries().items():
        lowering = choice.get(name, "standard")
        if lowering not in entry.lowerings:
            raise BadInputError(f"op {name} has no {lowering!r} lowering",
                                fix=f"choose one of {', '.join(entry.lowerings)}")
        need = entry.min_opset[lowering]
        if used is not None and entry.qualname not in used:
            continue
        if opset < need:
            raise BadInputError(f"opset {opset} is too low for {name} ({lowering} lowering)",
                                why=f"it needs ONNX opset >= {need}", fix=f"pass --opset {need} or higher")
        table[entry.torch_op] = entry.lowerings[lowering]
    return table
