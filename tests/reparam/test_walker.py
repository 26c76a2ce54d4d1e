"""The model-wide walker: protocol, visiting order, fx pair folding, per-rewrite checks and failures."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deployconv.core.errors import BadInputError, CheckFailedError
from deployconv.layers.modules import fuse_conv_bn_modules
from deployconv.reparam import reparameterize
from tests.helpers import max_rel, randomize_


class ConvBN(nn.Sequential):
    """LSNet/LeViT style: fuse() returns a replacement."""

    def __init__(self, cin, cout, k=3):
        super().__init__()
        self.c = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def fuse(self):
        return fuse_conv_bn_modules(self.c, self.bn)


class Wrapper(nn.Module):
    """fuse() returns a module that itself has fuse(): the walker must visit the replacement too."""

    def __init__(self, c):
        super().__init__()
        self.inner = ConvBN(c, c)

    def forward(self, x):
        return self.inner(x)

    def fuse(self):
        return nn.Sequential(self.inner)  # still unfused: the child ConvBN must be found in the replacement


class OfficialStyle(nn.Module):
    """RepVGG-official style: switch_to_deploy() deletes branches, a second call would crash."""

    def __init__(self, c):
        super().__init__()
        self.a = ConvBN(c, c)
        self.b = ConvBN(c, c, k=1)

    def forward(self, x):
        if hasattr(self, "fused"):
            return self.fused(x)
        return self.a(x) + self.b(x)

    def switch_to_deploy(self):
        fa, fb = self.a.fuse(), self.b.fuse()
        w = fa.weight + nn.functional.pad(fb.weight, (1, 1, 1, 1))
        fused = nn.Conv2d(fa.in_channels, fa.out_channels, 3, padding=1).to(w.dtype)
        fused.weight.data.copy_(w)
        fused.bias.data.copy_(fa.bias + fb.bias)
        del self.a, self.b
        self.fused = fused


class RootFuse(nn.Module):
    """A model whose root has a rewrite (like LSNet's distillation heads)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(Wrapper(4), OfficialStyle(4))
        self.h1, self.h2 = nn.Linear(4, 3), nn.Linear(4, 3)

    def forward(self, x):
        f = self.body(x).mean((2, 3))
        if hasattr(self, "head"):
            return self.head(f)
        return (self.h1(f) + self.h2(f)) / 2

    def reparameterize(self):
        h = nn.Linear(4, 3).to(self.h1.weight.dtype)
        h.weight.data.copy_((self.h1.weight + self.h2.weight) / 2)
        h.bias.data.copy_((self.h1.bias + self.h2.bias) / 2)
        del self.h1, self.h2
        self.head = h


def test_protocol_root_and_replacements_visited_fp64():
    m = randomize_(RootFuse().double()).eval()
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    ref = m(x)
    d = reparameterize(m, probe=x)
    rep = d.reparam_report
    kinds = {r.path: r.rewrite for r in rep.rewrites}
    assert kinds["<root>"] == "RootFuse.reparameterize"
    assert kinds["body.0"] == "Wrapper.fuse"
    assert kinds["body.0.0"] == "ConvBN.fuse"  # found inside what Wrapper.fuse() returned
    assert kinds["body.1"] == "OfficialStyle.switch_to_deploy"
    assert rep.remaining_batchnorm == []
    assert not any(isinstance(mm, nn.BatchNorm2d) for mm in d.modules())
    assert max_rel(ref, d(x)) <= 1e-12
    assert rep.passed and rep.fp64_max_rel_diff <= 1e-12
    # every rewrite whose input the probe reached carries its own figure
    for r in rep.rewrites:
        if r.path in ("<root>", "body.0", "body.1"):
            assert r.max_rel_diff is not None and r.max_rel_diff <= 1e-12
    # params before/after are per-rewrite
    root = next(r for r in rep.rewrites if r.path == "<root>")
    assert root.params_before - root.params_after == 15


def test_not_inplace_keeps_original_and_is_idempotent():
    m = randomize_(RootFuse()).eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(BadInputError, match="input-shape"):
        reparameterize(m)  # default probe is 3x224x224, this model takes 4 channels
    d = reparameterize(m, probe=torch.randn(1, 4, 8, 8))
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    again = reparameterize(d, probe=torch.randn(1, 4, 8, 8))  # already deploy form: nothing to do, nothing crashes
    assert [r for r in again.reparam_report.rewrites] == []
    assert again.reparam_report.passed


class Untraceable(nn.Module):
    """Data-dependent control flow at the root: fx fails there, pairs in children are still found."""

    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, groups=1), nn.BatchNorm2d(4), nn.ReLU())
        self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.block(x)
        if y.sum() > 0:  # fx cannot trace this
            y = y * 1.0
        return self.bn(self.conv(y))


def test_fx_fallback_to_children():
    m = randomize_(Untraceable()).double().eval()
    d = reparameterize(m, probe=torch.randn(1, 3, 8, 8, dtype=torch.float64))
    # the Sequential pair is folded; the root-level pair cannot be seen without tracing the root
    assert any(r.path == "block.0+block.1" for r in d.reparam_report.rewrites)
    assert d.reparam_report.remaining_batchnorm == ["bn"]


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.bn = nn.BatchNorm2d(3)
        self.bn2 = nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y  # conv output has two users: folding would be wrong


class Reused(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.bn(self.conv(self.conv(x)))  # conv called twice: cannot fold


@pytest.mark.parametrize("cls", [Shared, Reused])
def test_unsafe_pairs_are_not_folded(cls):
    m = randomize_(cls()).double().eval()
    d = reparameterize(m, probe=torch.randn(1, 3, 5, 5, dtype=torch.float64))
    assert not [r for r in d.reparam_report.rewrites if "fold" in r.rewrite]
    assert d.reparam_report.passed


class Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = ConvBN(3, 3)

    def forward(self, x):
        return self.c(x)


def test_wrong_fusion_is_caught_and_attributed(monkeypatch):
    def bad_fuse(self):
        f = fuse_conv_bn_modules(self.c, self.bn)
        f.bias.data += 0.1
        return f

    monkeypatch.setattr(ConvBN, "fuse", bad_fuse)
    m = randomize_(Broken()).eval()
    with pytest.raises(CheckFailedError, match=r"ConvBN.fuse at c"):
        reparameterize(m, probe=torch.randn(1, 3, 6, 6))


def test_fp32_tolerance_and_report_figures():
    m = randomize_(RootFuse()).eval()
    d = reparameterize(m, probe=torch.randn(2, 4, 8, 8))
    rep = d.reparam_report
    assert rep.tolerance_fp64_rel == 1e-5 and rep.passed
    assert rep.fp32_max_rel_diff < 1e-5
    assert rep.params_before > rep.params_after
    assert rep.to_dict()["rewrites"][0]["path"]
