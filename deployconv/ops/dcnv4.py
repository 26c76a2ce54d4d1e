"""DCNv4 (OpenGVLab, "Efficient Deformable ConvNets"): the core op, its torch.library form, ONNX lowerings, and the
DCNv4 module that models use. Over 400 lines on purpose: one op per file (as ska.py and deform_conv.py), so
its reference, registration, lowerings and module are read against the official kernel in one place.

Semantics (read from the official CUDA kernel, facts/ops.md). `value` is NHWC (N, H, W, G*D): G groups of
D = group_channels channels. `offset_mask` is ONE tensor (N, Ho, Wo, P) with P >= G*K*3 (the official module
pads P to ceil(G*K*3 / 8) * 8; the padding is never read). Per group g it holds a block of 3K values at
g*3K: K (dx, dy) pairs, then K aggregation weights m (unnormalised, no softmax). K = kh*kw, or kh*kw - 1 with
remove_center (the point i = kw // 2, j = kh // 2 is dropped). Points are x-major: point i*kh + j for i over
the kernel's width and j over its height, centre skipped. For output pixel (oy, ox):

    cw = (dw * (kw - 1)) // 2                                  (integer, as the kernel's >> 1; ch likewise)
    w  = ox * sw - pw + cw + (i * dw + dx - cw) * offset_scale
    h  = oy * sh - ph + ch + (j * dh + dy - ch) * offset_scale
    out[n, oy, ox, g*D + d] = sum_k m_k * bilinear(value[n, :, :, g*D + d], h, w)
    Ho = (H + 2 ph - (dh (kh - 1) + 1)) // sh + 1              (Wo likewise)

Bilinear reads zero outside the image: each of the four corners outside contributes 0 (a point with
h <= -1, h >= H, w <= -1 or w >= W is fully zero, as the kernel's bounds test). For odd kernels (all the
official models) cw = dw*(kw-1)/2 exactly.

The reference is gather-based: one row gather of D-channel vectors for all 4 corners of all K points, then one
batched (1 x 4K) @ (4K x D) product per (pixel, group). Coordinates and accumulation are fp32 (fp64 for fp64
inputs); the result has the value's dtype. Both tensors share one dtype, as in the official kernel. Any device.
Memory: the gathered corners are (N*Ho*Wo*G, 4K, D) in the accumulation dtype, 4K times the output.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from deployconv.core.errors import BadInputError
from deployconv.ops.registry import OpEntry, plugin_node

QUALNAME = "deployconv::dcnv4"

_FIX = (
    "pass value (N, H, W, group*group_channels) in NHWC and offset_mask (N, Ho, Wo, P) with "
    "P >= group*K*3 (K = kernel_h*kernel_w, minus 1 with remove_center), as the official DCNv4 op takes them"
)


def _bad(what: str, why: str) -> BadInputError:
    return BadInputError(f"dcnv4: {what}", why=why, fix=_FIX)


def points(kernel_h: int, kernel_w: int, remove_center: int) -> list[tuple[int, int]]:
    """Kernel points (i over width, j over height) in the packed order: x-major, centre dropped on request."""
    return [(i, j) for i in range(kernel_w) for j in range(kernel_h)
            if not (remove_center and i == kernel_w // 2 and j == kernel_h // 2)]


def padded_dim(group: int, kernel_h: int, kernel_w: int, remove_center: int) -> int:
    """P of the official module: G*K*3 rounded up to a multiple of 8."""
    k = kernel_h * kernel_w - int(bool(remove_center))
    return int(math.ceil(group * k * 3 / 8) * 8)


def _out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - (d * (k - 1) + 1)) // s + 1


def _check(
    value: Tensor, offset_mask: Tensor, kernel_h: int, kernel_w: int, stride_h: int, stride_w: int,
    pad_h: int, pad_w: int, dilation_h: int, dilation_w: int, group: int, group_channels: int,
    offset_scale: float, remove_center: int,
) -> tuple[int, int, int]:
    """Validate arguments; return (Ho, Wo, K). Works on real and fake (export-time) tensors."""
    for name, t in (("value", value), ("offset_mask", offset_mask)):
        if not t.is_floating_point():
            raise _bad(f"{name} is {t.dtype}", "both tensors must be floating point")
        if t.dim() != 4:
            raise _bad(f"{name} has shape {tuple(t.shape)}", "value and offset_mask must be 4-D (NHWC)")
    if offset_mask.dtype != value.dtype:
        raise _bad(f"offset_mask is {offset_mask.dtype} and value {value.dtype}",
                   "both tensors must have one dtype (the official kernel and the plugin read them as one type)")
    if offset_mask.device != value.device:
        raise _bad(f"offset_mask is on {offset_mask.device} and value on {value.device}",
                   "both tensors must be on one device")
    if min(kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, group, group_channels) < 1 \
            or min(pad_h, pad_w) < 0:
        raise _bad(f"kernel ({kernel_h}, {kernel_w}), stride ({stride_h}, {stride_w}), pad ({pad_h}, {pad_w}), "
                   f"dilation ({dilation_h}, {dilation_w}), group {group}, group_channels {group_channels}",
                   "kernel, stride, dilation, group and group_channels must be >= 1 and pad >= 0")
    if remove_center not in (0, 1):
        raise _bad(f"remove_center={remove_center!r}", "remove_center is 0 or 1")
    if not math.isfinite(offset_scale):
        raise _bad(f"offset_scale={offset_scale!r}", "offset_scale must be finite")
    k = kernel_h * kernel_w - remove_center
    if k < 1:
        raise _bad("a 1x1 kernel with remove_center", "no sampling point would be left")
    n, h, w, c = value.shape
    if c != group * group_channels:
        raise _bad(f"value has {c} channels for group={group}, group_channels={group_channels}",
                   "the channels must equal group * group_channels")
    ho = _out_size(h, kernel_h, stride_h, pad_h, dilation_h)
    wo = _out_size(w, kernel_w, stride_w, pad_w, dilation_w)
    if ho < 1 or wo < 1:
        raise _bad(f"input {h}x{w} with kernel {kernel_h}x{kernel_w}, pad ({pad_h}, {pad_w}), dilation "
                   f"({dilation_h}, {dilation_w})", "the output would be empty")
    need = group * k * 3
    if tuple(offset_mask.shape[:3]) != (n, ho, wo) or offset_mask.shape[3] < need:
        raise _bad(f"offset_mask has shape {tuple(offset_mask.shape)} for value {tuple(value.shape)}",
                   f"expected ({n}, {ho}, {wo}, P) with P >= group*K*3 = {need} "
                   f"(the official module uses P = {padded_dim(group, kernel_h, kernel_w, remove_center)})")
    return ho, wo, k


def dcnv4(
    value: Tensor,
    offset_mask: Tensor,
    kernel_h: int,
    kernel_w: int,
    stride_h: int,
    stride_w: int,
    pad_h: int,
    pad_w: int,
    dilation_h: int,
    dilation_w: int,
    group: int,
    group_channels: int,
    offset_scale: float,
    remove_center: int,
) -> Tensor:
    """The DCNv4 core op, plain PyTorch (differentiable); see the module docstring for the exact math.

    Same argument order as the official `DCNv4Function` (without im2col_step). Returns (N, Ho, Wo, G*D) in the
    value's dtype. `torch.ops.deployconv.dcnv4` is the same computation as one opaque op for the exporter."""
    remove_center = int(remove_center)
    ho, wo, k = _check(value, offset_mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
                       dilation_w, group, group_channels, offset_scale, remove_center)
    n, h, w, _ = value.shape
    g, d = group, group_channels
    acc = torch.float64 if value.dtype == torch.float64 else torch.float32
    dev = value.device
    pts = points(kernel_h, kernel_w, remove_center)
    pi = torch.tensor([p[0] * dilation_w for p in pts], dtype=acc, device=dev)  # (K,) i * dw
    pj = torch.tensor([p[1] * dilation_h for p in pts], dtype=acc, device=dev)
    cw, ch = (dilation_w * (kernel_w - 1)) // 2, (dilation_h * (kernel_h - 1)) // 2
    s = float(offset_scale)
    # The kernel's order: p0 = o*stride - pad + c, p0_ = p0 - c*s, position = p0_ + (i*dil + offset)*s.
    base_w = torch.arange(wo, device=dev, dtype=acc) * stride_w + (cw - pad_w) - cw * s
    base_h = torch.arange(ho, device=dev, dtype=acc) * stride_h + (ch - pad_h) - ch * s
    om = offset_mask[..., : g * 3 * k].to(acc).reshape(n, ho, wo, g, 3 * k)
    dxy = om[..., : 2 * k].reshape(n, ho, wo, g, k, 2)
    m = om[..., 2 * k :]  # (N, Ho, Wo, G, K)
    x = base_w.view(1, 1, wo, 1, 1) + (pi + dxy[..., 0]) * s
    y = base_h.view(1, ho, 1, 1, 1) + (pj + dxy[..., 1]) * s

    x0, y0 = torch.floor(x), torch.floor(y)
    lx, ly = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    # Row index into value viewed as (N*H*W*G, D): ((n*H + y)*W + x)*G + g.
    nb = torch.arange(n, device=dev).view(n, 1, 1, 1, 1) * (h * w * g)
    gb = torch.arange(g, device=dev).view(1, 1, 1, g, 1)
    idx, wts = [], []
    for dy, wy in ((0, (1 - ly) * m), (1, ly * m)):  # the weight m folds into the row factor once
        yi = y0 + dy
        in_y = (yi >= 0) & (yi < h)
        for dx, wx in ((0, 1 - lx), (1, lx)):
            xi = x0 + dx
            inside = in_y & (xi >= 0) & (xi < w)
            wts.append(wy * wx * inside.to(acc))
            idx.append(nb + (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)) * g + gb)
    rows = n * ho * wo * g
    idx_t = torch.stack(idx, dim=-1).reshape(-1)  # (N, Ho, Wo, G, K, 4) flattened
    wts_t = torch.stack(wts, dim=-1).reshape(rows, 1, 4 * k)
    src = value.to(acc).reshape(n * h * w * g, d)
    cols = src.index_select(0, idx_t).view(rows, 4 * k, d)
    out = torch.bmm(wts_t, cols)  # (rows, 1, D)
    return out.view(n, ho, wo, g * d).to(value.dtype)


