"""Small user models for benchmarks/matrix_scaling.py (`file.py:factory` sources): plain Conv/BN/ReLU stacks
of four widths, 3x64x64 inputs, so a 12-cell matrix finishes in minutes on a shared 2-core machine while
every step (export with its parity chain, int8 calibration, validate, bench, check) still does real work."""

from __future__ import annotations

import torch
from torch import nn

from deployconv.models.registry import ModelInfo


def _net(width: int, depth: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    cin = 3
    for i in range(depth):
        layers += [nn.Conv2d(cin, width, 3, stride=2 if i < 3 else 1, padding=1, bias=False), nn.BatchNorm2d(width),
                   nn.ReLU()]
        cin = width
    net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    net.deployconv_info = ModelInfo(input_size=(3, 64, 64), num_classes=10)
    return net.eval()


def net_a() -> nn.Module:
    return _net(16, 4, 0)


def net_b() -> nn.Module:
    return _net(32, 5, 1)


def net_c() -> nn.Module:
    return _net(48, 6, 2)


def net_d() -> nn.Module:
    return _net(64, 6, 3)
