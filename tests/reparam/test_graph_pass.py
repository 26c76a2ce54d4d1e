"""The graph pass on models with no reparameterization method: published blocks written by hand fuse to one
conv each (proven in fp64 per site and whole-model), near misses are reported and left alone, a wrong fusion
is rolled back and fails the run with its site named, and untraceable or multi-input models do not break."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from deployconv.core.errors import CheckFailedError
from deployconv.reparam import reparameterize
from deployconv.reparam.graph import fuse as fuse_mod
from deployconv.reparam.graph.fuse import graph_fuse
from tests.helpers import max_rel, randomize_
from tests.reparam.imitations import IMITATIONS, RepVGGBlock

TOL64 = 1e-10


def convs(m: nn.Module) -> int:
    return sum(isinstance(x, nn.Conv2d) for x in m.modules())


def graph_records(d: nn.Module):
    return [r for r in d.reparam_report.rewrites if r.rewrite.startswith("graph:")]


@pytest.mark.parametrize("name", sorted(IMITATIONS))
def test_imitation_blocks_fuse_to_one_conv_each_fp64(name):
    m = randomize_(IMITATIONS[name]()).double().eval()
    x = torch.randn(2, 3, 19, 17, dtype=torch.float64)
    ref = m(x)
    d = reparameterize(m, probe=x)
    rep = d.reparam_report
    blocks = list(m.blocks)
    # one conv per block: the stem, then one per block (the dilated net has a plain 1x1 before its blocks)
    assert convs(d) == 1 + len(blocks)
    assert rep.remaining_batchnorm == [] and not any(isinstance(x, nn.BatchNorm2d) for x in d.modules())
    assert rep.passed and rep.fp64_max_rel_diff <= TOL64
    assert max_rel(ref, d(x)) <= TOL64
    recs = graph_records(d)
    multi = [i for i, b in enumerate(blocks) if any(True for _ in b.children())]
    assert sorted(r.path for r in recs) == [f"blocks.{i}" for i in multi]
    for r in recs:
        assert r.rewrite == "graph:parallel" and r.max_rel_diff is not None and r.max_rel_diff <= TOL64
        assert r.params_after < r.params_before and r.replaced
    assert isinstance(d, torch.fx.GraphModule) and isinstance(d, nn.Module)


def test_dbb_reports_its_four_branches_and_folds_the_identity_based_1x1():
    m = randomize_(IMITATIONS["dbb"]()).double().eval()
    idconvs = [x for x in m.modules() if hasattr(x, "id_tensor")]
    assert idconvs  # DBB's IdentityBasedConv1x1: a functional conv on weight + identity in the traced graph
    with torch.no_grad():
        for x in idconvs:
            x.weight.normal_()
    probe = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    ref = m(probe)
    d = reparameterize(m, probe=probe)
    labels = [r.module_type for r in graph_records(d)]
    assert labels[1] == "conv3x3 + conv1x1 + conv1x1-bnpad-avgpool-bn + conv1x1-bnpad-conv3x3-bn"
    assert all(r.max_rel_diff <= TOL64 for r in graph_records(d)) and max_rel(ref, d(probe)) <= TOL64
    assert list(d.buffers()) == [] and convs(d) == 4  # id_tensor and the weight it was added to are folded


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", sorted(IMITATIONS))
def test_imitations_export_to_onnx_with_one_conv_per_block(name):
    onnx = pytest.importorskip("onnx")
    import io

    m = randomize_(IMITATIONS[name]()).eval()
    d = reparameterize(m, probe=torch.randn(1, 3, 16, 16))
    buf = io.BytesIO()
    torch.onnx.export(d, (torch.randn(1, 3, 16, 16),), buf, dynamo=False, opset_version=17)
    ops = [n.op_type for n in onnx.load_from_string(buf.getvalue()).graph.node]
    assert ops.count("Conv") == 1 + len(m.blocks)
    assert "BatchNormalization" not in ops


# -- near misses: reported, not fused, model still equivalent ------------------------------------------------

class ReluInBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return self.a(x) + F.relu(self.b(x))


class StrideMismatch(nn.Module):
    """2x2 stride 2 and 3x3 stride 1 (no padding) both give 2x2 from 4x4: summable, not one conv."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(4, 4, 2, stride=2), nn.Conv2d(4, 4, 3)

    def forward(self, x):
        return self.a(x) + self.b(x)


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.c, self.bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.c(x)) + self.c(x)


class BatchStatsBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c, self.bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4, track_running_stats=False)

    def forward(self, x):
        return self.c(x) + self.bn(x)


class BNThenPaddedConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn, self.c = nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return self.c(self.bn(x))


class BiasedOneByOneThenKxK(nn.Module):
    """DBB's 1x1-kxk branch without BNAndPad: the kxk pads the 1x1's biased output with zeros."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return self.b(self.a(x))


NEAR_MISSES = [
    (ReluInBranch, (1, 4, 6, 6), "parallel", "non-linearity between"),
    (StrideMismatch, (1, 4, 4, 4), "parallel", "stride mismatch"),
    (Shared, (1, 4, 6, 6), "chain", "shared weights"),
    (BatchStatsBN, (2, 4, 6, 6), "chain", "running statistics"),
    (BNThenPaddedConv, (1, 4, 6, 6), "chain", "padding"),
    (BiasedOneByOneThenKxK, (1, 4, 6, 6), "chain", "padding"),
]


@pytest.mark.parametrize(("cls", "shape", "pattern", "why"), NEAR_MISSES, ids=[c[0].__name__ for c in NEAR_MISSES])
def test_near_misses_are_reported_not_fused(cls, shape, pattern, why):
    m = randomize_(cls()).double().eval()
    x = torch.randn(*shape, dtype=torch.float64)
    ref = m(x)
    d = reparameterize(m, probe=x)
    assert graph_records(d) == []
    misses = d.reparam_report.near_misses
    assert any(n.pattern == pattern and why in n.reason for n in misses), misses
    assert max_rel(ref, d(x)) <= TOL64


class Chains(nn.Module):
    """What the same structures look like when they do fuse: BN before an unpadded conv, a bias-free 1x1
    before a padded kxk, LayerScale after a conv, a residual over a depthwise conv (identity branch)."""

    def __init__(self):
        super().__init__()
        self.bn, self.c0 = nn.BatchNorm2d(4), nn.Conv2d(4, 6, 3)
        self.a, self.b = nn.Conv2d(6, 8, 1, bias=False), nn.Conv2d(8, 8, 3, padding=1)
        self.gamma = nn.Parameter(torch.rand(8) + 0.5)
        self.dw = nn.Conv2d(8, 8, 5, padding=2, groups=8)

    def forward(self, x):
        y = self.c0(self.bn(x))
        y = F.relu(y)
        y = self.gamma.view(1, -1, 1, 1) * self.b(self.a(y))
        y = F.relu(y)
        return y + self.dw(y)


def test_chains_and_scales_fuse_fp64():
    m = randomize_(Chains()).double().eval()
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    ref = m(x)
    d = reparameterize(m, probe=x)
    recs = graph_records(d)
    assert [r.module_type for r in recs] == ["bn-conv3x3", "conv1x1-conv3x3-scale", "x + conv5x5"]
    assert convs(d) == 3 and not any(isinstance(p, nn.BatchNorm2d) for p in d.modules())
    assert "gamma" not in dict(d.named_parameters())
    assert all(r.max_rel_diff <= TOL64 for r in recs)
    assert max_rel(ref, d(x)) <= TOL64


# -- safety ----------------------------------------------------------------------------------------------------

def test_failed_site_is_rolled_back_and_named(monkeypatch):
    real = fuse_mod.fused_module

    def wrong(gm, site):
        conv = real(gm, site)
        if "blocks.1" in ",".join(site.modules):
            with torch.no_grad():
                conv.bias += 0.01
        return conv

    monkeypatch.setattr(fuse_mod, "fused_module", wrong)
    m = randomize_(IMITATIONS["repvgg"]()).eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(CheckFailedError, match=r"blocks\.1: conv3x3 \+ conv1x1 \+ bn\(x\)"):
        reparameterize(m, probe=torch.randn(1, 3, 16, 16))
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    result = graph_fuse(randomize_(IMITATIONS["repvgg"]()).eval(), torch.randn(1, 3, 16, 16), 1e-5)
    assert [f.path for f in result.failures] == ["blocks.1"]
    assert "blocks.1" not in {r.path for r in result.records} and len(result.records) == 2
    # the failed site kept its unfused ops
    assert any(p.startswith("blocks.1.dense") for p, _ in result.model.named_modules())


class ControlFlow(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = RepVGGBlock(4, 4)
        self.tail = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = self.block(x)
        if y.mean() > 0:  # data-dependent: fx cannot trace the root
            y = y * 2
        return self.tail(y)


def test_untraceable_root_is_a_near_miss_and_children_still_fuse():
    m = randomize_(ControlFlow()).double().eval()
    x = torch.randn(1, 4, 7, 7, dtype=torch.float64)
    ref = m(x)
    d = reparameterize(m, probe=x)
    assert type(d) is ControlFlow  # the root keeps its class; only the block became a GraphModule
    assert [r.path for r in graph_records(d)] == ["block"]
    assert any(n.pattern == "trace" and n.path == "<root>" for n in d.reparam_report.near_misses)
    assert max_rel(ref, d(x)) <= TOL64


class TwoInTwoOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.p, self.q = RepVGGBlock(4, 4), RepVGGBlock(4, 4)

    def forward(self, x, y):
        return {"a": self.p(x), "b": self.q(y) + self.p.dense(x)}  # p.dense is also used alone: shared


def test_multi_input_multi_output_model_does_not_break():
    m = randomize_(TwoInTwoOut()).double().eval()
    x, y = torch.randn(1, 4, 6, 6, dtype=torch.float64), torch.randn(1, 4, 6, 6, dtype=torch.float64)
    ref = m(x, y)
    result = graph_fuse(m, None, 1e-10)  # no single probe: structural rewrite only
    out = result.model(x, y)
    assert max_rel(ref["a"], out["a"]) <= TOL64 and max_rel(ref["b"], out["b"]) <= TOL64
    assert any("shared weights" in n.reason for n in result.near_misses)
    # p.dense is shared, so p's sum stays; its 1x1 conv + BN still folds; q fuses whole
    assert [r.path for r in result.records] == ["p.one", "q"]


def test_graph_false_and_reload_are_deterministic():
    m = randomize_(IMITATIONS["acnet"]()).eval()
    a = reparameterize(m, verify=False)
    b = reparameterize(m, probe=torch.randn(1, 3, 16, 16))
    assert list(a.state_dict()) == list(b.state_dict())
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    off = reparameterize(m, probe=torch.randn(1, 3, 16, 16), graph=False)
    assert graph_records(off) == [] and convs(off) == convs(m)


# -- property test through the whole pass: random parallel blocks, fp64 -------------------------------------

class RandomBlock(nn.Module):
    def __init__(self, c, cout, groups, stride, branches):
        super().__init__()
        self.branches = nn.ModuleList()
        for kind, k, r in branches:
            if kind == "conv":
                p = r * (k[0] - 1) // 2, r * (k[1] - 1) // 2
                self.branches.append(nn.Sequential(nn.Conv2d(c, cout, k, stride, p, r, groups, bias=False),
                                                   nn.BatchNorm2d(cout)))
            elif kind == "pool":
                self.branches.append(nn.Sequential(nn.AvgPool2d(3, stride, 1), nn.BatchNorm2d(c)))
            else:
                self.branches.append(nn.BatchNorm2d(c))

    def forward(self, x):
        out = self.branches[0](x)
        for b in self.branches[1:]:
            out = out + b(x)
        return out


@st.composite
def random_blocks(draw):
    groups = draw(st.sampled_from([1, 2, 4]))
    c = 4 * draw(st.integers(1, 2))
    stride = draw(st.integers(1, 2))
    cout = c if draw(st.booleans()) else 2 * c
    kinds = ["conv"] + (["pool", "bn"] if cout == c else []) + (["pool"] if cout == c and stride == 2 else [])
    if stride == 2:
        kinds = [k for k in kinds if k != "bn"]
    branches = [("conv", (draw(st.sampled_from([1, 3, 5])),) * 2, 1)]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(kinds))
        k = draw(st.sampled_from([(1, 1), (3, 3), (1, 3), (3, 1), (5, 5)]))
        r = draw(st.sampled_from([1, 2])) if k == (3, 3) else 1
        branches.append((kind, k, r))
    return c, cout, groups, stride, branches, draw(st.integers(0, 2**16))


@settings(max_examples=15, deadline=None)
@given(random_blocks())
def test_random_parallel_blocks_fuse_exactly_fp64(case):
    c, cout, groups, stride, branches, seed = case
    m = randomize_(RandomBlock(c, cout, groups, stride, branches), seed).double().eval()
    x = torch.randn(2, c, 9, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    ref = m(x)
    result = graph_fuse(m, x, TOL64)
    assert not result.failures
    if any(n.reason.startswith("cost:") for n in result.near_misses):
        # e.g. a dense 1x1 beside a depthwise pool, or 1x1 + 1x3 + 3x1: one dense kxk would multiply more
        # than the branches do apart, so (part of) the sum stays
        assert convs(result.model) > 1
    else:
        assert [r.rewrite for r in result.records] == ["graph:parallel"]
        assert convs(result.model) == 1
    assert max_rel(ref, result.model(x)) <= TOL64


def test_deploy_file_of_a_graph_fused_user_model_reloads(tmp_path):
    from pathlib import Path

    from deployconv.models import create_model
    from deployconv.reparam.artifact import load_deploy, save_deploy

    name = f"{Path(__file__).parents[1] / 'fixtures' / 'repvgg_style.py'}:build"
    train = create_model(name)
    deploy = reparameterize(train, probe=torch.randn(1, 3, 32, 32))
    path = save_deploy(deploy, tmp_path / "d.pt")
    again = load_deploy(path)
    x = torch.randn(2, 3, 32, 32)
    assert convs(again) == 4
    torch.testing.assert_close(again(x), deploy(x), rtol=0, atol=0)


@st.composite
def random_chains(draw):
    """A linear chain the pass must fuse whole: [BN] -> conv (unpadded after a BN) -> [BN] -> [scale]."""
    c, mid = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    k = draw(st.sampled_from([1, 3]))
    return dict(c=c, mid=mid, k=k, stride=draw(st.integers(1, 2)), dil=draw(st.integers(1, 2)),
                pre_bn=draw(st.booleans()), post_bn=draw(st.booleans()), scale=draw(st.booleans()),
                seed=draw(st.integers(0, 2**16)))


class RandomChain(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p
        self.pre = nn.BatchNorm2d(p["c"]) if p["pre_bn"] else nn.Identity()
        pad = 0 if p["pre_bn"] else p["dil"] * (p["k"] // 2)
        self.conv = nn.Conv2d(p["c"], p["mid"], p["k"], p["stride"], pad, p["dil"], bias=False)
        self.post = nn.BatchNorm2d(p["mid"]) if p["post_bn"] else nn.Identity()
        self.gamma = nn.Parameter(torch.rand(p["mid"]) + 0.5) if p["scale"] else None

    def forward(self, x):
        y = self.post(self.conv(self.pre(x)))
        return y * self.gamma.view(1, -1, 1, 1) if self.gamma is not None else y


@settings(max_examples=15, deadline=None)
@given(random_chains())
def test_random_linear_chains_fuse_exactly_fp64(p):
    m = randomize_(RandomChain(p), p["seed"]).double().eval()
    x = torch.randn(2, p["c"], 8, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(p["seed"]))
    ref = m(x)
    result = graph_fuse(m, x, TOL64)
    ops = int(p["pre_bn"]) + 1 + int(p["post_bn"]) + int(p["scale"])
    assert [r.rewrite for r in result.records] == (["graph:chain"] if ops >= 2 else [])
    assert convs(result.model) == 1 and not any(isinstance(b, nn.BatchNorm2d) for b in result.model.modules())
    assert max_rel(ref, result.model(x)) <= TOL64


def test_meta_device_model_skips_the_graph_pass_and_says_so():
    """Shapes-only (meta) models cannot be matched on values or proven: the pass is skipped with a note, not a crash
    (unireplknet's parameter-count test reparameterizes on meta)."""
    import torch
    from torch import nn

    from deployconv.reparam import reparameterize

    with torch.device("meta"):
        m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1))
    out = reparameterize(m, inplace=True, verify=False)
    assert any("meta device" in n for n in out.reparam_report.notes)