# ---------------------------------------------------------------------------------------------------------------
# torch.library op: one opaque node for torch.export / the ONNX exporter, the reference math underneath.


@torch.library.custom_op(QUALNAME, mutates_args=())
def _dcnv4_op(
    value: Tensor, offset_mask: Tensor, kernel_h: int, kernel_w: int, stride_h: int, stride_w: int, pad_h: int,
    pad_w: int, dilation_h: int, dilation_w: int, group: int, group_channels: int, offset_scale: float,
    remove_center: int,
) -> Tensor:
    return dcnv4(value, offset_mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w,
                 group, group_channels, offset_scale, remove_center)


@_dcnv4_op.register_fake
def _(value, offset_mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, group,
      group_channels, offset_scale, remove_center):
    ho, wo, _ = _check(value, offset_mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
                       dilation_w, group, group_channels, offset_scale, int(remove_center))
    return value.new_empty(value.shape[0], ho, wo, value.shape[3])


def _setup_context(ctx, inputs, output) -> None:
    value, offset_mask, *params = inputs
    ctx.save_for_backward(value, offset_mask)
    ctx.params = params


def _backward(ctx, grad: Tensor):
    """Recompute the reference under autograd and differentiate it (the op is cheap next to its backward)."""
    value, offset_mask = ctx.saved_tensors
    need = ctx.needs_input_grad[:2]
    with torch.enable_grad():
        v, om = value.detach().requires_grad_(need[0]), offset_mask.detach().requires_grad_(need[1])
        wanted = [t for t, n in zip((v, om), need) if n]
        grads = iter(torch.autograd.grad(dcnv4(v, om, *ctx.params), wanted, grad))
    return (*(next(grads) if n else None for n in need), *([None] * len(ctx.params)))


