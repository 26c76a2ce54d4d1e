"""Hand-written imitations of published multi-branch blocks, with no reparameterization method, for the
graph pass (issue #15): RepVGG, the Diverse Branch Block (all four branches), ACNet and a UniRepLKNet-style
dilated block. Each is written as its paper's repository writes the training form."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin, cout, k, stride=1, padding=0, dilation=1, groups=1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding, dilation, groups, bias=False), nn.BatchNorm2d(cout))


class RepVGGBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, groups=1):
        super().__init__()
        self.dense = conv_bn(cin, cout, 3, stride, 1, groups=groups)
        self.one = conv_bn(cin, cout, 1, stride, 0, groups=groups)
        self.identity = nn.BatchNorm2d(cin) if cin == cout and stride == 1 else None

    def forward(self, x):
        out = self.dense(x) + self.one(x)
        if self.identity is not None:
            out = out + self.identity(x)
        return F.relu(out)


class BNAndPadLayer(nn.Module):
    """DBB: BN, then a border of `pad_pixels` filled with BN(0) (what zero-padding the input would give)."""

    def __init__(self, pad_pixels, num_features):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features)
        self.pad_pixels = pad_pixels

    def forward(self, x):
        out = self.bn(x)
        if self.pad_pixels > 0:
            bn = self.bn
            v = (bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)).view(1, -1, 1, 1)
            p = self.pad_pixels
            out = F.pad(out, [p] * 4)
            out[:, :, :p, :] = v
            out[:, :, -p:, :] = v
            out[:, :, :, :p] = v
            out[:, :, :, -p:] = v
        return out


class IdentityBasedConv1x1(nn.Conv2d):
    """DBB's 1x1 conv of the 1x1-kxk branch: its kernel is weight + identity, formed at every call."""

    def __init__(self, channels, groups=1):
        super().__init__(channels, channels, 1, 1, 0, groups=groups, bias=False)
        per = channels // groups
        id_value = torch.zeros(channels, per, 1, 1)
        for i in range(channels):
            id_value[i, i % per, 0, 0] = 1
        self.register_buffer("id_tensor", id_value)
        nn.init.zeros_(self.weight)

    def forward(self, x):
        kernel = self.weight + self.id_tensor.to(self.weight.device).type_as(self.weight)
        return F.conv2d(x, kernel, None, stride=1, padding=0, dilation=self.dilation, groups=self.groups)


class DiverseBranchBlock(nn.Module):
    """kxk-BN, 1x1-BN, 1x1-BNAndPad-avg-BN and 1x1-BNAndPad-kxk-BN, summed (Ding et al., CVPR 2021)."""

    def __init__(self, cin, cout, k=3, stride=1, groups=1):
        super().__init__()
        p = k // 2
        self.dbb_origin = conv_bn(cin, cout, k, stride, p, groups=groups)
        self.dbb_1x1 = conv_bn(cin, cout, 1, stride, 0, groups=groups)
        self.dbb_avg = nn.Sequential()
        self.dbb_avg.add_module("conv", nn.Conv2d(cin, cout, 1, 1, 0, groups=groups, bias=False))
        self.dbb_avg.add_module("bn", BNAndPadLayer(p, cout))
        self.dbb_avg.add_module("avg", nn.AvgPool2d(k, stride, 0))
        self.dbb_avg.add_module("avgbn", nn.BatchNorm2d(cout))
        mid = cin if groups < cout else 2 * cin
        self.dbb_1x1_kxk = nn.Sequential()
        if mid == cin:  # as DBB does: an identity-based 1x1 (a functional conv in the traced graph)
            self.dbb_1x1_kxk.add_module("idconv1", IdentityBasedConv1x1(cin, groups))
        else:
            self.dbb_1x1_kxk.add_module("idconv1", nn.Conv2d(cin, mid, 1, 1, 0, groups=groups, bias=False))
        self.dbb_1x1_kxk.add_module("bn1", BNAndPadLayer(p, mid))
        self.dbb_1x1_kxk.add_module("conv2", nn.Conv2d(mid, cout, k, stride, 0, groups=groups, bias=False))
        self.dbb_1x1_kxk.add_module("bn2", nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.dbb_origin(x)
        out += self.dbb_1x1(x)
        out += self.dbb_avg(x)
        out += self.dbb_1x1_kxk(x)
        return F.relu(out)


class ACBlock(nn.Module):
    """ACNet: a square kxk, a horizontal 1xk and a vertical kx1 conv, each with BN, summed."""

    def __init__(self, cin, cout, k=3, stride=1, groups=1):
        super().__init__()
        p = k // 2
        self.square = conv_bn(cin, cout, (k, k), stride, p, groups=groups)
        self.hor = conv_bn(cin, cout, (1, k), stride, (0, p), groups=groups)
        self.ver = conv_bn(cin, cout, (k, 1), stride, (p, 0), groups=groups)

    def forward(self, x):
        return F.relu(self.square(x) + self.hor(x) + self.ver(x))


class DilatedBlock(nn.Module):
    """UniRepLKNet's Dilated Reparam Block, written without its method: a depthwise KxK conv + BN and
    depthwise dilated kxk convs + BN, summed."""

    def __init__(self, channels, k=7, branches=((5, 1), (3, 2), (3, 3))):
        super().__init__()
        self.lk = conv_bn(channels, channels, k, 1, k // 2, groups=channels)
        self.dil = nn.ModuleList(conv_bn(channels, channels, kk, 1, r * (kk - 1) // 2, r, channels)
                                 for kk, r in branches)

    def forward(self, x):
        out = self.lk(x)
        for b in self.dil:
            out = out + b(x)
        return x + F.gelu(out)


class Net(nn.Module):
    """A stem conv, then the blocks, then global average pooling."""

    def __init__(self, blocks: list[nn.Module], cin=3, c0=8):
        super().__init__()
        self.stem = nn.Conv2d(cin, c0, 3, 2, 1)
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        y = self.blocks(self.stem(x))
        return y.mean((2, 3))


def repvgg_net(c=16):
    return Net([RepVGGBlock(8, c, 2), RepVGGBlock(c, c), RepVGGBlock(c, c, groups=2)])


def dbb_net(c=16):
    return Net([DiverseBranchBlock(8, c, 3, 2), DiverseBranchBlock(c, c, 3, 1, groups=2),
                DiverseBranchBlock(c, c, 5, 1)])


def acnet_net(c=16):
    return Net([ACBlock(8, c, 3, 2), ACBlock(c, c, 3), ACBlock(c, c, 5, 1, groups=4)])


def dilated_net(c=16):
    return Net([nn.Conv2d(8, c, 1), DilatedBlock(c, 7), DilatedBlock(c, 9, ((5, 1), (5, 2), (3, 3), (3, 4)))])


IMITATIONS = {"repvgg": repvgg_net, "dbb": dbb_net, "acnet": acnet_net, "dilated": dilated_net}
