"""LSNet ("LSNet: See Large, Focus Small", Wang et al., CVPR 2025), official architecture and parameter names.

Official code: https://github.com/jameslahm/lsnet (model/lsnet.py). Checkpoints released there load as they are.

Deploy form (via `deployconv.reparam.reparameterize`): every Conv2d_BN becomes a conv with bias, RepVGGDW one
depthwise 3x3 conv, LSConv's BatchNorm a ChannelAffine (it cannot fold, see LSConv.reparameterize), the
attention bias table is gathered once into a buffer, and the heads fold into one Linear (the two distillation
heads are averaged into it). The official `replace_batchnorm` fuses Conv2d_BN, RepVGGDW and BN_Linear only.

Over 400 lines on purpose: one official architecture per file (blocks, model, checkpoint filter, variants, in
timm's order), mirroring the official model file so parameter names can be checked against the checkpoint
layout in one place.
"""

from __future__ import annotations

import itertools

import torch
import torch.fx
from torch import Tensor, nn

from deployconv.core.errors import BadInputError
from deployconv.layers.fusion import average_linears, bn_stats, fuse_conv_bn, identity_kernel, merge_parallel
from deployconv.layers.modules import (
    ChannelAffine,
    conv_with,
    fuse_bn_linear_modules,
    fuse_conv_bn_modules,
    linear_with,
)
from deployconv.models.registration import ModelInfo, register_model
from deployconv.ops.ska import SKA

__all__ = ["LSNet", "checkpoint_filter_fn"]

# Downsampling steps between the input and stage 4: three stride-2 stem convs and three stage transitions.
_HALVINGS = 6


# --- blocks -------------------------------------------------------------------------------------------------