_dcnv4_op.register_autograd(_backward, setup_context=_setup_context)


def dcnv4_op(
    value: Tensor, offset_mask: Tensor, kernel_h: int, kernel_w: int, stride_h: int, stride_w: int, pad_h: int,
    pad_w: int, dilation_h: int, dilation_w: int, group: int, group_channels: int, offset_scale: float,
    remove_center: int,
) -> Tensor:
    """`torch.ops.deployconv.dcnv4`: the same math as `dcnv4`, seen by torch.export as one node."""
    return torch.ops.deployconv.dcnv4(value, offset_mask, int(kernel_h), int(kernel_w), int(stride_h),
                                      int(stride_w), int(pad_h), int(pad_w), int(dilation_h), int(dilation_w),
                                      int(group), int(group_channels), float(offset_scale), int(remove_center))


# ---------------------------------------------------------------------------------------------------------------
# ONNX lowerings (onnxscript, traced mode: plain functions building nodes on the exporter's graph).


def _static_hw(value, offset_mask) -> tuple[int, int, int, int]:
    """(H, W, Ho, Wo) as Python ints; the standard lowering bakes the sampling grid into constants."""
    dims = (value.shape[1], value.shape[2], offset_mask.shape[1], offset_mask.shape[2])
    if not all(isinstance(d, int) for d in dims):
        raise BadInputError(
            f"dcnv4: the standard ONNX lowering needs a fixed spatial size, got value {value.shape} and "
            f"offset_mask {offset_mask.shape}",
            why="its sampling grid is folded into constants; only the batch axis may be dynamic",
            fix="export with a fixed input height and width (the default: only the batch is dynamic), or use the "
                "plugin lowering",
        )
    return dims  # type: ignore[return-value]


