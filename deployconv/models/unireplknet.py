"""UniRepLKNet (Ding et al., "UniRepLKNet: A Universal Perception Large-Kernel ConvNet", CVPR 2024).

The ImageNet-1k models a/f/p/n/t/s with the official parameter names, so the released checkpoints load as
they are. Both forms are built here: the train form (Dilated Reparam Blocks with their parallel dilated
branches, BatchNorms, GRN bias, layer scale) and, with `deploy=True`, the inference form the official
`reparameterize_unireplknet()` produces. Each block carries its own `reparameterize()` (in place, idempotent)
for the model-wide walker; the arithmetic is the pure math of `deployconv.layers.fusion`.

Blocks (NCHW unless said): x + drop_path(gamma * pwconv2(act(pwconv1(se(norm(dwconv(x)))))))

`features=(...)` gives the official detection/segmentation backbone form (`UniRepLKNetBackbone` of the
official mmdet/mmseg code): no final norm or head, a channels-first LayerNorm `norm{i}` on each stage output.

Over 400 lines on purpose: one official architecture per file (blocks, model, checkpoint filter, variants),
mirroring the official model file so parameter names can be checked against the checkpoint layout in one place.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

import torch
from torch import nn

from deployconv.core.errors import BadInputError
from deployconv.layers.fusion import bn_stats, dilate_kernel, fuse_conv_bn, fuse_linear_bn, merge_parallel
from deployconv.layers.modules import conv_with, is_bn, linear_with
from deployconv.models.registration import ModelInfo, register_model

# (kernel k, dilation r) of the parallel branches of a Dilated Reparam Block, by its large kernel size K.
DEFAULT_DILATED_BRANCHES: dict[int, tuple[tuple[int, int], ...]] = {
    17: ((5, 1), (9, 2), (3, 4), (3, 5), (3, 7)),
    15: ((5, 1), (7, 2), (3, 3), (3, 5), (3, 7)),
    13: ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5)),
    11: ((5, 1), (5, 2), (3, 3), (3, 4), (3, 5)),
    9: ((5, 1), (5, 2), (3, 3), (3, 4)),
    7: ((5, 1), (3, 2), (3, 3)),
    5: ((3, 1), (3, 2)),
}


def check_branches(kernel_size: int, branches: Sequence[Sequence[int]] | None) -> tuple[tuple[int, int], ...]:
    """Validate a branch spec [(k, r), ...] for a KxK Dilated Reparam Block (None: the official table).

    A dilated kxk branch covers r(k-1)+1 pixels; it must fit in K and be centrable in it (odd sizes), so
    that the 'same' padding r(k-1)/2 keeps the spatial size and the merged kernel is exact.
    """
    if branches is None:
        if kernel_size not in DEFAULT_DILATED_BRANCHES:
            raise ValueError(f"no default dilated branches for kernel size {kernel_size}; "
                             f"official sizes are {sorted(DEFAULT_DILATED_BRANCHES)}, or pass `branches`")
        return DEFAULT_DILATED_BRANCHES[kernel_size]
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"the large kernel must be odd, got {kernel_size}")
    spec = tuple((int(k), int(r)) for k, r in branches)
    for k, r in spec:
        if k < 1 or k % 2 == 0 or r < 1:
            raise ValueError(f"branch (k={k}, r={r}): k must be odd and positive, r positive")
        if r * (k - 1) + 1 > kernel_size:
            raise ValueError(f"branch (k={k}, r={r}) spans {r * (k - 1) + 1} > {kernel_size} pixels")
    if len(set(spec)) != len(spec):
        raise ValueError(f"duplicate branches in {spec}")
    return spec


class DropPath(nn.Module):
    """Stochastic depth per sample (training only; identity at eval)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of NCHW (the official channels_first LayerNorm; eps inside the sqrt)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        x = (x - mu) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class NCHWtoNHWC(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1)


class NHWCtoNCHW(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2)


class GRNwithNHWC(nn.Module):
    """Global Response Normalization (ConvNeXt V2) on NHWC: (gamma * Nx + 1) * x + beta, with
    Nx = ||x||_2 over H,W per channel divided by (its mean over channels + 1e-6).

    The deploy form has no beta (it is folded into the next Linear); the gamma term depends on the data and
    stays.
    """

    def __init__(self, dim: int, use_bias: bool = True):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        if use_bias:
            self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))
        else:
            self.register_parameter("beta", None)

    @property
    def use_bias(self) -> bool:
        return self.beta is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.linalg.vector_norm(x, ord=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        out = (self.gamma * nx + 1) * x
        return out if self.beta is None else out + self.beta


class SEBlock(nn.Module):
    """Squeeze-and-excitation on NCHW: x * sigmoid(up(relu(down(mean_hw(x)))))."""

    def __init__(self, channels: int, internal: int):
        super().__init__()
        self.down = nn.Conv2d(channels, internal, 1, bias=True)
        self.up = nn.Conv2d(internal, channels, 1, bias=True)
        self.nonlinear = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.up(self.nonlinear(self.down(s))))


