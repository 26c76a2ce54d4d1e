"""dcnv4_tiny: a small FlashInternImage-style classifier built on the DCNv4 module, so the zoo has a DCNv4 model
that exports end to end (no official weights exist at this size; it is a test model, not a published one).

Layout after FlashInternImage (OpenGVLab/DCNv4 `classification/models/flash_intern_image.py`), shrunk:
  - `patch_embed`: conv 3x3/2 -> BN -> GELU -> conv 3x3/2 -> BN (stride 4), then channels-last;
  - `levels.i.blocks.j`: x + dcn(norm1(x)), then x + mlp(norm2(x)) (LayerNorm, DCNv4 with a depthwise conv
    before the offset/mask projection, MLP ratio 4), channels-last (N, H, W, C) throughout;
  - `levels.i.downsample`: conv 3x3/2 -> BN between levels (FlashInternImage uses LN there; BN here gives the
    reparameterization pass folds to prove);
  - `norm` (LayerNorm), global average pool, `head` (Linear).
Channels (64, 128, 256), depths (2, 2, 2), groups (4, 8, 16): group_channels 16, 2.68M parameters.

Unlike the official initialisation (offset/mask projection at zero: zero offsets and zero weights, so every
DCNv4 outputs 0 until trained), the offset/mask projection starts random here, so an untrained model already
samples at fractional, out-of-image positions and its parity checks exercise the op.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from deployconv.core.errors import BadInputError
from deployconv.models.registration import ModelInfo, register_model
from deployconv.ops.dcnv4 import DCNv4


class StemLayer(nn.Module):
    """Stride-4 stem (FlashInternImage's, BN after both convs); NCHW in, NHWC out."""

    def __init__(self, in_chans: int, out_chans: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, out_chans // 2, 3, stride=2, padding=1)
        self.norm1 = nn.BatchNorm2d(out_chans // 2)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(out_chans // 2, out_chans, 3, stride=2, padding=1)
        self.norm2 = nn.BatchNorm2d(out_chans)

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm2(self.conv2(self.act(self.norm1(self.conv1(x)))))
        return x.permute(0, 2, 3, 1)


class DownsampleLayer(nn.Module):
    """conv 3x3/2 (C -> 2C, no bias) -> BN; NHWC in and out."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(2 * channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.conv(x.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)


class MLPLayer(nn.Module):
    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DCNv4Layer(nn.Module):
    """InternImage's basic layer (pre-norm, no layer scale): x + dcn(norm1(x)), x + mlp(norm2(x))."""

    def __init__(self, channels: int, group: int, mlp_ratio: float = 4.0, offset_scale: float = 1.0,
                 dw_kernel_size: int | None = 3):
        super().__init__()
        self.norm1 = nn.LayerNorm(channels)
        self.dcn = DCNv4(channels, kernel_size=3, stride=1, pad=1, dilation=1, group=group,
                         offset_scale=offset_scale, dw_kernel_size=dw_kernel_size)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = MLPLayer(channels, int(channels * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.dcn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DCNv4Level(nn.Module):
    def __init__(self, channels: int, depth: int, group: int, downsample: bool, **layer_kw: Any):
        super().__init__()
        self.blocks = nn.ModuleList(DCNv4Layer(channels, group, **layer_kw) for _ in range(depth))
        self.downsample = DownsampleLayer(channels) if downsample else None

    def forward(self, x: Tensor) -> Tensor:
        for blk in self.blocks:
            x = blk(x)
        return x if self.downsample is None else self.downsample(x)


class DCNv4Net(nn.Module):
    def __init__(
        self,
        channels: int = 64,
        depths: tuple[int, ...] = (2, 2, 2),
        groups: tuple[int, ...] = (4, 8, 16),
        mlp_ratio: float = 4.0,
        offset_scale: float = 1.0,
        dw_kernel_size: int | None = 3,
        in_chans: int = 3,
        num_classes: int = 1000,
        features: tuple[str, ...] | None = None,
    ):
        super().__init__()
        stages = tuple(f"c{i + 2}" for i in range(len(depths)))  # level i runs at stride 4 * 2**i
        unknown = sorted(set(features or ()) - set(stages))
        if unknown:
            raise BadInputError(f"unknown feature stage(s) {unknown} for {len(depths)} levels",
                                fix=f"choose from {', '.join(stages)} (c<k> is stride 2**k)")
        self.features = tuple(features) if features else None
        self.patch_embed = StemLayer(in_chans, channels)
        levels = []
        for i, (depth, group) in enumerate(zip(depths, groups)):
            levels.append(DCNv4Level(channels * 2**i, depth, group, downsample=i < len(depths) - 1,
                                     mlp_ratio=mlp_ratio, offset_scale=offset_scale, dw_kernel_size=dw_kernel_size))
        self.levels = nn.ModuleList(levels)
        self.num_features = channels * 2 ** (len(depths) - 1)
        if self.features is None:  # a backbone (detection, segmentation) has no classifier
            self.norm = nn.LayerNorm(self.num_features)
            self.head = nn.Linear(self.num_features, num_classes)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, DCNv4):
                m._reset_parameters()  # the official init for the projections ...
                # ... but random offsets and aggregation weights (std ~0.6 on unit-variance inputs).
                nn.init.normal_(m.offset_mask.weight, std=1.0 / math.sqrt(m.channels))

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        for level in self.levels:
            x = level(x)
        return self.norm(x).mean(dim=(1, 2))

    def forward(self, x: Tensor) -> Tensor | dict[str, Tensor]:
        if self.features is not None:  # NCHW maps before each level's downsampling, as a neck takes them
            x, out = self.patch_embed(x), {}
            for i, level in enumerate(self.levels):
                for blk in level.blocks:
                    x = blk(x)
                if f"c{i + 2}" in self.features:
                    out[f"c{i + 2}"] = x.permute(0, 3, 1, 2)
                if len(out) == len(self.features):
                    break
                if level.downsample is not None:
                    x = level.downsample(x)
            return out
        return self.head(self.forward_features(x))


_INFO = ModelInfo(input_size=(3, 224, 224), interpolation="bicubic", crop_pct=0.875)


def _create(**overrides: Any) -> DCNv4Net:
    return DCNv4Net(**overrides)


@register_model(info=_INFO)
def dcnv4_tiny(**overrides: Any) -> DCNv4Net:
    """Channels 64/128/256, depths 2/2/2, groups 4/8/16 (group_channels 16), DCNv4 3x3 with a 3x3 depthwise
    conv before the offset/mask projection; 2.68M parameters, stride 16 (14x14 at 224)."""
    return _create(channels=64, depths=(2, 2, 2), groups=(4, 8, 16), **overrides)


BACKBONE_INFO = ModelInfo(input_size=(3, 800, 1344), interpolation="bilinear", crop_pct=1.0, num_classes=0,
                          inputs=("input=Bx3xHxW",), dims=("B=1..1..4", "H=800", "W=1344"))


@register_model(info=BACKBONE_INFO, tags=("backbone",))
def dcnv4_tiny_backbone(**overrides: Any) -> DCNv4Net:
    """dcnv4_tiny as a detection backbone: {c2, c3, c4} (strides 4/8/16; the tiny net has three levels, so
    there is no c5), exported at 800x1344. H and W are fixed: the DCNv4 ONNX lowering bakes its sampling grid
    for one size (ops/dcnv4.py), so another resolution is another export (--dim H=N --dim W=N)."""
    overrides.setdefault("features", ("c2", "c3", "c4"))
    return _create(channels=64, depths=(2, 2, 2), groups=(4, 8, 16), **overrides)