def _const(op, a):
    import numpy as np
    import onnx

    return op.Constant(value=onnx.numpy_helper.from_array(np.asarray(a)))


def lower_standard(
    value, offset_mask, kernel_h: int, kernel_w: int, stride_h: int, stride_w: int, pad_h: int, pad_w: int,
    dilation_h: int, dilation_w: int, group: int, group_channels: int, offset_scale: float, remove_center: int,
):
    """ONNX-domain ops only (opset >= 16), for ONNX Runtime: one GridSample over (N*G, D, H, W).

    Sampling positions become GridSample's normalised coordinates for align_corners=0 (pixel x maps to
    (2x + 1) / W - 1, which ORT maps back exactly as ((gx + 1) W - 1) / 2) with zero padding: each corner
    outside the image reads 0, the op's rule. The grid is (N*G, Ho*Wo, K, 2) with the packed (dx, dy) pairs
    already in GridSample's (x, y) order, so offsets need one Mul and one Add. The samples (N*G, D, Ho*Wo, K)
    are weighted by m and summed over K. `mode` is left at its default, the (bi)linear mode: it is named
    "bilinear" in opsets 16-19 and "linear" from 20 on, and the exporter writes the right name. Computes in fp32 (fp64 for fp64 inputs) and returns the value's dtype.

    Measured against an explicit Gather-based bilinear (row gather of D channels for 4 corners + MatMul) in
    ORT 1.31 CPU, 1 thread: 56x56, C=64, G=4, K=9: 7.7 vs 10.4 ms at batch 1, 60 vs 86 ms at batch 8
    (28x28, C=128, G=8: 4.2 vs 5.9 ms, 33 vs 46 ms). Both agree with the fp64 reference to ~5e-6 relative.
    """
    import numpy as np
    from onnx import TensorProto
    from onnxscript import opset18 as op

    h, w, ho, wo = _static_hw(value, offset_mask)
    g, d = group, group_channels
    pts = points(kernel_h, kernel_w, int(remove_center))
    k = len(pts)
    s = float(offset_scale)
    wide = int(value.dtype) == TensorProto.DOUBLE
    onnx_t, np_t = (TensorProto.DOUBLE, np.float64) if wide else (TensorProto.FLOAT, np.float32)

    def cast(t):
        return t if int(t.dtype) == onnx_t else op.Cast(t, to=onnx_t)

    # Sampling grid at zero offset, in GridSample's normalised coordinates, (Ho*Wo, K, 2), in float64 first.
    cw, ch = (dilation_w * (kernel_w - 1)) // 2, (dilation_h * (kernel_h - 1)) // 2
    px = (np.arange(wo) * stride_w + cw - pad_w - cw * s)[:, None] + np.array([i * dilation_w * s for i, _ in pts])
    py = (np.arange(ho) * stride_h + ch - pad_h - ch * s)[:, None] + np.array([j * dilation_h * s for _, j in pts])
    gx = np.broadcast_to(((2 * px + 1) / w - 1)[None], (ho, wo, k))
    gy = np.broadcast_to(((2 * py + 1) / h - 1)[:, None], (ho, wo, k))
    base = np.stack([gx, gy], axis=-1).reshape(ho * wo, k, 2).astype(np_t)
    scale = np.array([2 * s / w, 2 * s / h], dtype=np_t)

    om = cast(offset_mask)
    if offset_mask.shape[3] != g * 3 * k:  # drop the padding of P
        om = op.Slice(om, _const(op, [0]), _const(op, [g * 3 * k]), _const(op, [3]))
    om = op.Transpose(op.Reshape(om, _const(op, [0, ho * wo, g, 3 * k])), perm=[0, 2, 1, 3])
    om = op.Reshape(om, _const(op, [-1, ho * wo, 3 * k]))  # (N*G, Ho*Wo, 3K)
    dxy = op.Slice(om, _const(op, [0]), _const(op, [2 * k]), _const(op, [2]))
    m = op.Slice(om, _const(op, [2 * k]), _const(op, [3 * k]), _const(op, [2]))
    grid = op.Add(op.Mul(op.Reshape(dxy, _const(op, [0, ho * wo, k, 2])), _const(op, scale)), _const(op, base))
    v = op.Transpose(op.Reshape(cast(value), _const(op, [0, h, w, g, d])), perm=[0, 3, 4, 1, 2])
    v = op.Reshape(v, _const(op, [-1, d, h, w]))  # (N*G, D, H, W)
    samples = op.GridSample(v, grid, align_corners=0, padding_mode="zeros")  # (N*G, D, Ho*Wo, K)
    out = op.ReduceSum(op.Mul(samples, op.Unsqueeze(m, _const(op, [1]))), _const(op, [3]), keepdims=0)
    out = op.Transpose(op.Reshape(out, _const(op, [-1, g * d, ho * wo])), perm=[0, 2, 1])
    out = op.Reshape(out, _const(op, [0, ho, wo, g * d]))
    return out if int(value.dtype) == onnx_t else op.Cast(out, to=int(value.dtype))


