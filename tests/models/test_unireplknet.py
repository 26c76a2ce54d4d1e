"""The UniRepLKNet zoo: official sizes and key layout, whole-model reparameterization (fp64 proof, fp32
rounding), deploy-form construction and checkpoint loading through the registry."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from deployconv.core.errors import BadInputError
from deployconv.models import create_model, get_model_spec
from deployconv.models.unireplknet import GRNwithNHWC, UniRepLKNetBlock, unireplknet_a
from deployconv.reparam import reparameterize
from tests.helpers import max_rel
from tests.reparam.test_dilated_reparam import randomize_all_

# Train-form parameter counts of the official code (shared/facts/models.md).
PARAMS = {
    "unireplknet_a": 4_649_060,
    "unireplknet_f": 6_489_328,
    "unireplknet_p": 11_080_520,
    "unireplknet_n": 18_818_880,
    "unireplknet_t": 31_693_420,
    "unireplknet_s": 56_456_704,
}



def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(scope="module")
def a64():
    """unireplknet_a in fp64 with every BN/GRN/layer-scale term random, its deploy form and a probe."""
    model = randomize_all_(unireplknet_a().double().eval(), seed=7)
    probe = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return model, reparameterize(model, probe=probe), probe


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_param_counts(name):
    spec = get_model_spec(name)
    assert spec.family == "unireplknet"
    with torch.device("meta"):  # construction only: the large ones cost nothing
        train, deploy = spec.builder(), spec.builder(deploy=True)
    assert n_params(train) == PARAMS[name]
    # Deploy form built directly == train form reparameterized (shapes only, on meta).
    folded = reparameterize(train, inplace=True, verify=False)
    assert {k: v.shape for k, v in folded.state_dict().items()} == {k: v.shape for k, v in deploy.state_dict().items()}


def test_registered_info():
    info = get_model_spec("unireplknet_t").info
    assert info.input_size == (3, 224, 224) and not info.fixed_hw
    assert info.crop_pct == 0.875 and info.interpolation == "bicubic"


# Key counts and names measured by running the official unireplknet.py (train form / after its
# reparameterize_unireplknet(), which equals deploy=True).
@pytest.mark.parametrize("name, n_train, n_deploy", [("unireplknet_a", 626, 156), ("unireplknet_t", 1116, 321)])
def test_key_layout(name, n_train, n_deploy):
    with torch.device("meta"):
        train = create_model(name).state_dict()
        deploy = create_model(name, deploy=True).state_dict()
    assert (len(train), len(deploy)) == (n_train, n_deploy)
    c0, c1 = (40, 80) if name.endswith("_a") else (80, 160)
    expect_train = {
        "downsample_layers.0.0.weight": (c0 // 2, 3, 3, 3),
        "downsample_layers.0.1.weight": (c0 // 2,),
        "downsample_layers.0.3.weight": (c0, c0 // 2, 3, 3),
        "downsample_layers.0.4.bias": (c0,),
        "downsample_layers.1.0.weight": (c1, c0, 3, 3),
        "downsample_layers.1.1.weight": (c1,),
        "stages.0.0.dwconv.weight": (c0, 1, 3, 3),
        "stages.0.0.norm.running_var": (c0,),
        "stages.0.0.se.down.weight": (c0 // 4, c0, 1, 1),
        "stages.0.0.se.up.bias": (c0,),
        "stages.0.0.pwconv1.1.weight": (4 * c0, c0),
        "stages.0.0.act.1.gamma": (1, 1, 1, 4 * c0),
        "stages.0.0.act.1.beta": (1, 1, 1, 4 * c0),
        "stages.0.0.pwconv2.0.weight": (c0, 4 * c0),
        "stages.0.0.pwconv2.2.running_mean": (c0,),
        "stages.0.0.gamma": (c0,),
        "stages.1.0.dwconv.lk_origin.weight": (c1, 1, 13, 13),
        "stages.1.0.dwconv.origin_bn.num_batches_tracked": (),
        "stages.1.0.dwconv.dil_conv_k5_1.weight": (c1, 1, 5, 5),
        "stages.1.0.dwconv.dil_conv_k7_2.weight": (c1, 1, 7, 7),
        "stages.1.0.dwconv.dil_conv_k3_5.weight": (c1, 1, 3, 3),
        "stages.1.0.dwconv.dil_bn_k3_4.running_var": (c1,),
        "norm.weight": (8 * c0,),
        "head.weight": (1000, 8 * c0),
    }
    assert {k: tuple(train[k].shape) for k in expect_train} == expect_train
    assert "stages.0.0.pwconv2.0.bias" not in train and "stages.1.0.dwconv.lk_origin.bias" not in train
    expect_deploy = {
        "stages.0.0.dwconv.bias": (c0,),
        "stages.1.0.dwconv.lk_origin.bias": (c1,),
        "stages.0.0.pwconv2.0.bias": (c0,),
        "stages.0.0.act.1.gamma": (1, 1, 1, 4 * c0),
    }
    assert {k: tuple(deploy[k].shape) for k in expect_deploy} == expect_deploy
    for gone in ("stages.0.0.gamma", "stages.0.0.act.1.beta", "stages.0.0.norm.running_mean",
                 "stages.1.0.dwconv.origin_bn.weight", "stages.0.0.pwconv2.2.weight"):
        assert gone not in deploy
    if name == "unireplknet_t":  # stage 3 alternates 13, 3
        assert train["stages.2.0.dwconv.lk_origin.weight"].shape[-1] == 13
        assert train["stages.2.1.dwconv.weight"].shape[-1] == 3


def test_unireplknet_s_stage3_pattern():
    with torch.device("meta"):
        model = create_model("unireplknet_s")
    kinds = ["lk" if hasattr(b.dwconv, "lk_origin") else b.dwconv.kernel_size[0] for b in model.stages[2]]
    assert kinds == ["lk", 3, 3] * 9


def test_grn_definition():
    grn = GRNwithNHWC(5).double()
    with torch.no_grad():
        grn.gamma.uniform_(0.5, 1.5)
        grn.beta.uniform_(-0.5, 0.5)
    x = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    gx = x.pow(2).sum(dim=(1, 2), keepdim=True).sqrt()
    ref = (grn.gamma * gx / (gx.mean(-1, keepdim=True) + 1e-6) + 1) * x + grn.beta
    assert max_rel(ref, grn(x)) <= 1e-14


def test_reparameterize_fp64(a64):
    model, deploy, probe = a64
    report = deploy.reparam_report
    assert report.passed and report.fp64_max_rel_diff <= 1e-10
    assert report.remaining_batchnorm == []
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in deploy.modules())
    assert report.counts()["UniRepLKNetBlock.reparameterize"] == 12
    # Stem/downsample LayerNorms stay; no layer scale, no GRN beta left.
    assert deploy.downsample_layers[0][1].weight.shape == (20,)
    assert all(b.gamma is None and b.act[1].beta is None for b in deploy.modules() if isinstance(b, UniRepLKNetBlock))
    x = torch.randn(2, 3, 96, 160, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        assert max_rel(model(x), deploy(x)) <= 1e-10
        # Idempotent: a second pass changes nothing.
        again = reparameterize(deploy, probe=probe)
        assert max_rel(deploy(x), again(x)) == 0.0


def test_reparameterize_fp32(a64):
    model = copy.deepcopy(a64[0]).float()
    probe = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    deploy = reparameterize(model, probe=probe)
    assert deploy.reparam_report.fp32_max_rel_diff <= 1e-5
    with torch.no_grad():
        assert max_rel(model(probe), deploy(probe)) <= 1e-5


def test_deploy_model_loads_reparameterized_state(a64):
    _, deploy, probe = a64
    direct = unireplknet_a(deploy=True).double().eval()
    direct.load_state_dict(deploy.state_dict())  # strict
    with torch.no_grad():
        assert max_rel(deploy(probe), direct(probe)) <= 1e-12


def test_checkpoint_round_trips(a64, tmp_path):
    model64, deploy64, probe64 = a64
    model, deploy, probe = copy.deepcopy(model64).float(), copy.deepcopy(deploy64).float(), probe64.float()
    with torch.no_grad():
        ref = model(probe)

    # Official train-form checkpoint wrapped as {'state_dict': sd}.
    path = tmp_path / "train.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    loaded = create_model("unireplknet_a", weights=path)
    assert loaded.load_report.wrapper == "state_dict"
    with torch.no_grad():
        assert max_rel(ref, loaded(probe)) == 0.0

    # The same file into a deploy-form model: folded on load.
    folded = create_model("unireplknet_a", weights=path, deploy=True)
    with torch.no_grad():
        assert max_rel(ref, folded(probe)) <= 1e-5

    # A deploy-form checkpoint (under 'model', DataParallel 'module.' prefix) loads into deploy=True ...
    dpath = tmp_path / "deploy.pth"
    torch.save({"model": {f"module.{k}": v for k, v in deploy.state_dict().items()}}, dpath)
    loaded = create_model("unireplknet_a", weights=dpath, deploy=True)
    with torch.no_grad():
        assert max_rel(deploy(probe), loaded(probe)) == 0.0
    # ... and is refused, with the fix, by a train-form model.
    with pytest.raises(BadInputError, match="deploy=True"):
        create_model("unireplknet_a", weights=dpath)

    # Train-form file without num_batches_tracked (dropped by some converters) still loads strictly.
    npath = tmp_path / "nocount.pth"
    torch.save({k: v for k, v in model.state_dict().items() if "num_batches_tracked" not in k}, npath)
    with torch.no_grad():
        assert max_rel(ref, create_model("unireplknet_a", weights=npath)(probe)) == 0.0
        assert max_rel(ref, create_model("unireplknet_a", weights=npath, deploy=True)(probe)) <= 1e-5


def test_overrides():
    model = unireplknet_a(num_classes=10, drop_path_rate=0.1)
    assert model.head.out_features == 10
    assert model.stages[3][1].drop_path.p == pytest.approx(0.1)
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
