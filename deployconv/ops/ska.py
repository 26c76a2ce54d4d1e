"""SKA: LSNet's small-kernel aggregation, a per-pixel dynamic 3x3 depthwise convolution.

    out[b, c, h, w] = sum_{i, j in 0..2} x[b, c, h - 1 + i, w - 1 + j] * w[b, c mod G, 3 i + j, h, w]

with zero padding and stride 1. `x` is (B, C, H, W), `w` is (B, G, 9, H, W); LSNet uses G = C / 8. Channel
sharing is interleaved: channels c, c + G, c + 2G, ... read the same weight set (not c // (C / G)).

This file is the PyTorch reference (the ground truth every lowering and plugin is compared with). It runs on
any device and float dtype and accumulates in the wider of fp32 and the input dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deployconv.errors import BadInputError

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


class SKA(nn.Module):
    """Module form of `ska` (no parameters). `deployconv_leaf` makes graph tracers treat it as one op."""

    deployconv_leaf = True

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return ska(x, w)
