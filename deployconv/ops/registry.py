"""Every custom op deployconv exports, and how to lower each one to ONNX.

Each op file (ska.py, deform_conv.py, dcnv4.py) defines an `ENTRY: OpEntry`: its torch.library op, its
lowerings ("standard": ONNX-domain ops only, runs on ONNX Runtime; "plugin": one node for the TensorRT
plugin described in deployconv/plugins/table.py) and the minimum opset of each. The exporter asks this
module for a translation table given the lowering a Target chose per op.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import import_module

from deployconv.core.errors import BadInputError

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


def translation_table(choice: dict[str, str], opset: int, used: set[str] | None = None) -> dict:
    """{torch op overload: onnxscript function} for the chosen lowering of every op.

    `used`: qualnames of the ops the model actually calls (from torch.export); only those are held to their
    minimum opset, so a model without DeformConv can export at opset 18. Raises BadInputError when a lowering
    is unknown or the opset is below a used op's minimum."""
    from deployconv.plugins.onnx_schemas import register_plugin_schemas

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


_ATTR_TYPES = {"int": (int,), "ints": (list, tuple), "float": (float, int), "string": (str,)}


def plugin_node(qualname: str, inputs: Sequence, attrs: dict):
    """Emit ONE plugin node for the torch.library op `qualname`, from inside a traced translation function.

    op_type, domain, plugin_version and plugin_namespace come from deployconv/plugins/table.py; `attrs` must be
    exactly the table's attributes for that plugin (names and kinds), so a lowering cannot drift from the table
    the C++ creators read. `inputs` in the table's order; trailing None inputs are omitted."""
    import onnxscript

    from deployconv.plugins.onnx_schemas import register_plugin_schemas
    from deployconv.plugins.table import ONNX_DOMAIN, ONNX_DOMAIN_VERSION, plugin_for_op

    spec = plugin_for_op(qualname)
    if sorted(attrs) != sorted(spec.attr_names()):
        raise RuntimeError(f"{spec.name}: lowering attributes {sorted(attrs)} != plugin table {spec.attr_names()}")
    for a in spec.attrs:
        if not isinstance(attrs[a.name], _ATTR_TYPES[a.kind]) or isinstance(attrs[a.name], bool):
            raise RuntimeError(f"{spec.name}: attribute {a.name}={attrs[a.name]!r} is not of kind {a.kind}")
    if len(inputs) != len(spec.inputs):
        raise RuntimeError(f"{spec.name}: {len(inputs)} inputs given, the table has {spec.inputs}")
    register_plugin_schemas()
    plugin = onnxscript.values.Opset(ONNX_DOMAIN, ONNX_DOMAIN_VERSION)
    return getattr(plugin, spec.name)(*inputs, **attrs, plugin_version=spec.version, plugin_namespace=spec.namespace)
