"""Module-level fusions built on fusion.py: they turn modules into fused modules (new objects)."""

from __future__ import annotations

import torch
from torch import nn

from deployconv.layers.fusion import bn_scale_shift, bn_stats, fuse_bn_linear, fuse_conv_bn, fuse_linear_bn

_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def conv_with(conv: nn.Conv1d | nn.Conv2d | nn.Conv3d, weight: torch.Tensor, bias: torch.Tensor) -> nn.Module:
    """A copy of `conv`'s geometry carrying the given weight and a bias."""
    fused = type(conv)(
        conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
        dilation=conv.dilation, groups=conv.groups, bias=True, padding_mode=conv.padding_mode,
        device=weight.device, dtype=weight.dtype,
    )
    with torch.no_grad():
        fused.weight.copy_(weight)
        fused.bias.copy_(bias)
    return fused


def linear_with(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=True, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        lin.weight.copy_(weight)
        lin.bias.copy_(bias)
    return lin


@torch.no_grad()
def fuse_conv_bn_modules(conv: nn.Module, bn: nn.Module) -> nn.Module:
    """Conv -> BN (eval statistics) as one conv with bias."""
    w, b = fuse_conv_bn(conv.weight, conv.bias, bn_stats(bn))
    return conv_with(conv, w, b)


@torch.no_grad()
def fuse_linear_bn_modules(linear: nn.Linear, bn: nn.Module) -> nn.Linear:
    w, b = fuse_linear_bn(linear.weight, linear.bias, bn_stats(bn))
    return linear_with(w, b)


@torch.no_grad()
def fuse_bn_linear_modules(bn: nn.Module, linear: nn.Linear) -> nn.Linear:
    w, b = fuse_bn_linear(bn_stats(bn), linear.weight, linear.bias)
    return linear_with(w, b)


def is_conv(m: nn.Module) -> bool:
    return isinstance(m, _CONV_TYPES)


def is_bn(m: nn.Module) -> bool:
    return isinstance(m, _BN_TYPES)


class ChannelAffine(nn.Module):
    """Per-channel y = scale[c] * x + shift[c] on NCHW: a BatchNorm that cannot fold into a neighbour.

    Kept as its own module so that export can emit Mul+Add and a plugin can fuse it as an epilogue.
    """

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale.detach().clone())
        self.register_buffer("shift", shift.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * self.scale.view(shape) + self.shift.view(shape)

    @classmethod
    @torch.no_grad()
    def from_bn(cls, bn: nn.Module) -> ChannelAffine:

        return cls(*bn_scale_shift(bn_stats(bn)))

    def extra_repr(self) -> str:
        return f"channels={self.scale.numel()}"
