"""ConvBN Tune mode: fine-tune a Conv->BN(eval) pair as one conv whose weights are fused on every forward.

From "Efficient ConvBN Blocks for Transfer Learning and Beyond" (Kaichao You et al., ICLR 2024). With the BN
in eval mode, `bn(conv(x))` equals `conv(x, W * c, beta + c * (b - mean))` with `c = gamma / sqrt(var + eps)`.
Computing the right-hand side on every forward gives the same outputs and the same gradients for W, b, gamma,
beta and x as Eval mode, but autograd no longer keeps the conv output for the BN backward: one feature map per
pair less memory, and one elementwise pass less per pair in both directions.

How: the forward of each eligible conv and its BN is replaced on the instance (an entry in the module's
`__dict__`), never in the module tree, so state_dict keys, module paths, `named_modules()` and the
reparameterization walker see exactly the same Conv and BN as before. Each call checks the BN's mode:
  - BN in eval mode with running statistics: the conv computes the fused conv; the BN passes that very tensor
    through (and only that tensor: a BN given anything else while its conv's tuned output is still pending
    raises, it never silently normalises twice or not at all);
  - BN in train mode: both modules run their ordinary forwards (batch statistics, running stats updated).
`tune_mode(model, False)` deletes those entries, restoring the class forwards exactly.

Pairs come from `find_pairs` (torch.fx, falling back to submodules where the root cannot be traced), which
guarantees the conv's output feeds only its BN and each is called once. Pairs are skipped (and reported) where
the patch could change behaviour: a Conv or BN subclass with its own forward (timm's BatchNormAct2d, StdConv2d),
a forward already replaced on the instance, a forward hook on the conv (it would see the BN output) or a
forward pre-hook on the BN (it would see the fused output). Hooks added after enabling are the caller's
responsibility. Runtime cost: one (out, in/g, k, k) multiply per pair per forward.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from deployconv.layers.fusion import bn_stats, fuse_conv_bn
from deployconv.reparam.pairs import find_pairs

__all__ = ["SkippedPair", "TuneModeReport", "TunePair", "tune_mode", "tune_mode_pairs", "tune_mode_report"]

_CONV_BASES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BN_FORWARD = nn.modules.batchnorm._BatchNorm.forward


@dataclass(frozen=True)
class TunePair:
    conv: str  # module path relative to the model asked
    bn: str
    active: bool  # BN in eval mode now: its next call runs the fused conv


@dataclass(frozen=True)
class SkippedPair:
    conv: str
    bn: str
    reason: str


@dataclass
class TuneModeReport:
    tuned: list[TunePair] = field(default_factory=list)
    skipped: list[SkippedPair] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _frozen(bn: nn.Module) -> bool:
    """The BN normalises with its running statistics (what F.batch_norm does in eval mode)."""
    return not bn.training and bn.running_mean is not None and bn.running_var is not None


class _TunedConv:
    """Instance-level forward of a tuned conv. A plain object (not a closure, not a bound method), so that
    deepcopy maps its references onto the copied modules and pickling works."""

    def __init__(self, conv: nn.Module, bn: nn.Module):
        self.conv, self.bn = conv, bn
        # The fused output until its BN takes it (a strong reference: a weak one dies when a hook replaces
        # the output, which is exactly the case to catch). Released by the BN call that follows at once.
        self.pending: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        conv, bn = self.conv, self.bn
        if not _frozen(bn):
            self.pending = None
            return conv._conv_forward(x, conv.weight, conv.bias)
        w, b = fuse_conv_bn(conv.weight, conv.bias, bn_stats(bn))
        if w.dtype != conv.weight.dtype:
            w, b = w.to(conv.weight.dtype), b.to(conv.weight.dtype)
        out = conv._conv_forward(x, w, b)
        self.pending = out
        return out

    def __getstate__(self) -> dict:
        return {"conv": self.conv, "bn": self.bn, "pending": None}


class _TunedBN:
    """Instance-level forward of a tuned BN: identity on its conv's fused output, the class forward otherwise."""

    def __init__(self, bn: nn.Module, conv_forward: _TunedConv):
        self.bn, self.conv_forward = bn, conv_forward

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        pending = self.conv_forward.pending
        if pending is not None:
            self.conv_forward.pending = None
            if pending is x and _frozen(self.bn):
                return x
            raise RuntimeError(
                "tune_mode: a BatchNorm did not receive the fused output of its conv (a hook or a forward "
                "that differs from the traced one sits between them); call tune_mode(model, False)"
            )
        return type(self.bn).forward(self.bn, x)