class DilatedReparamBlock(nn.Module):
    """Depthwise KxK conv + BN in parallel with depthwise dilated kxk convs + BN, summed (NCHW).

    `branches`: [(k, r), ...] (None: the official table for K). Deploy form: `lk_origin` alone, with bias.
    """

    def __init__(self, channels: int, kernel_size: int, deploy: bool = False,
                 branches: Sequence[Sequence[int]] | None = None):
        super().__init__()
        self.kernel_size = kernel_size
        self.branches = check_branches(kernel_size, branches)
        self.lk_origin = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels,
                                   bias=deploy)
        if not deploy:
            self.origin_bn = nn.BatchNorm2d(channels)
            for k, r in self.branches:
                conv = nn.Conv2d(channels, channels, k, padding=(r * (k - 1) + 1) // 2, dilation=r,
                                 groups=channels, bias=False)
                self.add_module(f"dil_conv_k{k}_{r}", conv)
                self.add_module(f"dil_bn_k{k}_{r}", nn.BatchNorm2d(channels))

    @property
    def is_deploy(self) -> bool:
        return not hasattr(self, "origin_bn")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_deploy:
            return self.lk_origin(x)
        out = self.origin_bn(self.lk_origin(x))
        for k, r in self.branches:
            out = out + getattr(self, f"dil_bn_k{k}_{r}")(getattr(self, f"dil_conv_k{k}_{r}")(x))
        return out

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Merge all branches into `lk_origin` (in place; no-op in deploy form).

        Each branch is BN(conv(x)) = conv_{W*s}(x) + t (fuse_conv_bn). A kxk kernel at dilation r equals a
        dense (r(k-1)+1)^2 kernel with its taps on every r-th position and zeros between (dilate_kernel);
        zero-padded to KxK around the centre it is the same function at padding K//2 (pad_kernel). Depthwise
        convs with equal stride and padding are linear in the kernel, so the sum of branches is one KxK conv
        with the summed kernels and biases (merge_parallel)."""
        if self.is_deploy:
            return
        parts = [fuse_conv_bn(self.lk_origin.weight, self.lk_origin.bias, bn_stats(self.origin_bn))]
        for k, r in self.branches:
            w, b = fuse_conv_bn(getattr(self, f"dil_conv_k{k}_{r}").weight, None,
                                bn_stats(getattr(self, f"dil_bn_k{k}_{r}")))
            parts.append((dilate_kernel(w, r), b))
        weight, bias = merge_parallel(parts, self.kernel_size)
        self.lk_origin = conv_with(self.lk_origin, weight, bias)
        del self.origin_bn
        for k, r in self.branches:
            delattr(self, f"dil_conv_k{k}_{r}")
            delattr(self, f"dil_bn_k{k}_{r}")

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, branches={list(self.branches)}, deploy={self.is_deploy}"


class UniRepLKNetBlock(nn.Module):
    """dwconv (plain depthwise for K in {3, 5}, Dilated Reparam Block for K >= 7, identity for K=0), BN,
    SE, then the GRN feed-forward (Linear 4x, GELU, GRN, Linear, BN) with layer scale, plus the residual."""

    def __init__(self, dim: int, kernel_size: int, drop_path: float = 0.0, layer_scale_init_value: float = 1e-6,
                 deploy: bool = False, ffn_factor: int = 4,
                 branches: Sequence[Sequence[int]] | None = None):
        super().__init__()
        if kernel_size == 0:
            self.dwconv = nn.Identity()
        elif kernel_size >= 7:
            self.dwconv = DilatedReparamBlock(dim, kernel_size, deploy=deploy, branches=branches)
        elif kernel_size in (3, 5):
            self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, bias=deploy)
        else:
            raise ValueError(f"UniRepLKNet block kernel size must be 0, 3, 5 or >= 7, got {kernel_size}")
        self.norm = nn.Identity() if deploy or kernel_size == 0 else nn.BatchNorm2d(dim)
        self.se = SEBlock(dim, dim // 4)
        ffn_dim = int(ffn_factor * dim)
        self.pwconv1 = nn.Sequential(NCHWtoNHWC(), nn.Linear(dim, ffn_dim))
        self.act = nn.Sequential(nn.GELU(), GRNwithNHWC(ffn_dim, use_bias=not deploy))
        tail = [] if deploy else [nn.BatchNorm2d(dim)]
        self.pwconv2 = nn.Sequential(nn.Linear(ffn_dim, dim, bias=deploy), NHWCtoNCHW(), *tail)
        if not deploy and layer_scale_init_value is not None and layer_scale_init_value > 0:
            self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim))
        else:
            self.register_parameter("gamma", None)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(self.norm(self.dwconv(x)))
        y = self.pwconv2(self.act(self.pwconv1(y)))
        if self.gamma is not None:
            y = self.gamma.view(1, -1, 1, 1) * y
        return x + self.drop_path(y)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold everything static into the two convs around SE and the FFN (in place, idempotent)."""
        if isinstance(self.dwconv, DilatedReparamBlock):
            self.dwconv.reparameterize()
        if is_bn(self.norm):
            # norm(conv(x)) = s * (W x + b) + t = (s W) x + (s b + t)   (fuse_conv_bn)
            conv = self.dwconv.lk_origin if isinstance(self.dwconv, DilatedReparamBlock) else self.dwconv
            fused = conv_with(conv, *fuse_conv_bn(conv.weight, conv.bias, bn_stats(self.norm)))
            if isinstance(self.dwconv, DilatedReparamBlock):
                self.dwconv.lk_origin = fused
            else:
                self.dwconv = fused
            self.norm = nn.Identity()

        linear, grn = self.pwconv2[0], self.act[1]
        weight = linear.weight
        bias = linear.bias if linear.bias is not None else weight.new_zeros(weight.shape[0])
        changed = False
        if grn.beta is not None:
            # Linear(u + beta) = W u + (W beta + b): GRN keeps (gamma * Nx + 1) * x, its beta moves here.
            bias = bias + weight @ grn.beta.reshape(-1)
            grn.beta = None
            changed = True
        if len(self.pwconv2) == 3 and is_bn(self.pwconv2[2]):
            # BN after NHWC->NCHW scales output features: s * (W u + b) + t = (s W) u + (s b + t)
            weight, bias = fuse_linear_bn(weight, bias, bn_stats(self.pwconv2[2]))
            changed = True
        if self.gamma is not None:
            # Layer scale per output channel: g * (W u + b) = (g W) u + g b
            weight, bias = weight * self.gamma.reshape(-1, 1), bias * self.gamma
            self.gamma = None
            changed = True
        if changed:
            self.pwconv2 = nn.Sequential(linear_with(weight, bias), NHWCtoNCHW())


