"""DCNv2: modulated deformable convolution, with torchvision's `deform_conv2d` semantics.

For output pixel (oy, ox), kernel point p = i * kw + j and input channel c in offset group g:

    y = oy * sh - ph + i * dh + offset[n, 2 * (g * K + p), oy, ox]          (K = kh * kw)
    x = ox * sw - pw + j * dw + offset[n, 2 * (g * K + p) + 1, oy, ox]
    out[n, o, oy, ox] = bias[o] + sum_{c in group(o), i, j} weight[o, c', i, j]
                                  * mask[n, g * K + p, oy, ox] * bilinear(input[n, c], y, x)

Offsets are (dy, dx) pairs per kernel point; offset_groups = offset channels / (2K) and the input channels
are split into that many consecutive blocks; weight groups = in channels / weight.shape[1]. Bilinear sampling
reads zero outside the image: each of the four corners outside contributes 0 (a point with y <= -1, y >= H,
x <= -1 or x >= W is therefore fully zero). ONNX `DeformConv` (opset 19) has the same layout and sampling.

This file is the PyTorch reference (the ground truth every lowering and plugin is compared with): gather-based
bilinear sampling into columns, then one grouped matmul. It runs on any device; sampling coordinates and
accumulation are fp32 (fp64 for fp64 inputs), the result has the input's dtype. It also holds the
`deployconv::deform_conv2d` torch.library op that `ModulatedDeformConv2dPack` calls (so torch.export and the
ONNX exporter see one node) and the op's ONNX lowerings (`ENTRY`): `standard` (ONNX DeformConv) and `plugin`.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from deployconv.core.errors import BadInputError
from deployconv.layers.fusion import bn_stats, fuse_conv_bn
from deployconv.ops.registry import OpEntry, plugin_node

QUALNAME = "deployconv::deform_conv2d"

_FIX = (
    "pass input (N, C, H, W), weight (O, C/groups, kh, kw), offset (N, 2*offset_groups*kh*kw, Ho, Wo), "
    "mask (N, offset_groups*kh*kw, Ho, Wo) and bias (O,), as torchvision.ops.deform_conv2d takes them"
)


def _pair(v: int | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, int) else tuple(v)
    if len(t) != 2 or not all(isinstance(e, int) for e in t):
        raise BadInputError(f"deform_conv2d: {name}={v!r}", why=f"{name} must be an int or a pair of ints",
                            fix=_FIX)
    return t  # type: ignore[return-value]


def _bad(what: str, why: str) -> BadInputError:
    return BadInputError(f"deform_conv2d: {what}", why=why, fix=_FIX)


def _check(
    input: Tensor, offset: Tensor, weight: Tensor, bias: Tensor | None, mask: Tensor | None,
    stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int],
) -> tuple[int, int, int, int]:
    """Validate shapes; return (groups, offset_groups, Ho, Wo)."""
    tensors = {"input": input, "offset": offset, "weight": weight, "bias": bias, "mask": mask}
    for name, t in tensors.items():
        if t is None:
            continue
        if not t.is_floating_point():
            raise _bad(f"{name} is {t.dtype}", "all tensors must be floating point")
        if t.device != input.device:
            raise _bad(f"{name} is on {t.device} and input on {input.device}", "all tensors must be on one device")
    if input.dim() != 4 or weight.dim() != 4 or offset.dim() != 4:
        raise _bad(
            f"input {tuple(input.shape)}, weight {tuple(weight.shape)}, offset {tuple(offset.shape)}",
            "input, weight and offset must be 4-D",
        )
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise _bad(f"stride={stride}, padding={padding}, dilation={dilation}",
                   "stride and dilation must be >= 1 and padding >= 0")
    n, c, h, w = input.shape
    o, cg, kh, kw = weight.shape
    if cg == 0 or c % cg:
        raise _bad(f"weight {tuple(weight.shape)} for {c} input channels",
                   "weight.shape[1] (in channels per group) must divide the input channels")
    groups = c // cg
    if o % groups:
        raise _bad(f"{o} output channels in {groups} groups", "the groups must divide the output channels")
    ho = (h + 2 * padding[0] - (dilation[0] * (kh - 1) + 1)) // stride[0] + 1
    wo = (w + 2 * padding[1] - (dilation[1] * (kw - 1) + 1)) // stride[1] + 1
    if ho < 1 or wo < 1:
        raise _bad(f"input {h}x{w} with kernel {kh}x{kw}, padding {padding}, dilation {dilation}",
                   "the output would be empty")
    k = kh * kw
    oc = offset.shape[1]
    if oc == 0 or oc % (2 * k) or c % (oc // (2 * k)):
        raise _bad(f"offset has {oc} channels for a {kh}x{kw} kernel and {c} input channels",
                   f"offset channels must be 2*{k}*offset_groups with offset_groups dividing {c}")
    og = oc // (2 * k)
    if offset.shape[0] != n or tuple(offset.shape[2:]) != (ho, wo):
        raise _bad(f"offset {tuple(offset.shape)}", f"expected ({n}, {oc}, {ho}, {wo}): the output's size")
    if mask is not None and tuple(mask.shape) != (n, og * k, ho, wo):
        raise _bad(f"mask {tuple(mask.shape)}", f"expected ({n}, {og * k}, {ho}, {wo})")
    if bias is not None and tuple(bias.shape) != (o,):
        raise _bad(f"bias {tuple(bias.shape)}", f"expected ({o},)")
    return groups, og, ho, wo


def _columns(
    input: Tensor, offset: Tensor, mask: Tensor | None, kh: int, kw: int, og: int, ho: int, wo: int,
    stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int], acc: torch.dtype,
) -> Tensor:
    """Modulated bilinear samples (N, C, K, Ho*Wo) in dtype `acc`."""
    n, c, h, w = input.shape
    k, L = kh * kw, ho * wo
    dev = input.device
    # Base sampling positions per kernel point and output pixel: (K, Ho, Wo) each.
    ky, kx = torch.meshgrid(torch.arange(kh, device=dev, dtype=acc) * dilation[0],
                            torch.arange(kw, device=dev, dtype=acc) * dilation[1], indexing="ij")
    oy = torch.arange(ho, device=dev, dtype=acc) * stride[0] - padding[0]
    ox = torch.arange(wo, device=dev, dtype=acc) * stride[1] - padding[1]
    base_y = ky.reshape(k, 1, 1) + oy.view(1, ho, 1)
    base_x = kx.reshape(k, 1, 1) + ox.view(1, 1, wo)
    off = offset.to(acc).view(n, og, k, 2, ho, wo)
    y = (base_y + off[:, :, :, 0]).reshape(n, og, k * L)
    x = (base_x + off[:, :, :, 1]).reshape(n, og, k * L)
    m = None if mask is None else mask.to(acc).reshape(n, og, k * L)

    y0, x0 = torch.floor(y), torch.floor(x)
    ly, lx = y - y0, x - x0
    y0, x0 = y0.long(), x0.long()
    # The mask scales the sample, so it folds into the row weights once instead of into every corner.
    wy0, wy1 = (1 - ly, ly) if m is None else ((1 - ly) * m, ly * m)
    src = input.to(acc).reshape(n, og, c // og, h * w)
    cols = None
    for dy, wy in ((0, wy0), (1, wy1)):
        yi = y0 + dy
        in_y = (yi >= 0) & (yi < h)
        for dx, wx in ((0, 1 - lx), (1, lx)):
            xi = x0 + dx
            wt = wy * wx * (in_y & (xi >= 0) & (xi < w)).to(acc)
            idx = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).unsqueeze(2).expand(n, og, c // og, k * L)
            term = torch.gather(src, 3, idx) * wt.unsqueeze(2)
            cols = term if cols is None else cols + term
    return cols.view(n, c, k, L)


def deform_conv2d(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    mask: Tensor | None = None,
) -> Tensor:
    """Deformable convolution v2 (v1 when mask is None), same signature and result as torchvision's.

    See the module docstring for the exact math. Returns the input's dtype; differentiable.
    """
    stride, padding, dilation = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    groups, og, ho, wo = _check(input, offset, weight, bias, mask, stride, padding, dilation)
    acc = torch.float64 if torch.float64 in (input.dtype, offset.dtype, weight.dtype) else torch.float32
    n = input.shape[0]
    o, cg, kh, kw = weight.shape
    k = kh * kw
    cols = _columns(input, offset, mask, kh, kw, og, ho, wo, stride, padding, dilation, acc)
    # Grouped matmul: (G, O/G, C/G*K) @ (N, G, C/G*K, L) -> (N, G, O/G, L).
    out = torch.matmul(weight.to(acc).reshape(groups, o // groups, cg * k), cols.view(n, groups, cg * k, ho * wo))
    out = out.reshape(n, o, ho, wo)
    if bias is not None:
        out = out + bias.to(acc).view(1, o, 1, 1)
    return out.to(input.dtype)


# --- torch.library op: what models call, so that torch.export / the ONNX exporter see ONE node ---------------
# Arguments in ONNX DeformConv's order (X, W, offset, B, mask) with the attributes after them, so the `standard`
# lowering and the plugin map them one to one. `group` / `offset_group` are implied by the shapes; they are
# explicit (and checked) so that a lowering never has to read them off a shape.


@torch.library.custom_op(QUALNAME, mutates_args=())
def _deform_conv2d_op(
    x: Tensor, weight: Tensor, offset: Tensor, bias: Tensor | None, mask: Tensor | None,
    stride: list[int], padding: list[int], dilation: list[int], group: int, offset_group: int,
) -> Tensor:
    """`torch.ops.deployconv.deform_conv2d`: the reference `deform_conv2d`, bit for bit."""
    _check_op_args(x, weight, offset, bias, mask, stride, padding, dilation, group, offset_group)
    return deform_conv2d(x, offset, weight, bias, stride, padding, dilation, mask)


def _check_op_args(
    x: Tensor, weight: Tensor, offset: Tensor, bias: Tensor | None, mask: Tensor | None,
    stride: list[int], padding: list[int], dilation: list[int], group: int, offset_group: int,
) -> tuple[int, int]:
    """Validate like the reference, plus group / offset_group against the shapes; return (Ho, Wo)."""
    st, pd, dl = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    groups, og, ho, wo = _check(x, offset, weight, bias, mask, st, pd, dl)
    if (groups, og) != (group, offset_group):
        raise _bad(f"group={group}, offset_group={offset_group}",
                   f"the shapes imply group={groups} (weight {tuple(weight.shape)}) and offset_group={og} "
                   f"(offset {tuple(offset.shape)})")
    return ho, wo


@_deform_conv2d_op.register_fake
def _deform_conv2d_fake(x, weight, offset, bias, mask, stride, padding, dilation, group, offset_group):
    ho, wo = _check_op_args(x, weight, offset, bias, mask, stride, padding, dilation, group, offset_group)
    return x.new_empty((x.shape[0], weight.shape[0], ho, wo))


def _deform_conv2d_setup_context(ctx, inputs: tuple, output: Tensor) -> None:
    x, weight, offset, bias, mask, *attrs = inputs
    ctx.attrs = attrs
    ctx.has = (bias is not None, mask is not None)
    ctx.save_for_backward(x, weight, offset, *(t for t in (bias, mask) if t is not None))


def _deform_conv2d_backward(ctx, grad: Tensor) -> tuple:
    """Recompute the reference under autograd and differentiate it (first order; only the inputs are saved)."""
    saved = list(ctx.saved_tensors)
    x, weight, offset = saved[:3]
    rest = iter(saved[3:])
    bias = next(rest) if ctx.has[0] else None
    mask = next(rest) if ctx.has[1] else None
    stride, padding, dilation = ctx.attrs[:3]
    need = ctx.needs_input_grad[:5]
    with torch.enable_grad():
        leaves = [None if t is None else t.detach().requires_grad_(n)
                  for t, n in zip((x, weight, offset, bias, mask), need)]
        wanted = [t for t, n in zip(leaves, need) if n]
        out = deform_conv2d(leaves[0], leaves[2], leaves[1], leaves[3], stride, padding, dilation, leaves[4])
        grads = iter(torch.autograd.grad(out, wanted, grad))
    return (*(next(grads) if n else None for n in need), None, None, None, None, None)


_deform_conv2d_op.register_autograd(_deform_conv2d_backward, setup_context=_deform_conv2d_setup_context)


class ModulatedDeformConv2dPack(nn.Module):
    """DCNv2 that acts as a plain conv layer: it predicts its own offsets and mask (mmcv's name and layout).

    `conv_offset` (zero-initialised: the layer starts with zero offsets and mask 0.5) yields 3 * deform_groups * kh * kw
    channels, split into three equal chunks (o1, o2, m): offset = cat(o1, o2) read in the (dy, dx)-per-point
    layout, mask = sigmoid(m). Official detection checkpoints depend on exactly this split.
    Calls `torch.ops.deployconv.deform_conv2d`, so exporters see one node; `deployconv_leaf` makes graph
    tracers treat it as one op.
    """

    deployconv_leaf = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        deform_groups: int = 1,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if in_channels % groups or out_channels % groups or in_channels % deform_groups:
            raise BadInputError(
                f"ModulatedDeformConv2dPack({in_channels}, {out_channels}, groups={groups}, "
                f"deform_groups={deform_groups})",
                why="groups must divide both channel counts and deform_groups the input channels",
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride, self.padding = _pair(stride, "stride"), _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        self.groups, self.deform_groups = groups, deform_groups
        kh, kw = self.kernel_size
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, kh, kw, **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels, **factory))
        else:
            self.register_parameter("bias", None)
        self.conv_offset = nn.Conv2d(in_channels, 3 * deform_groups * kh * kw, self.kernel_size,
                                     stride=self.stride, padding=self.padding, dilation=self.dilation,
                                     bias=True, **factory)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_channels * self.kernel_size[0] * self.kernel_size[1])
        self.weight.uniform_(-bound, bound)
        if self.bias is not None:
            self.bias.zero_()
        self.conv_offset.weight.zero_()
        self.conv_offset.bias.zero_()

    def offset_mask(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(offset, mask) as fed to `deform_conv2d`."""
        o1, o2, m = torch.chunk(self.conv_offset(x), 3, dim=1)
        return torch.cat((o1, o2), dim=1), torch.sigmoid(m)

    def forward(self, x: Tensor) -> Tensor:
        offset, mask = self.offset_mask(x)
        return torch.ops.deployconv.deform_conv2d(x, self.weight, offset, self.bias, mask, list(self.stride),
                                                  list(self.padding), list(self.dilation), self.groups,
                                                  self.deform_groups)

    @torch.no_grad()
    def with_bn_folded(self, bn: nn.modules.batchnorm._BatchNorm) -> ModulatedDeformConv2dPack:
        """A copy computing bn(self(x)) (eval statistics): BN scales output channels, the op is linear in
        weight and bias. The offset branch is untouched (it reads the layer's input, not its output)."""
        w, b = fuse_conv_bn(self.weight, self.bias, bn_stats(bn))
        fused = copy.deepcopy(self)
        fused.weight = nn.Parameter(w.detach().clone())
        fused.bias = nn.Parameter(b.detach().clone())
        return fused

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
             f"padding={self.padding}, dilation={self.dilation}")
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.deform_groups != 1:
            s += f", deform_groups={self.deform_groups}"
        return s + f", bias={self.bias is not None}"