class Conv2d_BN(nn.Sequential):  # official class name (checkpoint users know it)
    """Conv (no bias) then BatchNorm: children `c` and `bn`."""

    def __init__(self, a: int, b: int, ks: int = 1, stride: int = 1, pad: int = 0, dilation: int = 1,
                 groups: int = 1, bn_weight_init: float = 1.0):
        super().__init__()
        self.add_module("c", nn.Conv2d(a, b, ks, stride, pad, dilation, groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(b))
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.constant_(self.bn.bias, 0)

    def fuse(self) -> nn.Conv2d:
        return fuse_conv_bn_modules(self.c, self.bn)


class BN_Linear(nn.Sequential):  # official class name (checkpoint users know it)
    """BatchNorm1d then Linear: children `bn` and `l` (the classifier heads)."""

    def __init__(self, a: int, b: int, bias: bool = True, std: float = 0.02):
        super().__init__()
        self.add_module("bn", nn.BatchNorm1d(a))
        self.add_module("l", nn.Linear(a, b, bias=bias))
        nn.init.trunc_normal_(self.l.weight, std=std)
        if bias:
            nn.init.constant_(self.l.bias, 0)

    def fuse(self) -> nn.Linear:
        return fuse_bn_linear_modules(self.bn, self.l)


class Residual(nn.Module):
    """x + m(x), with per-sample stochastic depth `drop` in training (0 in every released model)."""

    def __init__(self, m: nn.Module, drop: float = 0.0):
        super().__init__()
        self.m = m
        self.drop = drop

    def forward(self, x: Tensor) -> Tensor:
        if self.training and self.drop > 0:
            keep = torch.rand(x.size(0), 1, 1, 1, device=x.device).ge_(self.drop).div(1 - self.drop)
            return x + self.m(x) * keep.detach()
        return x + self.m(x)


class FFN(nn.Module):
    def __init__(self, ed: int, h: int):
        super().__init__()
        self.pw1 = Conv2d_BN(ed, h)
        self.act = nn.ReLU()
        self.pw2 = Conv2d_BN(h, ed, bn_weight_init=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.pw2(self.act(self.pw1(x)))


def _make_divisible(v: float, divisor: int = 8) -> int:
    """timm's channel rounding as SqueezeExcite uses it (round_limit 0); exact for LSNet's widths."""
    return max(divisor, int(v + divisor / 2) // divisor * divisor)


class SqueezeExcite(nn.Module):
    """timm's SEModule (the `SqueezeExcite` the official code imports): x * sigmoid(fc2(relu(fc1(mean(x)))))."""

    def __init__(self, channels: int, rd_ratio: float = 0.25):
        super().__init__()
        rd = _make_divisible(channels * rd_ratio)
        self.fc1 = nn.Conv2d(channels, rd, kernel_size=1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(rd, channels, kernel_size=1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


class Attention(nn.Module):
    """Stage-4 attention: 1x1 qkv, depthwise 3x3 on q, softmax(q^T k * scale + bias) over the HxW positions.

    The bias of a position pair is `attention_biases[:, attention_bias_idxs]` (one learned value per head and
    absolute (dy, dx) offset). It is gathered in every train-form forward, never cached (the official module
    caches it in `train(False)`, so weights loaded after `.eval()` were silently ignored there); the deploy form
    stores the gathered table as a buffer.
    """

    def __init__(self, dim: int, key_dim: int, num_heads: int = 8, attn_ratio: float = 4, resolution: int = 14):
        super().__init__()
        self.num_heads = num_heads
        self.scale = key_dim**-0.5
        self.key_dim = key_dim
        self.nh_kd = nh_kd = key_dim * num_heads
        self.d = int(attn_ratio * key_dim)
        self.dh = self.d * num_heads
        self.attn_ratio = attn_ratio
        self.resolution = resolution
        self.deploy = False
        self.qkv = Conv2d_BN(dim, self.dh + nh_kd * 2, ks=1)
        self.proj = nn.Sequential(nn.ReLU(), Conv2d_BN(self.dh, dim, bn_weight_init=0))
        self.dw = Conv2d_BN(nh_kd, nh_kd, 3, 1, 1, groups=nh_kd)
        points = list(itertools.product(range(resolution), range(resolution)))
        offsets: dict[tuple[int, int], int] = {}
        idxs = []
        for p1 in points:
            for p2 in points:
                off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
                idxs.append(offsets.setdefault(off, len(offsets)))
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, len(offsets)))
        self.register_buffer("attention_bias_idxs", torch.tensor(idxs, dtype=torch.long).view(len(points), -1))

    def _bias(self) -> Tensor:
        if self.deploy:
            return self.attention_bias
        return self.attention_biases[:, self.attention_bias_idxs]

    def forward(self, x: Tensor) -> Tensor:
        B, _, H, W = x.shape
        N = H * W
        q, k, v = self.qkv(x).split([self.nh_kd, self.nh_kd, self.dh], dim=1)
        q = self.dw(q)
        q = q.reshape(B, self.num_heads, -1, N)
        k = k.reshape(B, self.num_heads, -1, N)
        v = v.reshape(B, self.num_heads, -1, N)
        attn = (q.transpose(-2, -1) @ k) * self.scale + self._bias()
        attn = attn.softmax(dim=-1)
        x = (v @ attn.transpose(-2, -1)).reshape(B, -1, H, W)
        return self.proj(x)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Gather the bias table once into the buffer `attention_bias` (heads, N, N). Idempotent."""
        if self.deploy:
            return
        bias = self.attention_biases[:, self.attention_bias_idxs].detach().clone()
        del self.attention_biases
        del self.attention_bias_idxs
        self.register_buffer("attention_bias", bias)
        self.deploy = True

    def extra_repr(self) -> str:
        return f"heads={self.num_heads}, key_dim={self.key_dim}, resolution={self.resolution}, deploy={self.deploy}"


class RepVGGDW(nn.Module):
    """Depthwise 3x3 Conv2d_BN + depthwise 1x1 Conv2d_BN + identity, summed."""

    def __init__(self, ed: int):
        super().__init__()
        self.conv = Conv2d_BN(ed, ed, 3, 1, 1, groups=ed)
        self.conv1 = Conv2d_BN(ed, ed, 1, 1, 0, groups=ed)
        self.dim = ed

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) + self.conv1(x) + x

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        """The three branches as one depthwise 3x3 conv with bias."""
        w3, b3 = fuse_conv_bn(self.conv.c.weight, None, bn_stats(self.conv.bn))
        w1, b1 = fuse_conv_bn(self.conv1.c.weight, None, bn_stats(self.conv1.bn))
        ident = identity_kernel(self.dim, self.dim, 3, dtype=w3.dtype, device=w3.device)
        w, b = merge_parallel([(w3, b3), (w1, b1), (ident, torch.zeros_like(b3))], 3)
        return conv_with(self.conv.c, w, b)


class LKP(nn.Module):
    """Large-kernel perception: predicts SKA's per-pixel 3x3 weights, (B, dim/groups, sks^2, H, W)."""

    def __init__(self, dim: int, lks: int = 7, sks: int = 3, groups: int = 8):
        super().__init__()
        self.cv1 = Conv2d_BN(dim, dim // 2)
        self.act = nn.ReLU()
        self.cv2 = Conv2d_BN(dim // 2, dim // 2, ks=lks, pad=(lks - 1) // 2, groups=dim // 2)
        self.cv3 = Conv2d_BN(dim // 2, dim // 2)
        self.cv4 = nn.Conv2d(dim // 2, sks**2 * dim // groups, kernel_size=1)
        self.norm = nn.GroupNorm(num_groups=dim // groups, num_channels=sks**2 * dim // groups)
        self.sks = sks
        self.groups = groups
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.cv3(self.cv2(self.act(self.cv1(x)))))
        w = self.norm(self.cv4(x))
        b, _, h, width = w.size()
        return w.view(b, self.dim // self.groups, self.sks**2, h, width)


class LSConv(nn.Module):
    """bn(SKA(x, LKP(x))) + x."""

    def __init__(self, dim: int):
        super().__init__()
        self.lkp = LKP(dim, lks=7, sks=3, groups=8)
        self.ska = SKA()
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.ska(x, self.lkp(x))) + x

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Replace `bn` by a ChannelAffine (scale, shift). Idempotent.

        The BN cannot fold into a neighbour: SKA's weights are activations (computed per pixel by LKP), not
        parameters, so there is no kernel to scale, and they are shared by the C/G interleaved channels while
        the BN scale differs per channel. Its shift has nowhere to go either (SKA has no bias), and x itself is
        also read by LKP and the residual, so scaling x upstream would change those too. What remains is a
        per-channel Mul+Add, which a plugin fuses into SKA's epilogue together with the residual add.
        """
        if isinstance(self.bn, nn.BatchNorm2d):
            self.bn = ChannelAffine.from_bn(self.bn)


class Block(nn.Module):
    """Even depth index: RepVGGDW + SE; odd: LSConv (stages 1-3) or Residual(Attention) (stage 4). Then FFN."""

    def __init__(self, ed: int, kd: int, nh: int = 8, ar: float = 4, resolution: int = 14, stage: int = -1,
                 depth: int = -1):
        super().__init__()
        if depth % 2 == 0:
            self.mixer = RepVGGDW(ed)
            self.se = SqueezeExcite(ed, 0.25)
        else:
            self.se = nn.Identity()
            if stage == 3:
                self.mixer = Residual(Attention(ed, kd, nh, ar, resolution=resolution))
            else:
                self.mixer = LSConv(ed)
        self.ffn = Residual(FFN(ed, int(ed * 2)))

    def forward(self, x: Tensor) -> Tensor:
        return self.ffn(self.se(self.mixer(x)))


# --- model --------------------------------------------------------------------------------------------------


def _check_input_size(x: Tensor, resolution: int) -> None:
    """Stage 4 must be resolution x resolution (the attention bias table is fixed): raise otherwise."""
    if x.dim() != 4:
        raise BadInputError(f"LSNet expects an image batch (B, C, H, W), got shape {tuple(x.shape)}")
    lo, hi = 2**_HALVINGS * (resolution - 1) + 1, 2**_HALVINGS * resolution
    h, w = x.shape[-2:]
    if not (lo <= h <= hi and lo <= w <= hi):
        raise BadInputError(
            f"LSNet cannot run on a {h}x{w} input",
            why=f"its stage-4 attention bias table is fixed to a {resolution}x{resolution} map, which only "
            f"inputs of {lo}..{hi} px give",
            fix=f"resize and centre-crop inputs to a size in {lo}..{hi} px (the released models expect 224)",
        )


# Traced as one opaque call by torch.fx (reparam/pairs.py), which cannot branch on a symbolic shape.
torch.fx.wrap("_check_input_size")


class LSNet(nn.Module):
    """LSNet with the official parameter names; `distillation` adds `head_dist` (eval: mean of both heads)."""

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 8,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: tuple[int, ...] = (64, 128, 256, 384),
        key_dim: tuple[int, ...] = (16, 16, 16, 16),
        depth: tuple[int, ...] = (0, 2, 8, 10),
        num_heads: tuple[int, ...] = (3, 3, 3, 4),
        distillation: bool = False,
    ):
        super().__init__()
        c0 = embed_dim[0]
        self.patch_embed = nn.Sequential(
            Conv2d_BN(in_chans, c0 // 4, 3, 2, 1), nn.ReLU(),
            Conv2d_BN(c0 // 4, c0 // 2, 3, 2, 1), nn.ReLU(),
            Conv2d_BN(c0 // 2, c0, 3, 2, 1),
        )
        resolution = img_size // patch_size
        attn_ratio = [embed_dim[i] / (key_dim[i] * num_heads[i]) for i in range(len(embed_dim))]
        self.blocks1 = nn.Sequential()
        self.blocks2 = nn.Sequential()
        self.blocks3 = nn.Sequential()
        self.blocks4 = nn.Sequential()
        stages = [self.blocks1, self.blocks2, self.blocks3, self.blocks4]
        self.attn_resolution: int | None = None
        for i, (ed, kd, dpth, nh, ar) in enumerate(zip(embed_dim, key_dim, depth, num_heads, attn_ratio)):
            for d in range(dpth):
                stages[i].append(Block(ed, kd, nh, ar, resolution, stage=i, depth=d))
                if i == 3 and d % 2 == 1:
                    self.attn_resolution = resolution
            if i != len(depth) - 1:
                # The next stage opens with the downsample: depthwise 3x3 stride 2, then 1x1 to the new width.
                stages[i + 1].append(Conv2d_BN(ed, ed, ks=3, stride=2, pad=1, groups=ed))
                stages[i + 1].append(Conv2d_BN(ed, embed_dim[i + 1], ks=1, stride=1, pad=0))
                resolution = (resolution - 1) // 2 + 1
        self.head = BN_Linear(embed_dim[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.distillation = distillation
        if distillation:
            self.head_dist = BN_Linear(embed_dim[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.num_classes = num_classes
        self.num_features = embed_dim[-1]

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        if self.attn_resolution is not None:
            _check_input_size(x, self.attn_resolution)
        x = self.patch_embed(x)
        x = self.blocks1(x)
        x = self.blocks2(x)
        x = self.blocks3(x)
        x = self.blocks4(x)
        x = torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        if self.distillation:
            out = self.head(x), self.head_dist(x)
            return out if self.training else (out[0] + out[1]) / 2
        return self.head(x)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold the head into one Linear; a distilled model's two heads become their average. Idempotent, and
        correct whether or not a BN_Linear was already fused by someone else."""
        if self.distillation:
            heads = [_as_linear(self.head), _as_linear(self.head_dist)]
            if all(isinstance(h, nn.Linear) for h in heads):
                self.head = linear_with(*average_linears([(h.weight, h.bias) for h in heads]))
            elif all(isinstance(h, nn.Identity) for h in heads):  # num_classes == 0
                self.head = nn.Identity()
            else:
                raise TypeError(f"cannot merge heads {type(self.head).__name__} and {type(self.head_dist).__name__}")
            del self.head_dist
            self.distillation = False
        else:
            self.head = _as_linear(self.head)


def _as_linear(head: nn.Module) -> nn.Module:
    """A head as a plain Linear with bias (BN_Linear fused; a bias-free Linear given a zero bias)."""
    if isinstance(head, BN_Linear):
        return head.fuse()
    if isinstance(head, nn.Linear) and head.bias is None:
        return linear_with(head.weight, head.weight.new_zeros(head.out_features))
    return head


# --- configs ------------------------------------------------------------------------------------------------

_CONFIGS: dict[str, dict] = {
    "lsnet_t": dict(embed_dim=(64, 128, 256, 384), depth=(0, 2, 8, 10), num_heads=(3, 3, 3, 4)),
    "lsnet_s": dict(embed_dim=(96, 192, 320, 448), depth=(1, 2, 8, 10), num_heads=(3, 3, 3, 4)),
    "lsnet_b": dict(embed_dim=(128, 256, 384, 512), depth=(4, 6, 8, 10), num_heads=(3, 3, 3, 4)),
}

# Resize 256 bicubic, centre crop 224 (DeiT-style evaluation in the official main.py), ImageNet mean/std.
_INFO = ModelInfo(fixed_hw=True, interpolation="bicubic", crop_pct=0.875)


# --- checkpoints --------------------------------------------------------------------------------------------


def checkpoint_filter_fn(state_dict: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Official training checkpoints hold exactly the model's keys. One official path deletes keys: the
    fine-tuning loader (utils.load_model) drops every `attention_bias_idxs`. Those buffers are derived from
    the resolution, not learned, so missing ones are restored from the model; present ones must agree with it.
    Everything else is left to the strict loader (missing, unexpected and mis-shaped keys are errors)."""
    own = model.state_dict()
    out = dict(state_dict)
    for key, idxs in own.items():
        if not key.endswith("attention_bias_idxs"):
            continue
        if key not in out:
            out[key] = idxs.clone()
        elif out[key].shape == idxs.shape and not torch.equal(out[key].to(idxs.dtype), idxs):
            raise BadInputError(
                f"checkpoint {key} does not match the model's position index table",
                why="the checkpoint was trained for another input resolution",
                fix="pass a checkpoint of this variant at 224 px",
            )
    return out


# --- builder ------------------------------------------------------------------------------------------------


def _create_lsnet(variant: str, distillation: bool = False, **overrides) -> LSNet:
    cfg = {**_CONFIGS[variant], **overrides}
    return LSNet(distillation=distillation, **cfg)


# --- variants -----------------------------------------------------------------------------------------------


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def lsnet_t(**overrides) -> LSNet:
    return _create_lsnet("lsnet_t", **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def lsnet_s(**overrides) -> LSNet:
    return _create_lsnet("lsnet_s", **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def lsnet_b(**overrides) -> LSNet:
    return _create_lsnet("lsnet_b", **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def lsnet_t_distill(**overrides) -> LSNet:
    return _create_lsnet("lsnet_t", distillation=True, **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def lsnet_s_distill(**overrides) -> LSNet:
    return _create_lsnet("lsnet_s", distillation=True, **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def lsnet_b_distill(**overrides) -> LSNet:
    return _create_lsnet("lsnet_b", distillation=True, **overrides)