# Kernel sizes per block, by depths (the official defaults): stage 1 3x3, stages 2-4 13x13, except that
# stage 3 alternates 13,3 in unireplknet_t and repeats 13,3,3 in unireplknet_s.
DEFAULT_KERNEL_SIZES: dict[tuple[int, ...], tuple[tuple[int, ...], ...]] = {
    (2, 2, 6, 2): ((3,) * 2, (13,) * 2, (13,) * 6, (13,) * 2),
    (2, 2, 8, 2): ((3,) * 2, (13,) * 2, (13,) * 8, (13,) * 2),
    (3, 3, 18, 3): ((3,) * 3, (13,) * 3, (13, 3) * 9, (13,) * 3),
    (3, 3, 27, 3): ((3,) * 3, (13,) * 3, (13, 3, 3) * 9, (13,) * 3),
}


FEATURE_STAGES = ("c2", "c3", "c4", "c5")  # stages 1..4: strides 4, 8, 16, 32


class UniRepLKNet(nn.Module):
    """Stem (two stride-2 3x3 convs with channels-first LayerNorms), 4 stages with stride-2 downsampling,
    global average pool, LayerNorm, Linear head. Any input size (stride 32) works."""

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        depths: Sequence[int] = (3, 3, 27, 3),
        dims: Sequence[int] = (96, 192, 384, 768),
        drop_path_rate: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        head_init_scale: float = 1.0,
        kernel_sizes: Sequence[Sequence[int]] | None = None,
        deploy: bool = False,
        features: Sequence[str] | None = None,
    ):
        super().__init__()
        depths, dims = tuple(depths), tuple(dims)
        unknown = sorted(set(features or ()) - set(FEATURE_STAGES))
        if unknown:
            raise BadInputError(f"unknown feature stage(s) {unknown}", fix=f"choose from {', '.join(FEATURE_STAGES)}")
        self.features = tuple(features) if features else None
        if kernel_sizes is None:
            if depths not in DEFAULT_KERNEL_SIZES:
                raise ValueError(f"no default kernel sizes for depths {depths}; pass kernel_sizes per block")
            kernel_sizes = DEFAULT_KERNEL_SIZES[depths]
        kernel_sizes = tuple(tuple(ks) for ks in kernel_sizes)
        if [len(ks) for ks in kernel_sizes] != list(depths):
            raise ValueError(f"kernel_sizes {kernel_sizes} do not match depths {depths}")
        # What it takes to build a twin of this model (used to fold train-form checkpoints, see below).
        self.arch = dict(in_chans=in_chans, num_classes=num_classes, depths=depths, dims=dims,
                         layer_scale_init_value=layer_scale_init_value, kernel_sizes=kernel_sizes,
                         features=self.features)
        self.num_classes = num_classes

        self.downsample_layers = nn.ModuleList([nn.Sequential(
            nn.Conv2d(in_chans, dims[0] // 2, 3, stride=2, padding=1),
            LayerNorm2d(dims[0] // 2),
            nn.GELU(),
            nn.Conv2d(dims[0] // 2, dims[0], 3, stride=2, padding=1),
            LayerNorm2d(dims[0]),
        )])
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(
                nn.Conv2d(dims[i], dims[i + 1], 3, stride=2, padding=1), LayerNorm2d(dims[i + 1])))

        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.stages = nn.ModuleList()
        cur = 0
        for i in range(4):
            self.stages.append(nn.Sequential(*[
                UniRepLKNetBlock(dims[i], kernel_sizes[i][j], drop_path=rates[cur + j],
                                 layer_scale_init_value=layer_scale_init_value, deploy=deploy)
                for j in range(depths[i])
            ]))
            cur += depths[i]

        if self.features is not None:
            # The official backbone normalises every stage output (norm0..norm3, all four, whichever are
            # returned), so detection checkpoints map key for key; it has no final norm and no head.
            for i in range(4):
                self.add_module(f"norm{i}", LayerNorm2d(dims[i]))
            self.apply(self._init_weights)
            return
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)
        if isinstance(self.head, nn.Linear):
            with torch.no_grad():
                self.head.weight.mul_(head_init_scale)
                self.head.bias.mul_(head_init_scale)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(x.mean((-2, -1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        if self.features is None:
            return self.forward_head(self.forward_features(x))
        out = {}  # {c2: stride 4, c3: 8, c4: 16, c5: 32}, each through its norm{i}, as the FPN takes them
        for i, (name, down, stage) in enumerate(zip(FEATURE_STAGES, self.downsample_layers, self.stages)):
            x = stage(down(x))
            if name in self.features:
                out[name] = getattr(self, f"norm{i}")(x)
            if len(out) == len(self.features):
                break
        return out


def _is_train_layout(keys) -> bool:
    return any(".pwconv2.2." in k for k in keys)


def _is_deploy_layout(keys) -> bool:
    return any(k.endswith(".pwconv2.0.bias") for k in keys)


def _fill_bn_counters(sd: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add the BatchNorm `num_batches_tracked` counters `own` has and `sd` lacks (0; unused at eval)."""
    sd = dict(sd)
    for k in own:
        if k.endswith(".num_batches_tracked") and k not in sd and k.rsplit(".", 1)[0] + ".running_mean" in sd:
            sd[k] = torch.zeros((), dtype=torch.long)
    return sd


_BACKBONE_NORM_KEYS = "norm[0-3].*"  # the backbone's per-stage norms: absent from an ImageNet checkpoint


@torch.no_grad()
def _fold_train_checkpoint(sd: dict[str, torch.Tensor], model: UniRepLKNet) -> dict[str, torch.Tensor]:
    """A train-form state dict as the deploy-form one (folded in fp64 on a train-form twin of `model`).
    Returns `sd` unchanged when it does not fit the twin, so the strict loader reports what differs. A
    backbone's per-stage norms, which an ImageNet checkpoint lacks, stay absent from the result, so the loader
    still asks for --allow-missing (they are never folded, so their absence changes nothing here)."""
    twin = UniRepLKNet(**model.arch, deploy=False).double()
    own = twin.state_dict()
    sd = _fill_bn_counters(sd, own)
    gaps = set(own) - set(sd)
    if (set(sd) - set(own) or any(not fnmatch.fnmatch(k, _BACKBONE_NORM_KEYS) for k in gaps)
            or any(sd[k].shape != own[k].shape for k in own if k in sd)):
        return sd
    twin.load_state_dict(sd, strict=not gaps)
    for m in twin.modules():
        if isinstance(m, UniRepLKNetBlock):
            m.reparameterize()
    target = model.state_dict()
    return {k: v.to(target[k].dtype) if k in target else v for k, v in twin.state_dict().items() if k not in gaps}


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Map official checkpoints onto `model`.

    - Official train-form files (raw, or under 'model'/'state_dict', unwrapped by the loader) load as they are.
    - Deploy-form files (saved after the official `reparameterize_unireplknet()`) load into `deploy=True`.
    - A train-form file given to a deploy-form model is folded here, exactly as the model's reparameterize.
    - A deploy-form file cannot be split back into branches: a train-form model refuses it with a fix.
    - BatchNorm `num_batches_tracked` counters, which some conversion scripts drop, are filled with 0 (they
      play no part at eval).
    - Detection/segmentation checkpoints (official mmdet/mmseg): the backbone sits under `backbone.`; the prefix
      is stripped and the detector's other parts (neck, heads) dropped. A backbone-form model drops an ImageNet
      checkpoint's final `norm`/`head`; its own per-stage `norm0..3` are then missing, which the loader reports
      and `--allow-missing 'norm[0-3].*'` accepts (the official backbone also starts them at 1/0).
    """
    own = model.state_dict()
    sd = dict(state_dict)
    if any(k.startswith("backbone.") for k in sd):
        sd = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    if "norm0.weight" in own and "head.weight" not in own:
        sd = {k: v for k, v in sd.items() if not k.startswith(("norm.", "head."))}
    sd = _fill_bn_counters(sd, own)
    if _is_deploy_layout(own) and _is_train_layout(sd) and isinstance(model, UniRepLKNet):
        sd = _fold_train_checkpoint(sd, model)
    elif _is_train_layout(own) and _is_deploy_layout(sd) and not _is_train_layout(sd):
        raise BadInputError(
            "checkpoint is a deploy-form (reparameterized) UniRepLKNet",
            why="its dilated branches, BatchNorms, GRN bias and layer scale are already folded into single "
                "convs/linears and cannot be split back into the train-form model",
            fix="build the model in deploy form: create_model(name, weights=path, deploy=True)",
        )
    return sd


# Official ImageNet evaluation (datasets.py in the official repo): bicubic resize to 224/0.875 = 256, center
# crop 224, ImageNet default mean/std. Any size works (no fixed-size layer).
_INFO = ModelInfo(input_size=(3, 224, 224), crop_pct=0.875, interpolation="bicubic")


def _create(depths: tuple[int, ...], dims: tuple[int, ...], **overrides) -> UniRepLKNet:
    return UniRepLKNet(depths=depths, dims=dims, **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def unireplknet_a(**overrides) -> UniRepLKNet:
    return _create((2, 2, 6, 2), (40, 80, 160, 320), **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def unireplknet_f(**overrides) -> UniRepLKNet:
    return _create((2, 2, 6, 2), (48, 96, 192, 384), **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def unireplknet_p(**overrides) -> UniRepLKNet:
    return _create((2, 2, 6, 2), (64, 128, 256, 512), **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def unireplknet_n(**overrides) -> UniRepLKNet:
    return _create((2, 2, 8, 2), (80, 160, 320, 640), **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def unireplknet_t(**overrides) -> UniRepLKNet:
    return _create((3, 3, 18, 3), (80, 160, 320, 640), **overrides)


@register_model(info=_INFO, filter_fn=checkpoint_filter_fn)
def unireplknet_s(**overrides) -> UniRepLKNet:
    return _create((3, 3, 27, 3), (96, 192, 384, 768), **overrides)


# The size the official repo deploys for COCO (Cascade Mask R-CNN 3x, ImageNet-1k pretrained, with a deploy
# config): UniRepLKNet-T. mmdet resizes to 1333x800 (bilinear) and pads to a multiple of 32: 800x1344.
# Batch 1..4 keeps the TensorRT profile's max activation memory sane at 1344x1344.
BACKBONE_INFO = ModelInfo(input_size=(3, 800, 1344), interpolation="bilinear", crop_pct=1.0, num_classes=0,
                          optional_keys=(_BACKBONE_NORM_KEYS,), inputs=("input=Bx3xHxW",),
                          dims=("B=1..1..4", "H=320..800..1344", "W=320..1344..1344"))


@register_model(info=BACKBONE_INFO, filter_fn=checkpoint_filter_fn, tags=("backbone",))
def unireplknet_t_backbone(**overrides) -> UniRepLKNet:
    """unireplknet_t as a detection backbone: {c2, c3, c4, c5} (strides 4/8/16/32, each through its norm{i}, as
    the official FPN takes them), exported at 800x1344 with dynamic H/W (320..1344)."""
    overrides.setdefault("features", FEATURE_STAGES)
    return _create((3, 3, 18, 3), (80, 160, 320, 640), **overrides)
