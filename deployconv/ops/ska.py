"""SKA: LSNet's small-kernel aggregation, a per-pixel dynamic 3x3 depthwise convolution.

    out[b, c, h, w] = sum_{i, j in 0..2} x[b, c, h - 1 + i, w - 1 + j] * w[b, c mod G, 3 i + j, h, w]

with zero padding and stride 1. `x` is (B, C, H, W), `w` is (B, G, 9, H, W); LSNet uses G = C / 8. Channel
sharing is interleaved: channels c, c + G, c + 2G, ... read the same weight set (not c // (C / G)).

This file holds the PyTorch reference (the ground truth every lowering and plugin is compared with; it runs on
any device and float dtype and accumulates in the wider of fp32 and the input dtype), the `deployconv::ska`
torch.library op that the `SKA` module calls (so torch.export and the ONNX exporter see one node), and the op's
ONNX lowerings (`ENTRY`): `standard` (ONNX-domain ops, chosen by measurement in ONNX Runtime) and `plugin`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deployconv.core.errors import BadInputError
from deployconv.ops.registry import OpEntry, plugin_node

QUALNAME = "deployconv::ska"
KERNEL = 3
TAPS = KERNEL * KERNEL


def _accumulation_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """fp32 for half/bfloat16/fp32 inputs, fp64 as soon as one input is fp64."""
    return torch.float64 if torch.float64 in dtypes else torch.float32


def _check(x: Tensor, w: Tensor) -> None:
    def bad(what: str, why: str) -> BadInputError:
        return BadInputError(
            f"ska: {what}",
            why=why,
            fix="pass x as (B, C, H, W) and w as (B, G, 9, H, W) with G dividing C (LSNet: G = C / 8)",
        )

    if x.dim() != 4 or w.dim() != 5:
        raise bad(f"x has shape {tuple(x.shape)} and w {tuple(w.shape)}", "x must be 4-D and w 5-D")
    if not (x.is_floating_point() and w.is_floating_point()):
        raise bad(f"x is {x.dtype} and w is {w.dtype}", "both inputs must be floating point")
    if x.device != w.device:
        raise bad(f"x is on {x.device} and w on {w.device}", "both inputs must be on one device")
    b, c, h, wd = x.shape
    if w.shape[0] != b or w.shape[2] != TAPS or tuple(w.shape[3:]) != (h, wd):
        raise bad(
            f"w has shape {tuple(w.shape)} for x {tuple(x.shape)}",
            f"w must be (B={b}, G, {TAPS}, H={h}, W={wd}): one 3x3 kernel per weight group and pixel",
        )
    g = w.shape[1]
    if g == 0 or c % g:
        raise bad(f"{c} channels cannot share {g} weight groups", "G must divide C")


def ska(x: Tensor, w: Tensor) -> Tensor:
    """Per-pixel 3x3 depthwise aggregation (see the module docstring); returns x's dtype.

    Pads once and accumulates the 9 shifted views of x, each multiplied by its tap of w broadcast over the
    C / G channels that share it; no unfolded 9x buffer is built.
    """
    _check(x, w)
    b, c, h, wd = x.shape
    g = w.shape[1]
    acc = _accumulation_dtype(x.dtype, w.dtype)
    # (B, C/G, G, H+2, W+2): index [b, r, k] is channel r * G + k, so the G axis is c mod G (interleaved).
    xp = F.pad(x.to(acc), (1, 1, 1, 1)).view(b, c // g, g, h + 2, wd + 2)
    wa = w.to(acc).unsqueeze(1)  # (B, 1, G, 9, H, W): broadcast over the C/G sharing channels
    out = xp[..., :h, :wd] * wa[:, :, :, 0]
    for t in range(1, TAPS):
        i, j = divmod(t, KERNEL)
        out.addcmul_(xp[..., i : i + h, j : j + wd], wa[:, :, :, t])  # in place: autograd-safe, no buffer
    return out.view(b, c, h, wd).to(x.dtype)


# --- torch.library op: what models call, so that torch.export / the ONNX exporter see ONE node ---------------


@torch.library.custom_op(QUALNAME, mutates_args=())
def _ska_op(x: Tensor, w: Tensor) -> Tensor:
    """`torch.ops.deployconv.ska`: the reference `ska`, bit for bit."""
    return ska(x, w)


@_ska_op.register_fake
def _ska_fake(x: Tensor, w: Tensor) -> Tensor:
    _check(x, w)
    return x.new_empty(x.shape)


def _ska_setup_context(ctx, inputs: tuple[Tensor, Tensor], output: Tensor) -> None:
    ctx.save_for_backward(*inputs)


def _ska_backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """Recompute the reference under autograd and differentiate it (first order; nothing but x, w is saved)."""
    x, w = ctx.saved_tensors
    need = ctx.needs_input_grad
    with torch.enable_grad():
        xr, wr = x.detach().requires_grad_(need[0]), w.detach().requires_grad_(need[1])
        wanted = [t for t, n in zip((xr, wr), need) if n]
        grads = iter(torch.autograd.grad(ska(xr, wr), wanted, grad))
    return tuple(next(grads) if n else None for n in need)


_ska_op.register_autograd(_ska_backward, setup_context=_ska_setup_context)


class SKA(nn.Module):
    """Module form of SKA (no parameters): calls `torch.ops.deployconv.ska`, so exporters see one node.
    `deployconv_leaf` makes graph tracers treat it as one op."""

    deployconv_leaf = True

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return torch.ops.deployconv.ska(x, w)


# --- ONNX lowerings (traced onnxscript: plain functions that add nodes to the exporter's graph) ---------------


def _static_dims(x, w) -> tuple[int, int, int, int]:
    """(C, G, H, W) as Python ints: the standard lowering folds the plane geometry into constants."""
    dims = (x.shape[1], w.shape[1], x.shape[2], x.shape[3])
    if not all(isinstance(d, int) for d in dims):
        raise BadInputError(
            f"ska: the standard ONNX lowering needs fixed channels and spatial size, got x {x.shape}, w {w.shape}",
            why="tap offsets and edge masks are folded into constants; only the batch axis may be dynamic",
            fix="export with a fixed input height and width (the default: only the batch is dynamic), or use the "
                "plugin lowering",
        )
    return dims  # type: ignore[return-value]


def _tap_products(op, x, w, dims: tuple[int, int, int, int], np_dtype):
    """Yield the 9 products x(shifted by tap t) * w[:, :, t], each (B, C/G, G, 1, H*W), emitting each one's
    Slice and Mul when it is requested.

    x is viewed as (B, C/G, G, 1, H*W) (channel r*G + k at [r, k]: interleaved sharing) and padded by W+1
    zeros at both ends of the flat plane, so tap (i, j) is ONE contiguous slice at offset i*W + j; the centre
    tap is x itself. A flat shift wraps around rows: tap j=0 at column 0 would read the previous row's last
    pixel and j=2 at column W-1 the next row's first one. Those reads are cancelled by zeroing the weights of
    those taps in that column: one Mul of w (8x smaller than x) by a constant mask, before w is split in taps.
    """
    import numpy as np
    from onnx_ir import tensor

    c, g, h, wd = dims
    n = h * wd
    x5 = op.Reshape(x, [0, c // g, g, 1, n])
    xf = op.Pad(x5, [0, 0, 0, 0, wd + 1, 0, 0, 0, 0, wd + 1])
    keep = np.ones((KERNEL, KERNEL, h, wd), dtype=np_dtype)  # [i, j, row, column]
    keep[:, 0, :, 0] = 0
    keep[:, 2, :, -1] = 0
    wm = op.Mul(op.Reshape(w, [0, 1, g, TAPS, n]), op.Constant(value=tensor(keep.reshape(TAPS, n))))
    taps = op.Split(wm, axis=3, num_outputs=TAPS)  # 9 x (B, 1, G, 1, n)
    for t in range(TAPS):
        s = (t // KERNEL) * wd + t % KERNEL
        yield op.Mul(x5 if t == TAPS // 2 else op.Slice(xf, [s], [s + n], [4]), taps[t])


def lower_standard(x, w):
    """ONNX-domain ops only (opset >= 18: Split's num_outputs): 8 contiguous tap slices of a flat padded x (plus
    x itself for the centre tap), each multiplied by its edge-masked weight tap, then an Add chain; see
    `_tap_products`. Needs static C, H, W (the batch may be dynamic).

    Chosen by measuring (benchmarks/ska_formulations.py -> benchmarks/results/ska_formulations_cpu.json; ORT
    1.31.1 CPU, AMD EPYC, 1 intra-op thread, fp32, other processes idle; median us per SKA call):

        lsnet_t's SKA                 128ch 14x14 b1   b16    256ch 7x7 b1   b16
        this (flat, masked)                  109     1790             73     961
        same, one Sum node                   120     2793             79    1011
        flat, column-padded w + crop         164     2727            129    1874
        2-D tap windows + Adds               176     3054            150    2184
        Pad+Slices+Concat+ReduceSum          196     6545            185    3540
        one-hot 3x3 Conv + ReduceSum         212     6322            187    3410
        unfold + Einsum (torch.onnx)        3486    55975           1824   28406

    i.e. 25-32x the unfold/Einsum graph a plain export gives: 10.8 -> 0.40 ms (batch 1) and 170 -> 5.6 ms
    (batch 16) for lsnet_t's five SKA calls. Why it wins: the formulation is memory-bound, so the count of
    full passes over an x-sized tensor decides; contiguous 1-D slices copy ~2.5x faster than 2-D windows 7 or 14
    columns wide, the mask on w is cheaper than column padding (which costs a padded copy of w and a cropping
    slice of the result), and the centre tap needs no slice. Node order matters too: with the Adds placed after
    all products in the graph, ORT 1.31 runs each Add right after its product (seen in its profile: 2 live
    x-sized buffers); with each Add emitted right after its product, ORT ran all 9 products first: 1.44x slower at
    128ch batch 16 (one Sum node, which also keeps all 9 alive: 1.56x). With 2 intra-op threads it is the
    fastest in all four configurations too (2-thread batch-16 timings vary from run to run on this shared
    2-vCPU machine; p10/p90 are in the JSON).

    Computes in fp32 (fp64 when an input is fp64), like the reference, and returns x's dtype.
    """
    import numpy as np
    from onnx import TensorProto
    from onnxscript import opset18 as op

    dims = _static_dims(x, w)
    wide = TensorProto.DOUBLE in (int(x.dtype), int(w.dtype))
    acc, np_acc = (TensorProto.DOUBLE, np.float64) if wide else (TensorProto.FLOAT, np.float32)
    xa = x if int(x.dtype) == acc else op.Cast(x, to=acc)
    wa = w if int(w.dtype) == acc else op.Cast(w, to=acc)
    products = list(_tap_products(op, xa, wa, dims, np_acc))
    out = products[0]
    for p in products[1:]:  # emitted after all products: see the docstring on node order
        out = op.Add(out, p)
    out = op.Reshape(out, op.Shape(x))
    return out if int(x.dtype) == acc else op.Cast(out, to=int(x.dtype))


def lower_plugin(x, w):
    """One DeployconvSKA node (plugins/table.py); w is cast to x's dtype if they differ (the plugin has one T)."""
    if int(w.dtype) != int(x.dtype):
        from onnxscript import opset18 as op

        w = op.Cast(w, to=int(x.dtype))
    return plugin_node(QUALNAME, (x, w), {})


ENTRY = OpEntry(
    name="ska",
    qualname=QUALNAME,
    lowerings={"standard": lower_standard, "plugin": lower_plugin},
    # standard: Split with num_outputs needs opset 18; the plugin node uses nothing from the ONNX domain.
    min_opset={"standard": 18, "plugin": 1},
)
