"""ConvBN Tune mode: same outputs and gradients as Eval mode, frozen statistics, train mode untouched, exact
restore, and the pairs found wherever find_pairs finds them."""

from __future__ import annotations

import copy
import importlib.util
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from deployconv.reparam.tune_mode import TunePair, tune_mode, tune_mode_pairs, tune_mode_report
from tests.helpers import max_rel, randomize_

TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])


class _CountBatchNorm(TorchFunctionMode):
    """Counts F.batch_norm calls: a tuned pair with its BN in eval mode makes none."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.batch_norm:
            self.calls += 1
        return func(*args, **(kwargs or {}))


def _bn_calls(model: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad(), _CountBatchNorm() as counter:
        model(x)
    return counter.calls


def _saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes autograd keeps for backward, one count per storage."""
    seen: dict[tuple, int] = {}

    def pack(t):
        s = t.untyped_storage()
        seen[(s.data_ptr(), s.nbytes())] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).sum()
    return sum(seen.values())


def _run(model: nn.Module, x: torch.Tensor, g: torch.Tensor) -> dict[str, torch.Tensor]:
    """Output, input gradient and every parameter gradient of <model(x), g>."""
    model.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    out = model(x)
    (out * g).sum().backward()
    res = {"out": out.detach(), "x.grad": x.grad}
    res.update({f"{n}.grad": p.grad for n, p in model.named_parameters()})
    return res


def _assert_close(ref: dict, got: dict, tol: float) -> None:
    assert ref.keys() == got.keys()
    for k in ref:
        assert ref[k] is not None and got[k] is not None, k
        assert max_rel(ref[k], got[k]) <= tol, f"{k}: {max_rel(ref[k], got[k]):.2e} > {tol:.0e}"


def _buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: b.detach().clone() for n, b in model.named_buffers()}


def _prepare(model: nn.Module, dtype: torch.dtype, seed: int = 0) -> nn.Module:
    return randomize_(model, seed).to(dtype).eval()


def _inputs(shape, dtype, out_shape_of: nn.Module, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)
    with torch.no_grad():
        out = out_shape_of(x)
    return x, torch.randn(out.shape, generator=gen, dtype=torch.float64).to(dtype)


def _check_eval_equivalence(model: nn.Module, shape, dtype: torch.dtype) -> nn.Module:
    ref = _prepare(model, dtype)
    tuned = tune_mode(copy.deepcopy(ref))
    x, g = _inputs(shape, dtype, ref)
    before = _buffers(tuned)
    _assert_close(_run(ref, x, g), _run(tuned, x, g), TOL[dtype])
    after = _buffers(tuned)
    assert all(torch.equal(before[k], after[k]) for k in before), "running statistics changed"
    return tuned


# --- a single pair, every conv geometry -------------------------------------------------------------------

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
GEOMETRIES = {
    "2d-plain": (2, dict(kernel_size=3, padding=1)),
    "2d-reflect-nobias": (2, dict(kernel_size=3, padding=1, padding_mode="reflect", bias=False)),
    "2d-circular-dilated": (2, dict(kernel_size=3, padding=2, dilation=2, padding_mode="circular")),
    "2d-replicate-stride-groups": (2, dict(kernel_size=3, stride=2, padding=1, groups=4, padding_mode="replicate")),
    "2d-same-rect": (2, dict(kernel_size=(1, 5), padding="same", bias=False)),
    "2d-depthwise-stride-dilation": (2, dict(kernel_size=3, stride=2, dilation=3, padding=3, groups=8)),
    "2d-1x1": (2, dict(kernel_size=1)),
    "1d-stride-groups": (1, dict(kernel_size=5, padding=2, stride=2, groups=2)),
    "1d-reflect": (1, dict(kernel_size=3, padding=1, padding_mode="reflect")),
    "3d-depthwise": (3, dict(kernel_size=3, padding=1, groups=8, bias=False)),
    "3d-stride-dilation": (3, dict(kernel_size=3, stride=(1, 2, 2), dilation=2, padding=2)),
}


