"""What a custom op's registration is (`OpEntry`) and the one helper its plugin lowering emits (`plugin_node`).

Each op file (ska.py, deform_conv.py, dcnv4.py) defines an `ENTRY: OpEntry`: its torch.library op, its
lowerings ("standard": ONNX-domain ops only, runs on ONNX Runtime; "plugin": one node for the TensorRT
plugin described in deployconv/plugins/table.py) and the minimum opset of each. The table of every op
(deployconv.ops.lowering_table) imports the op files, which import this module: registration runs one way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from deployconv.plugins.onnx_schemas import register_plugin_schemas
from deployconv.plugins.table import ONNX_DOMAIN, ONNX_DOMAIN_VERSION, plugin_for_op

LOWERINGS = ("standard", "plugin")


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


_ATTR_TYPES = {"int": (int,), "ints": (list, tuple), "float": (float, int), "string": (str,)}


def plugin_node(qualname: str, inputs: Sequence, attrs: dict):
    """Emit ONE plugin node for the torch.library op `qualname`, from inside a traced translation function.

    op_type, domain, plugin_version and plugin_namespace come from deployconv/plugins/table.py; `attrs` must be
    exactly the table's attributes for that plugin (names and kinds), so a lowering cannot drift from the table
    the C++ creators read. `inputs` in the table's order; trailing None inputs are omitted."""
    import onnxscript

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
