"""ResNet-50 with DCNv2 in stages 2-4 ("R50-DCN", the detection-world standard backbone).

torchvision's ResNet-50 v1.5 (stride on the 3x3) and its parameter names (`conv1`, `bn1`, `layer1.0.conv1`,
..., `downsample.0/1`, `fc`); in layer2..layer4 every bottleneck's `conv2` is a modulated deformable conv
named like mmcv's `ModulatedDeformConv2dPack` (`layer2.0.conv2.weight`, `layer2.0.conv2.conv_offset.*`), so
mmcv/mmdet backbone weights map by name.

A plain ResNet-50 ImageNet checkpoint lacks the offset convs. Loading it is legitimate (the offsets start at
zero, the mask at sigmoid(0) = 0.5) but only when asked for:
`create_model("resnet50_dcn", weights=p, allow_missing=("*.conv_offset.*",))`, and it is reported.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import Tensor, nn

from deployconv.core.errors import BadInputError
from deployconv.layers.modules import fuse_conv_bn_modules, is_bn
from deployconv.models.registration import ModelInfo, register_model
from deployconv.ops.deform_conv import ModulatedDeformConv2dPack


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here, v1.5; deformable when `dcn`) -> 1x1 (x4), each with BN, plus the shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dcn: bool = False):
        super().__init__()
        width = planes
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        if dcn:
            self.conv2 = ModulatedDeformConv2dPack(width, width, 3, stride=stride, padding=1, bias=False)
        else:
            self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """In place: fold every conv -> BN pair of the block, the deformable conv2 -> bn2 one included; each BN
        becomes nn.Identity, so parameter paths stay valid. Idempotent.

        The generic fx pair folding cannot do the deformable pair: it recognises nn.ConvNd only, and the Pack is
        an opaque leaf whose offset branch a conv rebuild would lose. So the block folds its own pairs."""
        for conv_name, bn_name, owner in (("conv1", "bn1", self), ("conv2", "bn2", self), ("conv3", "bn3", self),
                                          ("0", "1", self.downsample)):
            if owner is None:
                continue
            conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
            if not is_bn(bn):
                continue
            if isinstance(conv, ModulatedDeformConv2dPack):
                fused = conv.with_bn_folded(bn)
            else:
                fused = fuse_conv_bn_modules(conv, bn)
            fused.train(conv.training)
            setattr(owner, conv_name, fused)
            setattr(owner, bn_name, nn.Identity())


FEATURE_STAGES = ("c2", "c3", "c4", "c5")  # layer1..layer4: strides 4, 8, 16, 32


class ResNetDCN(nn.Module):
    def __init__(self, layers: tuple[int, int, int, int] = (3, 4, 6, 3),
                 stage_with_dcn: tuple[bool, bool, bool, bool] = (False, True, True, True),
                 num_classes: int = 1000, features: tuple[str, ...] | None = None):
        super().__init__()
        unknown = sorted(set(features or ()) - set(FEATURE_STAGES))
        if unknown:
            raise BadInputError(f"unknown feature stage(s) {unknown}", fix=f"choose from {', '.join(FEATURE_STAGES)}")
        self.features = tuple(features) if features else None
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        for i, (planes, depth, dcn) in enumerate(zip((64, 128, 256, 512), layers, stage_with_dcn)):
            setattr(self, f"layer{i + 1}", self._make_layer(planes, depth, stride=1 if i == 0 else 2, dcn=dcn))
        self.num_features = 512 * Bottleneck.expansion
        if self.features is None:  # a backbone (detection, segmentation) has no classifier
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(self.num_features, num_classes)
        self._init_weights()

    def _make_layer(self, planes: int, blocks: int, stride: int, dcn: bool) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample, dcn=dcn)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes, dcn=dcn) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    @torch.no_grad()
    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():  # after the loop above, which also visited the offset convs
            if isinstance(m, ModulatedDeformConv2dPack):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                m.conv_offset.weight.zero_()
                m.conv_offset.bias.zero_()

    def forward(self, x: Tensor) -> Tensor | dict[str, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        if self.features is not None:  # {c3: stride 8, c4: 16, c5: 32}, as a detection neck takes them
            out = {}
            for name, layer in zip(FEATURE_STAGES, (self.layer1, self.layer2, self.layer3, self.layer4)):
                x = layer(x)
                if name in self.features:
                    out[name] = x
                if len(out) == len(self.features):
                    break
            return out
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# torchvision's ImageNet evaluation: bilinear resize to 256, centre crop 224.
_INFO = ModelInfo(input_size=(3, 224, 224), interpolation="bilinear", crop_pct=0.875,
                  optional_keys=("*.conv2.conv_offset.*", "fc.*"))

_LEGACY_OFFSET = re.compile(r"^(.*)\.conv2_offset\.(weight|bias)$")


def checkpoint_filter_fn(state_dict: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Map torchvision, mmcv/mmdet and detection checkpoints onto the model.

    - detection checkpoints (mmdet): keys under `backbone.` are the ResNet; the prefix is stripped and the
      detector's other parts (neck, heads) are not this model's and are dropped. Such checkpoints have no `fc`:
      allow it explicitly (`allow_missing=("fc.*",)`);
    - mmcv's old (version 1) offset name `layerX.Y.conv2_offset.*` becomes `layerX.Y.conv2.conv_offset.*`;
    - checkpoints saved without any BN `num_batches_tracked` counters (older torchvision files) get them as 0,
      as PyTorch's BatchNorm does for such files; the counter plays no part at inference.
    """
    sd = dict(state_dict)
    if any(k.startswith("backbone.") for k in sd):
        sd = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    own = model.state_dict()
    for k in list(sd):
        m = _LEGACY_OFFSET.match(k)
        if m and f"{m[1]}.conv2.conv_offset.{m[2]}" in own and k not in own:
            sd[f"{m[1]}.conv2.conv_offset.{m[2]}"] = sd.pop(k)
    if "fc.weight" not in own:  # the backbone form: a classifier checkpoint's fc is not part of it
        sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    if not any(k.endswith(".num_batches_tracked") for k in sd):
        for k, v in own.items():
            if k.endswith(".num_batches_tracked"):
                sd[k] = torch.zeros_like(v)
    return sd


