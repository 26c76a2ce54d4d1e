"""Register an ONNX OpSchema for every plugin in the table.

With the schemas registered, onnxscript can emit our plugin nodes while tracing a translation function, and
onnx.checker / shape inference validate them like any other op. Generated from table.py, never by hand.
"""

from __future__ import annotations

import onnx
from onnx.defs import OpSchema

from deployconv.plugins.table import ONNX_DOMAIN, ONNX_DOMAIN_VERSION, PLUGINS, PluginSpec

_ATTR = {
    "int": OpSchema.AttrType.INT,
    "ints": OpSchema.AttrType.INTS,
    "float": OpSchema.AttrType.FLOAT,
    "string": OpSchema.AttrType.STRING,
}
_DTYPES = {"float": "tensor(float)", "float16": "tensor(float16)", "bfloat16": "tensor(bfloat16)"}
_done = False


def _schema(spec: PluginSpec) -> OpSchema:
    # fp32_inputs (SKA's epilogue scale/shift) are float32 whatever T is, so an fp16 node still checks.
    inputs = [
        OpSchema.FormalParameter(n, _DTYPES["float"] if n in spec.fp32_inputs else "T",
                                 param_option=OpSchema.FormalParameterOption.Optional
                                 if n in spec.all_optional() else OpSchema.FormalParameterOption.Single)
        for n in spec.node_inputs()
    ]
    outputs = [OpSchema.FormalParameter(n, "T") for n in spec.outputs]
    attrs = [OpSchema.Attribute(a.name, _ATTR[a.kind], a.doc, required=False) for a in spec.attrs]
    attrs += [OpSchema.Attribute("plugin_version", OpSchema.AttrType.STRING, "TensorRT plugin version", required=False),
              OpSchema.Attribute("plugin_namespace", OpSchema.AttrType.STRING, "TensorRT plugin namespace",
                                 required=False)]
    return OpSchema(spec.name, ONNX_DOMAIN, ONNX_DOMAIN_VERSION, doc=spec.doc, inputs=inputs, outputs=outputs,
                    type_constraints=[("T", [_DTYPES[d] for d in spec.dtypes], "float types")], attributes=attrs)


def register_plugin_schemas() -> None:
    """Idempotent: registers each plugin's schema once per process."""
    global _done
    if _done:
        return
    for spec in PLUGINS.values():
        try:
            onnx.defs.get_schema(spec.name, ONNX_DOMAIN_VERSION, ONNX_DOMAIN)
        except onnx.defs.SchemaError:
            onnx.defs.register_schema(_schema(spec))
    _done = True
