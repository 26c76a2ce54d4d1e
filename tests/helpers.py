"""Shared test helpers."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every normalisation and scale parameter non-trivial values, so a fusion bug cannot hide behind
    fresh BN statistics (mean 0, var 1, gamma 1, beta 0) or zero-initialised GRN/layer-scale terms."""
    g = torch.Generator().manual_seed(seed)

    def rand_like(t: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        return (torch.rand(t.shape, generator=g, dtype=torch.float64) * (hi - lo) + lo).to(t.dtype)

    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.running_mean is not None:
                m.running_mean.copy_(rand_like(m.running_mean, -0.5, 0.5))
                m.running_var.copy_(rand_like(m.running_var, 0.5, 2.0))
            if m.weight is not None:
                m.weight.copy_(rand_like(m.weight, 0.5, 1.5))
                m.bias.copy_(rand_like(m.bias, -0.5, 0.5))
    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        # squeeze: GRN keeps gamma/beta as (1, 1, 1, C)
        if p.squeeze().dim() <= 1 and ("gamma" in leaf or "beta" in leaf or (leaf in ("weight", "bias") and torch.all(p == p.flatten()[0]))):
            lo, hi = (0.5, 1.5) if ("gamma" in leaf or leaf == "weight") else (-0.5, 0.5)
            p.copy_(rand_like(p, lo, hi))
    return model


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / a.abs().max().clamp_min(1e-300)).item()