def _create(**overrides: Any) -> ResNetDCN:
    return ResNetDCN(**overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def resnet50_dcn(**overrides: Any) -> ResNetDCN:
    """ResNet-50 v1.5 with modulated deformable 3x3 convs in layer2..layer4 (deform groups 1, no bias)."""
    return _create(layers=(3, 4, 6, 3), stage_with_dcn=(False, True, True, True), **overrides)


# The form detectors deploy (mmdet's DCN R-50 backbone): c3/c4/c5 at detection resolution, H and W dynamic.
# Batch 1..4 keeps the TensorRT profile's max activation memory sane at 1344x1344.
BACKBONE_INFO = ModelInfo(input_size=(3, 800, 1344), interpolation="bilinear", crop_pct=1.0,
                          optional_keys=("*.conv2.conv_offset.*",), num_classes=0,
                          inputs=("input=Bx3xHxW",), dims=("B=1..1..4", "H=320..800..1344", "W=320..1344..1344"))


@register_model(info=BACKBONE_INFO, filter_fn=checkpoint_filter_fn, tags=("backbone",))
def resnet50_dcn_backbone(**overrides: Any) -> ResNetDCN:
    """resnet50_dcn as a detection backbone: returns {c3, c4, c5} (strides 8/16/32), exported at 800x1344 with
    dynamic H/W (320..1344). `features=(...)` picks other stages (c2..c5)."""
    overrides.setdefault("features", ("c3", "c4", "c5"))
    return _create(layers=(3, 4, 6, 3), stage_with_dcn=(False, True, True, True), **overrides)
