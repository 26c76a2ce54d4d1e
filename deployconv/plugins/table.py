"""The single definition of every deployconv TensorRT plugin: name, version, namespace, I/O and attributes.

Used by the ONNX `plugin` lowerings (node op_type = plugin name, attributes = plugin fields), by the manifest,
by the ONNX schema registration (so onnx.checker validates our nodes), and by the C++ creators through the
generated header plugins_cpp/trt/plugin_table.h (tools/gen_plugin_header.py; a test fails when it is stale).
Torch-free on purpose.
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
    length: int | None = None  # element count of an "ints" attribute; the C++ creator refuses any other

    def count(self) -> int:
        """Elements the C++ creator expects: 1 for a scalar, `length` for a list (-1: any)."""
        if self.kind in ("int", "float"):
            return 1
        return -1 if self.length is None else self.length


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
    # Trailing optional inputs that a graph fusion may append (SKA's LSConv epilogue); the op's own lowering
    # never emits them, so `inputs` stays what the lowering passes and these come after it on the node.
    epilogue_inputs: tuple[str, ...] = ()
    # Inputs that are float32 whatever the plugin's data type T is (per-channel epilogue scale/shift).
    fp32_inputs: tuple[str, ...] = ()

    def attr_names(self) -> list[str]:
        return [a.name for a in self.attrs]

    def node_inputs(self) -> tuple[str, ...]:
        """Every input a node of this plugin may carry, in order: the lowering's inputs, then the epilogue's."""
        return self.inputs + self.epilogue_inputs

    def all_optional(self) -> tuple[str, ...]:
        return self.optional_inputs + self.epilogue_inputs

    def min_inputs(self) -> int:
        """Inputs are positional and only trailing ones may be absent: the count up to the first optional one."""
        names = self.node_inputs()
        return next((i for i, n in enumerate(names) if n in self.all_optional()), len(names))


PLUGINS: dict[str, PluginSpec] = {
    s.name: s
    for s in (
        PluginSpec(
            op="deployconv::ska",
            name="DeployconvSKA",
            version="1",
            inputs=("x", "w"),
            outputs=("y",),
            # Fused LSConv epilogue y = scale[c] * ska + shift[c] + residual (the BN fold and the block's
            # residual add): scale/shift fp32 (C,), residual like x. A node carries a prefix of the five inputs.
            epilogue_inputs=("scale", "shift", "residual"),
            fp32_inputs=("scale", "shift"),
            doc="LSNet SKA: y[b,c] = sum_k x[b,c] shifted by tap k * w[b, c mod G, k]; 3x3, zero padded, G = w.shape[1]. "
                "Optional fused epilogue: y = scale[c] * y + shift[c] + residual.",
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
                PluginAttr("strides", "ints", length=2),
                PluginAttr("pads", "ints", "begin_h, begin_w, end_h, end_w (symmetric)", length=4),
                PluginAttr("dilations", "ints", length=2),
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
                PluginAttr("kernel_shape", "ints", length=2),
                PluginAttr("strides", "ints", length=2),
                PluginAttr("pads", "ints", "ONNX order [pad_h, pad_w, pad_h, pad_w] (symmetric)", length=4),
                PluginAttr("dilations", "ints", length=2),
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
