"""The single definition of every deployconv TensorRT plugin: name, version, namespace, I/O and attributes.

Used by the ONNX `plugin` lowerings (node op_type = plugin name, attributes = plugin fields), by the manifest,
by the ONNX schema registration (so onnx.checker validates our nodes), and, in #5, checked against the C++
creators' field lists. Torch-free on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

AttrKind = Literal["int", "ints", "float", "string"]

ONNX_DOMAIN = "deployconv"
ONNX_DOMAIN_VERSION = 1
NAMESPACE = "deployconv"


@dataclass(frozen=True)
class PluginAttr:
    name: str
    kind: AttrKind
    doc: str = ""


@dataclass(frozen=True)
class PluginSpec:
    op: str  # torch.library qualname, e.g. "deployconv::ska"
    name: str  # TensorRT plugin name == ONNX op_type
    version: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: tuple[PluginAttr, ...] = ()
    optional_inputs: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ("float", "float16")
    namespace: str = NAMESPACE
    doc: str = ""
    layouts: tuple[str, ...] = field(default=("NCHW",))

    def attr_names(self) -> list[str]:
        return [a.name for a in self.attrs]


PLUGINS: dict[str, PluginSpec] = {
    s.name: s
    for s in (
        PluginSpec(
            op="deployconv::ska",
            name="DeployconvSKA",
            version="1",
            inputs=("x", "w"),
            outputs=("y",),
            doc="LSNet SKA: y[b,c] = sum_k x[b,c] shifted by tap k * w[b, c mod G, k]; 3x3, zero padded, G = w.shape[1].",
        ),
        PluginSpec(
            op="deployconv::deform_conv2d",
            name="DeployconvDeformConv2d",
            version="1",
            # ONNX DeformConv's input order (X, W, offset, B, mask), so both lowerings share one signature.
            inputs=("x", "weight", "offset", "bias", "mask"),
            optional_inputs=("bias", "mask"),
            outputs=("y",),
            attrs=(
                PluginAttr("strides", "ints"),
                PluginAttr("pads", "ints", "begin_h, begin_w, end_h, end_w (symmetric)"),
                PluginAttr("dilations", "ints"),
                PluginAttr("group", "int"),
                PluginAttr("offset_group", "int"),
            ),
            doc="Modulated deformable conv (DCNv2), torchvision/ONNX DeformConv semantics; fp32 coordinates.",
        ),
        PluginSpec(
            op="deployconv::dcnv4",
            name="DeployconvDCNv4",
            version="1",
            inputs=("value", "offset_mask"),
            outputs=("y",),
            attrs=(
                PluginAttr("kernel_shape", "ints"),
                PluginAttr("strides", "ints"),
                PluginAttr("pads", "ints", "ONNX order [pad_h, pad_w, pad_h, pad_w] (symmetric)"),
                PluginAttr("dilations", "ints"),
                PluginAttr("group", "int"),
                PluginAttr("group_channels", "int"),
                PluginAttr("offset_scale", "float"),
                PluginAttr("remove_center", "int"),
            ),
            layouts=("NHWC",),
            dtypes=("float", "float16", "bfloat16"),
            doc="DCNv4 core op (OpenGVLab semantics): NHWC value, packed offsets+unnormalised weights.",
        ),
    )
}


def plugin_for_op(op: str) -> PluginSpec:
    """The spec whose torch.library op is `op` ("deployconv::ska")."""
    for spec in PLUGINS.values():
        if spec.op == op:
            return spec
    raise KeyError(op)