def _ours(m: nn.Module) -> _TunedConv | _TunedBN | None:
    f = m.__dict__.get("forward")
    return f if isinstance(f, (_TunedConv, _TunedBN)) else None


def _restore(m: nn.Module) -> None:
    f = _ours(m)
    if f is None:
        return
    del m.__dict__["forward"]
    partner = f.bn if isinstance(f, _TunedConv) else f.conv_forward.conv
    if _ours(partner) is not None:
        del partner.__dict__["forward"]


def _skip_reason(conv: nn.Module, bn: nn.Module) -> str | None:
    base = next(c for c in _CONV_BASES if isinstance(conv, c))
    if type(conv).forward is not base.forward or type(conv)._conv_forward is not base._conv_forward:
        return f"{type(conv).__name__} has its own forward"
    if type(bn).forward is not _BN_FORWARD:
        return f"{type(bn).__name__} has its own forward"
    for m in (conv, bn):
        if "forward" in m.__dict__ and _ours(m) is None:
            return f"{type(m).__name__}.forward is already replaced on the instance"
    if conv._forward_hooks:
        return "the conv has forward hooks (they would see the BN output)"
    if bn._forward_pre_hooks:
        return "the BN has forward pre-hooks (they would see the fused output)"
    return None


def tune_mode(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch every eligible Conv->BN pair of `model` to Tune mode (in place), or back with enabled=False.

    Tune mode acts while a pair's BN is in eval mode and is re-checked on every call, so `.train()` / `.eval()`
    may be switched freely afterwards. Enabling again re-traces the model (harmless, picks up changes).
    `tune_mode_pairs(model)` lists what is switched; `tune_mode_report(model)` also lists what was skipped.
    """
    for m in model.modules():
        _restore(m)
    if not enabled:
        return model
    for pair in find_pairs(model):
        if pair.kind != "conv_bn":
            continue
        conv, bn = model.get_submodule(pair.first), model.get_submodule(pair.second)
        if _skip_reason(conv, bn) is None:
            conv_forward = _TunedConv(conv, bn)
            # object.__setattr__: a plain instance attribute, never a submodule, parameter or buffer.
            object.__setattr__(conv, "forward", conv_forward)
            object.__setattr__(bn, "forward", _TunedBN(bn, conv_forward))
    return model


def tune_mode_pairs(model: nn.Module) -> list[TunePair]:
    """The pairs in Tune mode now (no tracing: read from the modules), in module order."""
    paths = {id(m): p for p, m in model.named_modules()}
    out = []
    for path, m in model.named_modules():
        f = _ours(m)
        if isinstance(f, _TunedConv):
            out.append(TunePair(path, paths.get(id(f.bn), "<outside this model>"), _frozen(f.bn)))
    return out


def tune_mode_report(model: nn.Module) -> TuneModeReport:
    """Tuned pairs, plus the fx-found Conv->BN pairs left in their ordinary forward and why."""
    report = TuneModeReport(tuned=tune_mode_pairs(model))
    tuned = {(p.conv, p.bn) for p in report.tuned}
    for pair in find_pairs(model):
        if pair.kind != "conv_bn" or (pair.first, pair.second) in tuned:
            continue
        conv, bn = model.get_submodule(pair.first), model.get_submodule(pair.second)
        reason = _skip_reason(conv, bn) or "tune mode not enabled for this pair"
        report.skipped.append(SkippedPair(pair.first, pair.second, reason))
    return report
