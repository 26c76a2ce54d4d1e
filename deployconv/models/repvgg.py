"""RepVGG ("Making VGG-style ConvNets Great Again", CVPR 2021), with the official parameter names.

Train form: every block sums a 3x3 conv+BN (`rbr_dense`), a 1x1 conv+BN (`rbr_1x1`) and, when in == out
channels and stride 1, a BN on the input (`rbr_identity`), then ReLU. Deploy form: one 3x3 conv with bias
(`rbr_reparam`). Stages `stage0` (one block, the stem) to `stage4`, then `gap` and `linear`.

The official releases are train-form checkpoints (`RepVGG-A0-train.pth`) and deploy-form ones converted by
the official script; both load, into the model built in the matching form (`deploy=True` for the latter).
A train-form checkpoint also loads into a deploy-form model: the filter fuses it on the way in.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from deployconv.core.errors import BadInputError
from deployconv.layers.fusion import BNStats, bn_stats, fuse_conv_bn, identity_kernel, merge_parallel
from deployconv.models.registration import ModelInfo, register_model


def _conv_bn(cin: int, cout: int, kernel: int, stride: int, padding: int, groups: int) -> nn.Sequential:
    seq = nn.Sequential()
    seq.add_module("conv", nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False))
    seq.add_module("bn", nn.BatchNorm2d(cout))
    return seq


def fused_kernel_bias(
    dense: tuple[Tensor, BNStats], one: tuple[Tensor, BNStats], identity: BNStats | None, groups: int
) -> tuple[Tensor, Tensor]:
    """The single 3x3 conv (weight, bias) equal to dense 3x3+BN + 1x1+BN (+ identity BN), all grouped alike.

    Computed in fp64 and returned in the dense weight's dtype, so fusing adds one rounding only."""
    dtype = dense[0].dtype

    def up(t: Tensor) -> Tensor:
        return t.double()

    def bn64(bn: BNStats) -> BNStats:
        return BNStats(up(bn.mean), up(bn.var), up(bn.gamma), up(bn.beta), bn.eps)

    branches = [fuse_conv_bn(up(dense[0]), None, bn64(dense[1])), fuse_conv_bn(up(one[0]), None, bn64(one[1]))]
    if identity is not None:
        ident = identity_kernel(dense[0].shape[0], groups, 1, dtype=torch.float64, device=dense[0].device)
        branches.append(fuse_conv_bn(ident, None, bn64(identity)))
    w, b = merge_parallel(branches, 3)
    return w.to(dtype), b.to(dtype)


