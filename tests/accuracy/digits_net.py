"""A tiny RepVGG-family classifier for sklearn's 8x8 digits upsampled to 32x32 (a user model source:
`tests/accuracy/digits_net.py:digits_repvgg`). The blocks are the zoo's RepVGGBlock (3x3 + 1x1 + identity
branches), so reparameterization is on the path of every ledger built on it."""

from __future__ import annotations

from torch import nn

from deployconv.models.registry import ModelInfo
from deployconv.models.repvgg import RepVGGBlock

INFO = ModelInfo(input_size=(3, 32, 32), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bilinear",
                 crop_pct=1.0, num_classes=10)


class DigitsRepVGG(nn.Module):
    def __init__(self, width: int = 16, num_classes: int = 10):
        super().__init__()
        self.stage0 = RepVGGBlock(3, width // 2, stride=2)
        self.stage1 = RepVGGBlock(width // 2, width, stride=2)
        self.stage2 = RepVGGBlock(width, width)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(width, num_classes)

    def forward(self, x):
        x = self.stage2(self.stage1(self.stage0(x)))
        return self.linear(self.gap(x).flatten(1))


def digits_repvgg() -> DigitsRepVGG:
    model = DigitsRepVGG()
    model.deployconv_info = INFO
    return model