def plugin_attributes(
    kernel_h: int, kernel_w: int, stride_h: int, stride_w: int, pad_h: int, pad_w: int, dilation_h: int,
    dilation_w: int, group: int, group_channels: int, offset_scale: float, remove_center: int,
) -> dict:
    """The DeployconvDCNv4 node's attributes (names and kinds from the plugin table). pads follow ONNX's
    convention (begin_h, begin_w, end_h, end_w), symmetric, like DeployconvDeformConv2d's."""
    return {
        "kernel_shape": [int(kernel_h), int(kernel_w)],
        "strides": [int(stride_h), int(stride_w)],
        "pads": [int(pad_h), int(pad_w), int(pad_h), int(pad_w)],
        "dilations": [int(dilation_h), int(dilation_w)],
        "group": int(group),
        "group_channels": int(group_channels),
        "offset_scale": float(offset_scale),
        "remove_center": int(remove_center),
    }


def lower_plugin(
    value, offset_mask, kernel_h: int, kernel_w: int, stride_h: int, stride_w: int, pad_h: int, pad_w: int,
    dilation_h: int, dilation_w: int, group: int, group_channels: int, offset_scale: float, remove_center: int,
):
    """One DeployconvDCNv4 node (domain deployconv), for the TensorRT plugin described in plugins/table.py."""
    attrs = plugin_attributes(kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w,
                              group, group_channels, offset_scale, remove_center)
    return plugin_node(QUALNAME, (value, offset_mask), attrs)


ENTRY = OpEntry(
    name="dcnv4",
    qualname=QUALNAME,
    lowerings={"standard": lower_standard, "plugin": lower_plugin},
    # GridSample exists from opset 16; the plugin node uses nothing from the ONNX domain.
    min_opset={"standard": 16, "plugin": 1},
)


# ---------------------------------------------------------------------------------------------------------------
# The module.


