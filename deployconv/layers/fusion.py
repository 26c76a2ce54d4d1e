"""Pure tensor math of structural reparameterization. No modules, no state: every function maps weights to
weights, so each one is proven against its unfused definition in fp64 (tests/reparam/test_fusion_math.py).

Conventions: a conv weight is (out, in/groups, kh, kw); BN is given as (mean, var, gamma, beta, eps).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class BNStats(NamedTuple):
    mean: Tensor
    var: Tensor
    gamma: Tensor
    beta: Tensor
    eps: float


def bn_stats(bn: torch.nn.modules.batchnorm._BatchNorm) -> BNStats:
    """Frozen statistics of a BatchNorm (affine=False means gamma=1, beta=0)."""
    c = bn.num_features
    ref = bn.running_mean
    if ref is None:
        raise ValueError("BatchNorm without running statistics cannot be folded")
    gamma = bn.weight if bn.weight is not None else torch.ones(c, dtype=ref.dtype, device=ref.device)
    beta = bn.bias if bn.bias is not None else torch.zeros(c, dtype=ref.dtype, device=ref.device)
    return BNStats(bn.running_mean, bn.running_var, gamma, beta, float(bn.eps))


def bn_scale_shift(bn: BNStats) -> tuple[Tensor, Tensor]:
    """BN in eval mode as y = scale * x + shift (per channel)."""
    scale = bn.gamma / torch.sqrt(bn.var + bn.eps)
    return scale, bn.beta - bn.mean * scale


def fuse_conv_bn(weight: Tensor, bias: Tensor | None, bn: BNStats) -> tuple[Tensor, Tensor]:
    """BN(conv(x)) as one conv, for any groups/stride/dilation/padding (BN scales output channels)."""
    scale, shift = bn_scale_shift(bn)
    w = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    b = shift if bias is None else bias * scale + shift
    return w, b


def fuse_linear_bn(weight: Tensor, bias: Tensor | None, bn: BNStats) -> tuple[Tensor, Tensor]:
    """BN1d(linear(x)) as one Linear: same math as conv (BN scales output features)."""
    return fuse_conv_bn(weight, bias, bn)


def fuse_bn_linear(bn: BNStats, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor]:
    """linear(BN1d(x)) as one Linear: W (s*x + t) + b = (W*s) x + (W t + b)."""
    scale, shift = bn_scale_shift(bn)
    w = weight * scale.reshape(1, -1)
    b = weight @ shift
    return w, b if bias is None else b + bias


def pad_kernel(kernel: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Zero-pad a (.., kh, kw) kernel symmetrically to `size` (keeps the centre tap at the centre)."""
    th, tw = (size, size) if isinstance(size, int) else size
    kh, kw = kernel.shape[-2:]
    if (th - kh) % 2 or (tw - kw) % 2 or th < kh or tw < kw:
        raise ValueError(f"cannot centre a {kh}x{kw} kernel in {th}x{tw}")
    ph, pw = (th - kh) // 2, (tw - kw) // 2
    return torch.nn.functional.pad(kernel, (pw, pw, ph, ph))


def dilate_kernel(kernel: Tensor, dilation: int) -> Tensor:
    """A dilated kxk kernel as the equivalent dense kernel of size r(k-1)+1 (taps on every r-th position)."""
    if dilation == 1:
        return kernel
    kh, kw = kernel.shape[-2:]
    out = kernel.new_zeros(*kernel.shape[:-2], dilation * (kh - 1) + 1, dilation * (kw - 1) + 1)
    out[..., ::dilation, ::dilation] = kernel
    return out


def identity_kernel(channels: int, groups: int, size: int, *, dtype=None, device=None) -> Tensor:
    """The grouped conv kernel (channels, channels/groups, size, size) that computes the identity."""
    per_group = channels // groups
    k = torch.zeros(channels, per_group, size, size, dtype=dtype, device=device)
    idx = torch.arange(channels, device=device)
    k[idx, idx % per_group, size // 2, size // 2] = 1
    return k


def merge_parallel(branches: list[tuple[Tensor, Tensor]], size: int | tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Sum of parallel convs with the same stride/groups, all centred: kernels padded to `size` and added."""
    w = sum(pad_kernel(k, size) for k, _ in branches)
    b = sum(b for _, b in branches)
    return w, b


def average_linears(heads: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """mean_i(W_i x + b_i) as one Linear (LSNet's distillation heads at eval)."""
    n = len(heads)
    return sum(w for w, _ in heads) / n, sum(b for _, b in heads) / n
