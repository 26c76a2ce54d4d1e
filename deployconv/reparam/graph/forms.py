"""Every linear op the graph pass understands, as one convolution in fp64 (`ConvForm`).

A ConvForm is y = conv2d(x, weight, bias, stride, padding, dilation, groups) with zero padding. A BatchNorm
is a 1x1 depthwise form, an average pool a depthwise kernel of 1/(kh*kw), an identity a 1x1 depthwise form of
ones. Ops that are not a convolution exactly (a pool that divides by the unpadded count, a BatchNorm without
running statistics, reflect padding) raise `Refused` with the reason, which becomes a near miss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from deployconv.layers.fusion import bn_scale_shift, bn_stats

Pair = tuple[int, int]


class Refused(Exception):
    """A structure that looks fusable but is not, exactly; the message says why (a near miss)."""


@dataclass(frozen=True)
class ConvForm:
    weight: Tensor  # (out, in/groups, kh, kw), fp64
    bias: Tensor  # (out,), fp64
    stride: Pair
    padding: Pair
    dilation: Pair
    groups: int
    in_channels: int

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def kernel(self) -> Pair:
        return int(self.weight.shape[2]), int(self.weight.shape[3])

    @property
    def extent(self) -> Pair:
        """Pixels the kernel spans: d(k-1)+1 per dimension."""
        return tuple(d * (k - 1) + 1 for d, k in zip(self.dilation, self.kernel))  # type: ignore[return-value]

    @property
    def offset(self) -> Pair:
        """Twice the shift of the kernel's centre from the output pixel (2p - (extent-1)): branches with equal
        stride and offset see aligned windows and produce equal output sizes, so their kernels can be summed."""
        return tuple(2 * p - (e - 1) for p, e in zip(self.padding, self.extent))  # type: ignore[return-value]

    @property
    def pointwise(self) -> bool:
        """1x1, stride 1: composes with any neighbour."""
        return self.kernel == (1, 1) and self.stride == (1, 1)

    def describe(self) -> str:
        kh, kw = self.kernel
        s = f"{kh}x{kw}"
        if self.dilation != (1, 1):
            s += f"d{self.dilation[0]}" if self.dilation[0] == self.dilation[1] else f"d{self.dilation}"
        if self.stride != (1, 1):
            s += f"s{self.stride[0]}" if self.stride[0] == self.stride[1] else f"s{self.stride}"
        return s


def _pair(v) -> Pair:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _depthwise(scale: Tensor, shift: Tensor, padding: Pair = (0, 0)) -> ConvForm:
    c = scale.numel()
    return ConvForm(scale.double().reshape(c, 1, 1, 1).clone(), shift.double().reshape(c).clone(),
                    (1, 1), padding, (1, 1), c, c)


def identity_form(channels: int) -> ConvForm:
    return _depthwise(torch.ones(channels, dtype=torch.float64), torch.zeros(channels, dtype=torch.float64))


def affine_form(scale: Tensor, shift: Tensor) -> ConvForm:
    """Per-channel y = scale * x + shift (LayerScale, an affine layer, a frozen BatchNorm)."""
    return _depthwise(scale, shift)


def _padding(conv: nn.Conv2d) -> Pair:
    if not isinstance(conv.padding, str):
        return _pair(conv.padding)
    if conv.padding == "valid":
        return (0, 0)
    # 'same' (stride 1): PyTorch pads (extent-1)//2 before and the rest after
    ext = [d * (k - 1) for d, k in zip(_pair(conv.dilation), conv.kernel_size)]
    if any(e % 2 for e in ext):
        raise Refused("padding='same' with an even extent pads asymmetrically")
    return ext[0] // 2, ext[1] // 2


def conv_form(conv: nn.Conv2d) -> ConvForm:
    if conv.padding_mode != "zeros":
        raise Refused(f"padding_mode={conv.padding_mode!r}: only zero padding sums and composes exactly")
    return conv_form_of(conv, conv.weight, conv.bias)


def conv_form_of(conv: nn.Conv2d, weight: Tensor, bias: Tensor | None) -> ConvForm:
    """A conv's geometry with the given kernel (for a functional conv: its constant weight)."""
    w = weight.detach().double()
    b = bias.detach().double() if bias is not None else w.new_zeros(w.shape[0])
    return ConvForm(w.clone(), b.clone(), _pair(conv.stride), _padding(conv), _pair(conv.dilation), conv.groups,
                    conv.in_channels)


def bn_form(bn: nn.modules.batchnorm._BatchNorm) -> ConvForm:
    if bn.running_mean is None or bn.running_var is None:
        raise Refused("BatchNorm without running statistics normalises by batch statistics (training mode)")
    if bn.training:
        raise Refused("BatchNorm in training mode")
    scale, shift = bn_scale_shift(bn_stats(bn))
    return _depthwise(scale.detach(), shift.detach())


def bn_and_pad_form(layer: nn.Module) -> ConvForm:
    """DBB's BNAndPadLayer: BN, then a border of `pad_pixels` filled with BN(0). A 1x1 form with padding p
    computes exactly that (its border is its bias, the response to zero)."""
    form = bn_form(layer.bn)
    p = int(layer.pad_pixels)
    return _depthwise(form.weight.reshape(-1), form.bias, (p, p))


def avg_pool_form(pool: nn.AvgPool2d, channels: int) -> ConvForm:
    k, s, p = _pair(pool.kernel_size), _pair(pool.stride or pool.kernel_size), _pair(pool.padding)
    if pool.ceil_mode:
        raise Refused("AvgPool2d(ceil_mode=True): the last window is partial, not a convolution")
    if pool.divisor_override is not None:
        raise Refused("AvgPool2d(divisor_override=...) is not supported")
    if p != (0, 0) and not pool.count_include_pad:
        raise Refused("AvgPool2d(count_include_pad=False) divides border windows by fewer pixels")
    w = torch.full((channels, 1, *k), 1.0 / (k[0] * k[1]), dtype=torch.float64)
    return ConvForm(w, torch.zeros(channels, dtype=torch.float64), s, p, (1, 1), channels, channels)


def is_bn_and_pad(m: nn.Module) -> bool:
    """The DBB layer recognised by its structure: a `bn` BatchNorm2d, an int `pad_pixels`, nothing else."""
    return (isinstance(getattr(m, "bn", None), nn.BatchNorm2d) and isinstance(getattr(m, "pad_pixels", None), int)
            and len(list(m.children())) == 1 and not list(m.parameters(recurse=False)))