class DCNv4(nn.Module):
    """The official DCNv4 module (OpenGVLab `DCNv4.modules.DCNv4`): same constructor arguments, parameter names
    and initialisation, so official state dicts load by name.

        value       = value_proj(x)                                    (Linear C -> C)
        offset_mask = offset_mask(offset_mask_dw(x) or x)              (Linear C -> P, P = ceil(G*K*3/8)*8;
                                                                        offset_mask_dw: depthwise conv, optional)
        out         = output_proj(dcnv4(value, offset_mask))           (Linear C -> C)

    Input: channels-last, either the official (N, H*W, C) with `shape=(H, W)` (square when omitted) giving
    (N, H*W, C), or (N, H, W, C) giving (N, H, W, C). The offsets are predicted per input pixel, so like the
    official module this one needs an output of the input's size: stride 1 and 2*pad = dilation*(kernel-1).
    `offset_mask` starts at zero as in the official code (zero offsets, zero weights: the op outputs 0).
    Not supported: center_feature_scale. `deployconv_leaf` makes graph tracers treat it as one op.
    """

    deployconv_leaf = True

    def __init__(
        self,
        channels: int = 64,
        kernel_size: int = 3,
        stride: int = 1,
        pad: int = 1,
        dilation: int = 1,
        group: int = 4,
        offset_scale: float = 1.0,
        dw_kernel_size: int | None = None,
        remove_center: bool = False,
        output_bias: bool = True,
        without_pointwise: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        what = (f"DCNv4(channels={channels}, kernel_size={kernel_size}, stride={stride}, pad={pad}, "
                f"dilation={dilation}, group={group})")
        if group < 1 or channels % group:
            raise BadInputError(what, why=f"channels must be divisible by group, got {channels} and {group}")
        if (channels // group) % 16:
            raise BadInputError(what, why=f"group_channels = channels / group = {channels // group} must be a "
                                "multiple of 16 (the official module asserts it for its CUDA kernel)")
        if stride != 1 or 2 * pad != dilation * (kernel_size - 1):
            raise BadInputError(what, why="the module predicts offsets per input pixel, so its output must keep "
                                "the input's size: stride 1 and 2*pad = dilation*(kernel_size-1)",
                                fix=f"use stride=1, pad={dilation * (kernel_size - 1) // 2}")
        self.channels, self.kernel_size, self.stride, self.pad, self.dilation = (
            channels, kernel_size, stride, pad, dilation)
        self.group, self.group_channels = group, channels // group
        self.offset_scale = float(offset_scale)
        self.dw_kernel_size = dw_kernel_size
        self.remove_center = int(remove_center)
        self.without_pointwise = without_pointwise
        self.K = group * (kernel_size * kernel_size - self.remove_center)
        factory = {"device": device, "dtype": dtype}
        if dw_kernel_size is not None:
            self.offset_mask_dw = nn.Conv2d(channels, channels, dw_kernel_size, stride=1,
                                            padding=(dw_kernel_size - 1) // 2, groups=channels, **factory)
        self.offset_mask = nn.Linear(channels, int(math.ceil(self.K * 3 / 8) * 8), **factory)
        if not without_pointwise:
            self.value_proj = nn.Linear(channels, channels, **factory)
            self.output_proj = nn.Linear(channels, channels, bias=output_bias, **factory)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        nn.init.constant_(self.offset_mask.weight, 0.0)
        nn.init.constant_(self.offset_mask.bias, 0.0)
        if not self.without_pointwise:
            nn.init.xavier_uniform_(self.value_proj.weight)
            nn.init.constant_(self.value_proj.bias, 0.0)
            nn.init.xavier_uniform_(self.output_proj.weight)
            if self.output_proj.bias is not None:
                nn.init.constant_(self.output_proj.bias, 0.0)

    def forward(self, input: Tensor, shape: tuple[int, int] | None = None) -> Tensor:
        if input.dim() == 4:
            n, h, w, c = input.shape
        elif input.dim() == 3:
            n, L, c = input.shape
            h, w = shape if shape is not None else (int(L**0.5), int(L**0.5))
            if h * w != L:
                raise BadInputError(f"DCNv4: input {tuple(input.shape)} with shape={shape}",
                                    why=f"H*W must equal the {L} tokens", fix="pass shape=(H, W)")
        else:
            raise BadInputError(f"DCNv4: input of shape {tuple(input.shape)}",
                                why="expected (N, H*W, C) or (N, H, W, C), channels last")
        x = input.reshape(n, h, w, c)
        value = x if self.without_pointwise else self.value_proj(x)
        if self.dw_kernel_size is not None:
            om_in = self.offset_mask_dw(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        else:
            om_in = x
        offset_mask = self.offset_mask(om_in)
        out = dcnv4_op(value, offset_mask, self.kernel_size, self.kernel_size, self.stride, self.stride, self.pad,
                       self.pad, self.dilation, self.dilation, self.group, self.group_channels, self.offset_scale,
                       self.remove_center)
        if not self.without_pointwise:
            out = self.output_proj(out)
        return out.reshape(input.shape)

    def extra_repr(self) -> str:
        s = (f"channels={self.channels}, kernel_size={self.kernel_size}, pad={self.pad}, dilation={self.dilation}, "
             f"group={self.group}, offset_scale={self.offset_scale}")
        if self.dw_kernel_size is not None:
            s += f", dw_kernel_size={self.dw_kernel_size}"
        if self.remove_center:
            s += ", remove_center=True"
        return s