# --- ONNX lowerings (traced onnxscript: plain functions that add nodes to the exporter's graph) ---------------


def lower_standard(x, weight, offset, bias, mask, stride, padding, dilation, group, offset_group):
    """ONNX `DeformConv` (opset 19): same layout and sampling as torchvision; absent bias / mask stay omitted
    inputs. ORT 1.31 CPU runs it; TensorRT's parser (10.1+) maps it onto its ModulatedDeformConv2d plugin."""
    from onnxscript import opset19 as op

    kernel = [int(d) for d in weight.shape[2:]] if all(isinstance(d, int) for d in weight.shape[2:]) else None
    ph, pw = (int(p) for p in padding)
    return op.DeformConv(x, weight, offset, bias, mask, dilations=[int(d) for d in dilation], group=int(group),
                         kernel_shape=kernel, offset_group=int(offset_group), pads=[ph, pw, ph, pw],
                         strides=[int(s) for s in stride])


def lower_plugin(x, weight, offset, bias, mask, stride, padding, dilation, group, offset_group):
    """One DeployconvDeformConv2d node (plugins/table.py). Optional inputs are omitted only at the end: a layer
    with a mask but no bias (every DCN of resnet50_dcn) gets a zero bias constant, so the plugin tells bias and
    mask apart by input count alone (3: neither, 4: bias, 5: both) and never has to handle an empty input."""
    if bias is None and mask is not None:
        import numpy as np
        from onnx_ir import tensor
        from onnxscript import opset18 as op

        bias = op.Constant(value=tensor(np.zeros(int(weight.shape[0]), dtype=weight.dtype.numpy())))
    ph, pw = (int(p) for p in padding)
    attrs = {"strides": [int(s) for s in stride], "pads": [ph, pw, ph, pw],
             "dilations": [int(d) for d in dilation], "group": int(group), "offset_group": int(offset_group)}
    return plugin_node(QUALNAME, (x, weight, offset, bias, mask), attrs)


ENTRY = OpEntry(
    name="deform_conv2d",
    qualname=QUALNAME,
    lowerings={"standard": lower_standard, "plugin": lower_plugin},
    # DeformConv exists from opset 19; the plugin node uses nothing from the ONNX domain.
    min_opset={"standard": 19, "plugin": 1},
)