class RepVGGBlock(nn.Module):
    """3x3 + 1x1 + identity branches (train form) or one 3x3 conv (`deploy=True`), then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, groups: int = 1,
                 deploy: bool = False):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.groups, self.deploy = stride, groups, deploy
        self.nonlinearity = nn.ReLU()
        if deploy:
            self.rbr_reparam = nn.Conv2d(in_channels, out_channels, 3, stride, 1, groups=groups, bias=True)
        else:
            has_identity = in_channels == out_channels and stride == 1
            self.rbr_identity = nn.BatchNorm2d(in_channels) if has_identity else None
            self.rbr_dense = _conv_bn(in_channels, out_channels, 3, stride, 1, groups)
            self.rbr_1x1 = _conv_bn(in_channels, out_channels, 1, stride, 0, groups)

    def forward(self, x: Tensor) -> Tensor:
        if self.deploy:
            return self.nonlinearity(self.rbr_reparam(x))
        out = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            out = out + self.rbr_identity(x)
        return self.nonlinearity(out)

    @torch.no_grad()
    def equivalent_kernel_bias(self) -> tuple[Tensor, Tensor]:
        """(weight, bias) of the one 3x3 conv that equals the three train-form branches (eval BN)."""
        d, o = self.rbr_dense, self.rbr_1x1
        ident = bn_stats(self.rbr_identity) if self.rbr_identity is not None else None
        return fused_kernel_bias((d.conv.weight, bn_stats(d.bn)), (o.conv.weight, bn_stats(o.bn)), ident,
                                 self.groups)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """In place: the branches become `rbr_reparam` (a grouped 3x3 conv with bias). Idempotent."""
        if self.deploy:
            return
        w, b = self.equivalent_kernel_bias()
        dense = self.rbr_dense.conv
        conv = nn.Conv2d(self.in_channels, self.out_channels, 3, self.stride, 1, groups=self.groups, bias=True,
                         device=w.device, dtype=w.dtype)
        conv.weight.copy_(w)
        conv.bias.copy_(b)
        conv.train(dense.training)
        self.rbr_reparam = conv
        for name in ("rbr_dense", "rbr_1x1", "rbr_identity"):
            delattr(self, name)
        self.deploy = True

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}, groups={self.groups}, " \
               f"deploy={self.deploy}"


class RepVGG(nn.Module):
    def __init__(
        self,
        num_blocks: tuple[int, int, int, int],
        width_multiplier: tuple[float, float, float, float],
        num_classes: int = 1000,
        override_groups_map: dict[int, int] | None = None,
        deploy: bool = False,
    ):
        super().__init__()
        groups_map = override_groups_map or {}
        self.deploy = deploy
        planes = min(64, int(64 * width_multiplier[0]))
        self.stage0 = RepVGGBlock(3, planes, stride=2, deploy=deploy)
        layer = 1  # the official groups map counts blocks from 1 after the stem
        for s, (base, depth, mult) in enumerate(zip((64, 128, 256, 512), num_blocks, width_multiplier), 1):
            width = int(base * mult)
            blocks = []
            for i in range(depth):
                blocks.append(RepVGGBlock(planes, width, stride=2 if i == 0 else 1,
                                          groups=groups_map.get(layer, 1), deploy=deploy))
                planes = width
                layer += 1
            setattr(self, f"stage{s}", nn.ModuleList(blocks))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(planes, num_classes)
        self.num_features = planes

    def forward(self, x: Tensor) -> Tensor:
        x = self.stage0(x)
        for stage in (self.stage1, self.stage2, self.stage3, self.stage4):
            for block in stage:
                x = block(x)
        return self.linear(torch.flatten(self.gap(x), 1))


# Official evaluation at 224 (the paper's numbers): bilinear resize to 256, centre crop 224.
_INFO = ModelInfo(input_size=(3, 224, 224), interpolation="bilinear", crop_pct=0.875)

_A = (2, 4, 14, 1)
_B = (4, 6, 16, 1)
_G2 = {layer: 2 for layer in range(2, 27, 2)}
_G4 = {layer: 4 for layer in range(2, 27, 2)}
_CFGS: dict[str, dict[str, Any]] = {
    "repvgg_a0": dict(num_blocks=_A, width_multiplier=(0.75, 0.75, 0.75, 2.5)),
    "repvgg_a1": dict(num_blocks=_A, width_multiplier=(1, 1, 1, 2.5)),
    "repvgg_a2": dict(num_blocks=_A, width_multiplier=(1.5, 1.5, 1.5, 2.75)),
    "repvgg_b0": dict(num_blocks=_B, width_multiplier=(1, 1, 1, 2.5)),
    "repvgg_b1": dict(num_blocks=_B, width_multiplier=(2, 2, 2, 4)),
    "repvgg_b1g2": dict(num_blocks=_B, width_multiplier=(2, 2, 2, 4), override_groups_map=_G2),
    "repvgg_b1g4": dict(num_blocks=_B, width_multiplier=(2, 2, 2, 4), override_groups_map=_G4),
    "repvgg_b2": dict(num_blocks=_B, width_multiplier=(2.5, 2.5, 2.5, 5)),
    "repvgg_b2g4": dict(num_blocks=_B, width_multiplier=(2.5, 2.5, 2.5, 5), override_groups_map=_G4),
    "repvgg_b3": dict(num_blocks=_B, width_multiplier=(3, 3, 3, 5)),
    "repvgg_b3g4": dict(num_blocks=_B, width_multiplier=(3, 3, 3, 5), override_groups_map=_G4),
}

_TRAIN_KEYS = ("rbr_dense.", "rbr_1x1.", "rbr_identity.")


def _bn_from(sd: dict[str, Tensor], prefix: str, eps: float) -> BNStats:
    return BNStats(sd[prefix + "running_mean"], sd[prefix + "running_var"], sd[prefix + "weight"],
                   sd[prefix + "bias"], eps)


def checkpoint_filter_fn(state_dict: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Map official train-form or deploy-form checkpoints onto `model`, block by block.

    - same form as the block: passed through;
    - train-form keys for a deploy-form block: fused here into `rbr_reparam` (exactly the block's own math);
    - deploy-form keys for a train-form block: an error, the branches cannot be recovered from their sum.
    """
    sd = dict(state_dict)
    for path, block in model.named_modules():
        if not isinstance(block, RepVGGBlock):
            continue
        p = f"{path}." if path else ""
        has_train = f"{p}rbr_dense.conv.weight" in sd
        has_deploy = f"{p}rbr_reparam.weight" in sd
        if block.deploy and has_train and not has_deploy:
            eps = 1e-5  # the official blocks use nn.BatchNorm2d's default
            ident = _bn_from(sd, f"{p}rbr_identity.", eps) if f"{p}rbr_identity.running_mean" in sd else None
            w, b = fused_kernel_bias(
                (sd[f"{p}rbr_dense.conv.weight"], _bn_from(sd, f"{p}rbr_dense.bn.", eps)),
                (sd[f"{p}rbr_1x1.conv.weight"], _bn_from(sd, f"{p}rbr_1x1.bn.", eps)),
                ident, block.groups,
            )
            for k in [k for k in sd if k.startswith(p) and k[len(p):].startswith(_TRAIN_KEYS)]:
                del sd[k]
            sd[f"{p}rbr_reparam.weight"], sd[f"{p}rbr_reparam.bias"] = w, b
        elif not block.deploy and has_deploy and not has_train:
            raise BadInputError(
                "this RepVGG checkpoint is in deploy form (rbr_reparam) but the model was built in train form",
                why="a deploy-form checkpoint holds only the fused 3x3 conv; the train-form branches cannot be "
                "recovered from it",
                fix="build the model with deploy=True (create_model(name, weights=..., deploy=True))",
            )
    return sd