def _single(dim: int, affine: bool = True, **kw) -> nn.Sequential:
    return nn.Sequential(CONV[dim](8, 8, **kw), BN[dim](8, affine=affine))


def _spatial(dim: int) -> tuple[int, ...]:
    return {1: (3, 8, 20), 2: (3, 8, 12, 11), 3: (2, 8, 6, 7, 5)}[dim]


@DTYPES
@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_eval_equivalence_per_geometry(name, dtype):
    dim, kw = GEOMETRIES[name]
    tuned = _check_eval_equivalence(_single(dim, **kw), _spatial(dim), dtype)
    assert tune_mode_pairs(tuned) == [TunePair("0", "1", True)]
    assert _bn_calls(tuned, torch.randn(_spatial(dim), dtype=dtype)) == 0


@DTYPES
def test_bn_without_affine(dtype):
    _check_eval_equivalence(_single(2, affine=False, kernel_size=3, padding=1), _spatial(2), dtype)


# --- a small network ----------------------------------------------------------------------------------------


class Block(nn.Module):
    """Conv and BN as plain attributes, called in forward (not a Sequential), plus a residual branch."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.shortcut_conv = nn.Conv2d(c, c, 1)  # its output also feeds the residual add: not a pair
        self.shortcut_bn = nn.BatchNorm2d(c)

    def forward(self, x):
        s = self.shortcut_conv(x)
        return torch.relu(self.bn(self.conv(x)) + self.shortcut_bn(s) + s)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.stages = nn.Sequential(Block(8), nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, groups=2),
                                                            nn.BatchNorm2d(16), nn.ReLU()), Block(16))
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        return self.head(self.stages(self.stem(x)).mean((2, 3)))


class Untraceable(Net):
    """Data-dependent Python control flow at the root: fx fails there, find_pairs traces the children."""

    def forward(self, x):
        y = self.stages(self.stem(x))
        if y.mean() > 0:
            y = y * 2
        return self.head(y.mean((2, 3)))


NET_PAIRS = [
    TunePair("stem.0", "stem.1", True),
    TunePair("stages.0.conv", "stages.0.bn", True),
    TunePair("stages.1.0", "stages.1.1", True),
    TunePair("stages.2.conv", "stages.2.bn", True),
]


@DTYPES
@pytest.mark.parametrize("cls", [Net, Untraceable])
def test_network_eval_equivalence_and_pairs(cls, dtype):
    if cls is Untraceable:
        with pytest.raises(Exception):
            torch.fx.symbolic_trace(Untraceable())
    tuned = _check_eval_equivalence(cls(), (2, 3, 16, 16), dtype)
    assert tune_mode_pairs(tuned) == NET_PAIRS
    # Only the two shortcut BNs still run batch_norm.
    assert _bn_calls(tuned, torch.randn(2, 3, 16, 16, dtype=dtype)) == 2
    report = tune_mode_report(tuned)
    assert report.tuned == NET_PAIRS and report.skipped == []


def test_tune_mode_saves_less_for_backward():
    model = _prepare(Net(), torch.float32)
    x = torch.randn(4, 3, 32, 32)
    eval_bytes = _saved_bytes(model, x)
    tune_bytes = _saved_bytes(tune_mode(copy.deepcopy(model)), x)
    # Eval mode keeps the four paired conv outputs for the BN backward (8, 8, 16 and 16 channels at 16x16);
    # Tune mode keeps the fused weights instead (at most the size of the paired convs' parameters, twice).
    conv_outputs = 4 * 4 * (2 * 8 + 2 * 16) * 16 * 16
    fused = sum(2 * 4 * p.numel() for pair in NET_PAIRS for p in model.get_submodule(pair.conv).parameters())
    assert eval_bytes - tune_bytes >= conv_outputs - fused


# --- train mode, switching, restoring -----------------------------------------------------------------------


@DTYPES
def test_train_mode_bn_is_untouched(dtype):
    ref = _prepare(Net(), dtype).train()
    tuned = tune_mode(copy.deepcopy(ref).eval()).train()
    assert all(not p.active for p in tune_mode_pairs(tuned))
    x, g = _inputs((4, 3, 16, 16), dtype, copy.deepcopy(ref))
    start = _buffers(ref)
    _assert_close(_run(ref, x, g), _run(tuned, x, g), TOL[dtype])
    got, want = _buffers(tuned), _buffers(ref)
    for k in start:
        assert torch.allclose(got[k], want[k], rtol=TOL[dtype], atol=0), k
    assert not torch.equal(got["stem.1.running_mean"], start["stem.1.running_mean"]), "stats must update"
    assert _bn_calls(tuned, x) == 6


def test_switching_train_eval_after_enabling():
    model = _prepare(Net(), torch.float32)
    tuned = tune_mode(copy.deepcopy(model))
    x = torch.randn(2, 3, 16, 16)
    for mode in ("eval", "train", "eval", "train"):
        getattr(model, mode)()
        getattr(tuned, mode)()
        assert _bn_calls(model, x) == 6  # in train mode, this forward updates both models' statistics
        assert _bn_calls(tuned, x) == (2 if mode == "eval" else 6)
        with torch.no_grad():
            assert max_rel(model(x), tuned(x)) <= 1e-5
        assert all(p.active == (mode == "eval") for p in tune_mode_pairs(tuned))


def _fingerprint(model: nn.Module) -> dict:
    return {n: (type(m), sorted(vars(m)), len(m._forward_hooks), len(m._forward_pre_hooks))
            for n, m in model.named_modules()}


def test_disable_restores_exactly_and_enable_twice_is_harmless():
    model = _prepare(Net(), torch.float32)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        want = model(x)
    before = _fingerprint(model)
    keys = list(model.state_dict())
    tune_mode(model)
    assert tune_mode(model) is model  # twice
    assert tune_mode_pairs(model) == NET_PAIRS
    assert list(model.state_dict()) == keys
    assert [(n, type(m)) for n, m in model.named_modules()] == [(n, t) for n, (t, *_) in before.items()]
    with torch.no_grad():
        assert max_rel(want, model(x)) <= 1e-5
    assert tune_mode(model, enabled=False) is model
    assert _fingerprint(model) == before
    assert tune_mode_pairs(model) == []
    for m in model.modules():
        assert "forward" not in vars(m) and m.forward.__func__ is type(m).forward
    with torch.no_grad():
        assert torch.equal(want, model(x))
    assert _bn_calls(model, x) == 6
    tune_mode(model, enabled=False)  # disabling a plain model is a no-op
    assert _fingerprint(model) == before


def test_checkpoints_load_into_a_tuned_model():
    source = _prepare(Net(), torch.float32, seed=3)
    tuned = tune_mode(_prepare(Net(), torch.float32, seed=4))
    tuned.load_state_dict(source.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert max_rel(source(x), tuned(x)) <= 1e-5
    assert tuned.state_dict().keys() == source.state_dict().keys()


def test_deepcopy_and_pickle_follow_the_copy():
    tuned = tune_mode(_prepare(Net(), torch.float32))
    x = torch.randn(2, 3, 16, 16)
    buf = io.BytesIO()
    torch.save(tuned, buf)
    buf.seek(0)
    for clone in (copy.deepcopy(tuned), torch.load(buf, weights_only=False)):
        assert tune_mode_pairs(clone) == NET_PAIRS  # partner paths resolve inside the clone
        with torch.no_grad():
            clone.stem[1].weight.mul_(2)  # must act on the clone only
            assert max_rel(tuned(x), clone(x)) > 1e-3
            clone.stem[1].weight.div_(2)
            assert max_rel(tuned(x), clone(x)) <= 1e-6


def test_dtype_change_after_enabling():
    model = _prepare(Net(), torch.float32)
    tuned = tune_mode(copy.deepcopy(model)).double()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        assert max_rel(model.double()(x), tuned(x)) <= 1e-12


# --- what is skipped, and the guard ---------------------------------------------------------------------------


class BatchNormAct2d(nn.BatchNorm2d):
    """timm-style BN subclass with its own forward (BN then ReLU): cannot be skipped as an identity."""

    deployconv_leaf = True  # make fx see it as one call, as it sees nn.BatchNorm2d

    def forward(self, x):
        return torch.relu(super().forward(x))


class StdConv2d(nn.Conv2d):
    """Weight-standardised conv (timm's StdConv2d): its forward is not nn.Conv2d's."""

    deployconv_leaf = True

    def forward(self, x):
        w = (self.weight - self.weight.mean((1, 2, 3), keepdim=True)) / self.weight.std((1, 2, 3), keepdim=True)
        return self._conv_forward(x, w, self.bias)


def test_pairs_that_would_change_behaviour_are_skipped():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), BatchNormAct2d(8), nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8),
                          StdConv2d(8, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8))
    model = _prepare(model, torch.float64)
    seen = []
    model[2].register_forward_hook(lambda m, i, o: seen.append(o))
    ref = copy.deepcopy(model)
    tune_mode(model)
    report = tune_mode_report(model)
    assert report.tuned == [TunePair("6", "7", True)]
    assert [(s.conv, s.bn) for s in report.skipped] == [("0", "1"), ("2", "3"), ("4", "5")]
    reasons = [s.reason for s in report.skipped]
    assert "BatchNormAct2d has its own forward" in reasons[0] and "hook" in reasons[1]
    assert "StdConv2d has its own forward" in reasons[2]
    x = torch.randn(2, 3, 14, 14, dtype=torch.float64)
    with torch.no_grad():
        assert max_rel(ref(x), model(x)) <= 1e-12
    assert report.to_dict()["tuned"][0] == {"conv": "6", "bn": "7", "active": True}


def test_bn_that_misses_its_conv_output_raises_instead_of_going_wrong():
    model = tune_mode(_prepare(_single(2, kernel_size=3), torch.float32))
    model[0].register_forward_hook(lambda m, i, o: o.clone())  # added after enabling: BN gets another tensor
    with pytest.raises(RuntimeError, match="did not receive the fused output"):
        model(torch.randn(1, 8, 6, 6))


def test_reparameterize_sees_the_train_form():
    from deployconv.reparam.walker import reparameterize

    model = tune_mode(_prepare(Net(), torch.float32))
    probe = torch.randn(2, 3, 16, 16)
    deploy = reparameterize(model, probe=probe)
    assert deploy.reparam_report.passed
    assert len([r for r in deploy.reparam_report.rewrites if r.rewrite == "fold_conv_bn(fx)"]) == 4
    assert tune_mode_pairs(model) == NET_PAIRS  # the source model keeps its mode


def test_front_door_stays_callable():
    """`deployconv.reparam.tune_mode` is the function, not the submodule of the same name, on every access."""
    import deployconv.reparam as reparam
    from deployconv.reparam import tune_mode as front

    assert front is tune_mode and reparam.tune_mode is tune_mode and reparam.tune_mode is tune_mode


# --- a zoo model ------------------------------------------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("deployconv.models.repvgg") is None,
                    reason="deployconv/models/repvgg.py is not written yet")
@DTYPES
def test_repvgg_a0(dtype):
    from deployconv.models import create_model

    ref = _prepare(create_model("repvgg_a0"), dtype)
    tuned = tune_mode(copy.deepcopy(ref))
    pairs = tune_mode_pairs(tuned)
    assert len(pairs) == 2 * 22 and all(p.active for p in pairs)  # 3x3 and 1x1 branch, 22 blocks
    x, g = _inputs((2, 3, 32, 32), dtype, ref)
    before = _buffers(tuned)
    _assert_close(_run(ref, x, g), _run(tuned, x, g), TOL[dtype])
    assert all(torch.equal(v, _buffers(tuned)[k]) for k, v in before.items())