def _create(name: str, **overrides: Any) -> RepVGG:
    cfg = {**_CFGS[name], **overrides}
    return RepVGG(**cfg)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def repvgg_a0(**overrides: Any) -> RepVGG:
    return _create("repvgg_a0", **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def repvgg_a1(**overrides: Any) -> RepVGG:
    return _create("repvgg_a1", **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def repvgg_a2(**overrides: Any) -> RepVGG:
    return _create("repvgg_a2", **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def repvgg_b0(**overrides: Any) -> RepVGG:
    return _create("repvgg_b0", **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def repvgg_b1(**overrides: Any) -> RepVGG:
    return _create("repvgg_b1", **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def repvgg_b1g2(**overrides: Any) -> RepVGG:
    return _create("repvgg_b1g2", **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def repvgg_b1g4(**overrides: Any) -> RepVGG:
    return _create("repvgg_b1g4", **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def repvgg_b2(**overrides: Any) -> RepVGG:
    return _create("repvgg_b2", **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def repvgg_b2g4(**overrides: Any) -> RepVGG:
    return _create("repvgg_b2g4", **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def repvgg_b3(**overrides: Any) -> RepVGG:
    return _create("repvgg_b3", **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def repvgg_b3g4(**overrides: Any) -> RepVGG:
    return _create("repvgg_b3g4", **overrides)
