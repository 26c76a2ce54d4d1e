"""LSNet: official structure and names, checkpoint loading, and the deploy form proven equal to the train form.

Heavy checks run on lsnet_t; the other variants are only constructed (on the meta device where possible).
"""

from __future__ import annotations

import hashlib

import pytest
import torch
from torch import nn

from deployconv.core.errors import BadInputError
from deployconv.layers.modules import ChannelAffine
from deployconv.models import create_model, get_model_spec, list_models
from deployconv.models.lsnet import (
    Attention,
    BN_Linear,
    Conv2d_BN,
    LSConv,
    LSNet,
    RepVGGDW,
    checkpoint_filter_fn,
)
from deployconv.reparam import reparameterize
from tests.helpers import max_rel, randomize_

VARIANTS = ["lsnet_t", "lsnet_s", "lsnet_b", "lsnet_t_distill", "lsnet_s_distill", "lsnet_b_distill"]

# ../shared/facts/models.md (measured by running the official code).
OFFICIAL_PARAMS = {
    "lsnet_t": 11_409_832, "lsnet_s": 16_146_304, "lsnet_b": 23_313_608,
    "lsnet_t_distill": 11_795_600, "lsnet_s_distill": 16_596_200, "lsnet_b_distill": 23_827_632,
}

# (number of keys, sha256[:16] of the sorted "key shape dtype" lines) of the official model's state_dict,
# computed from jameslahm/lsnet@cbe737c model/lsnet.py (timm 0.5.4 SqueezeExcite), so the key set, every shape
# and the buffers (attention_bias_idxs, num_batches_tracked) are pinned exactly.
OFFICIAL_STATE_DICT = {
    "lsnet_t": (696, "2c3a4ccd1e9fb19b"),
    "lsnet_s": (724, "15fa9917d3de6b49"),
    "lsnet_b": (964, "84d3d7b0e4d957e2"),
    "lsnet_t_distill": (703, "c021ddea2d2d3adf"),
    "lsnet_s_distill": (731, "8bcd2e7b9890e54c"),
    "lsnet_b_distill": (971, "be21792e54ffe803"),
}

# Key examples from the facts file. Its `blocks2.1.mixer...`, `blocks2.1.se...` and `blocks2.1.ffn...` examples
# cannot exist in any variant: stages 2-4 open with the two downsample Conv2d_BNs (`.0`, `.1`, as the same file
# says), so the first block of blocks2 is `blocks2.2`. Those three are checked at that index.
EXAMPLE_KEYS = [
    "patch_embed.0.c.weight", "blocks2.0.c.weight", "blocks2.2.mixer.conv.c.weight",
    "blocks2.3.mixer.lkp.cv4.weight", "blocks2.3.mixer.lkp.norm.weight", "blocks2.3.mixer.bn.running_var",
    "blocks4.3.mixer.m.qkv.c.weight", "blocks4.3.mixer.m.attention_biases", "blocks4.3.mixer.m.attention_bias_idxs",
    "blocks2.2.ffn.m.pw1.c.weight", "blocks2.2.se.fc1.weight", "head.bn.weight", "head.l.weight",
    "blocks2.1.c.weight", "blocks2.1.bn.num_batches_tracked", "blocks2.2.se.fc1.bias", "blocks4.3.mixer.m.dw.c.weight",
    "blocks4.3.mixer.m.proj.1.c.weight", "blocks2.3.mixer.lkp.cv2.bn.running_mean", "blocks2.3.mixer.lkp.cv4.bias",
]


def _digest(sd: dict) -> tuple[int, str]:
    text = "\n".join(f"{k} {tuple(v.shape)} {v.dtype}" for k, v in sorted(sd.items()))
    return len(sd), hashlib.sha256(text.encode()).hexdigest()[:16]


def _randomized(name: str, seed: int = 0, **overrides) -> nn.Module:
    return _randomize(create_model(name, **overrides), seed)


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every BN statistic, affine term and attention bias made non-trivial."""
    randomize_(model, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, Attention):
                m.attention_biases.copy_(torch.randn(m.attention_biases.shape, generator=g))
    return model


def _image(batch: int = 2, size: int = 224, dtype=torch.float32, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _tiny(**kw) -> LSNet:
    """A narrow LSNet with every block kind (RepVGGDW+SE, LSConv, Attention), fast enough for unit checks."""
    cfg = dict(embed_dim=(16, 32, 32, 64), depth=(1, 2, 2, 2), num_classes=10)
    return LSNet(**{**cfg, **kw})


# --- registry and structure ---------------------------------------------------------------------------------


def test_registered_variants_and_info():
    assert set(list_models("lsnet*")) == set(VARIANTS)
    for name in VARIANTS:
        spec = get_model_spec(name)
        assert spec.info.fixed_hw and spec.info.interpolation == "bicubic" and spec.info.crop_pct == 0.875
        assert spec.info.input_size == (3, 224, 224)
        assert spec.filter_fn is checkpoint_filter_fn


@pytest.mark.parametrize("name", VARIANTS)
def test_param_count_and_state_dict_match_official(name):
    with torch.device("meta"):
        model = get_model_spec(name).builder()
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[name]
    assert _digest(model.state_dict()) == OFFICIAL_STATE_DICT[name]


def test_example_keys_present():
    with torch.device("meta"):
        keys = set(get_model_spec("lsnet_t_distill").builder().state_dict())
    assert set(EXAMPLE_KEYS) <= keys
    assert "head_dist.l.weight" in keys and "head_dist.bn.running_var" in keys


def test_overrides_reach_the_model():
    with torch.device("meta"):
        model = get_model_spec("lsnet_t").builder(num_classes=10)
        headless = get_model_spec("lsnet_s_distill").builder(num_classes=0)
    assert model.head.l.out_features == 10
    assert isinstance(headless.head, nn.Identity) and isinstance(headless.head_dist, nn.Identity)


def test_input_size_window():
    model = _tiny().eval()
    with torch.no_grad():
        for size in (193, 256):
            assert model(_image(1, size)).shape == (1, 10)
        for size in (192, 257):
            with pytest.raises(BadInputError, match=r"193\.\.256"):
                model(_image(1, size))


def test_distilled_heads_train_tuple_eval_mean():
    model = _randomized("lsnet_t_distill")
    heads = {}
    for name in ("head", "head_dist"):
        getattr(model, name).register_forward_hook(lambda m, a, o, name=name: heads.__setitem__(name, o))
    x = _image(2)
    with torch.no_grad():
        mean = model(x)
        assert torch.equal(mean, (heads["head"] + heads["head_dist"]) / 2)
        model.train()
        out = model(x)
    assert isinstance(out, tuple) and len(out) == 2 and all(o.shape == (2, 1000) for o in out)


# --- reparameterization -------------------------------------------------------------------------------------


def _assert_deploy_form(deploy: nn.Module) -> None:
    rep = deploy.reparam_report
    assert rep.passed and rep.remaining_batchnorm == []
    left = [type(m).__name__ for m in deploy.modules()
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, Conv2d_BN, BN_Linear, RepVGGDW))]
    assert left == []
    assert all(isinstance(m.bn, ChannelAffine) for m in deploy.modules() if isinstance(m, LSConv))
    assert all(m.deploy and not hasattr(m, "attention_biases") for m in deploy.modules() if isinstance(m, Attention))


def test_reparameterize_fp64_lsnet_t():
    model = _randomized("lsnet_t").double()
    deploy = reparameterize(model)
    _assert_deploy_form(deploy)
    rep = deploy.reparam_report
    assert rep.fp64_max_rel_diff <= 1e-10
    assert rep.counts() == {"LSNet.reparameterize": 1, "Conv2d_BN.fuse": 79, "RepVGGDW.fuse": 10,
                            "LSConv.reparameterize": 5, "Attention.reparameterize": 5}
    x = _image(2, dtype=torch.float64, seed=7)
    with torch.no_grad():
        assert max_rel(model(x), deploy(x)) <= 1e-10
    assert isinstance(deploy.head, nn.Linear)


def test_reparameterize_fp32_distilled_heads_fold_into_one_linear():
    model = _randomized("lsnet_t_distill", seed=3)
    deploy = reparameterize(model)
    _assert_deploy_form(deploy)
    assert deploy.reparam_report.fp32_max_rel_diff <= 1e-5
    assert isinstance(deploy.head, nn.Linear) and not hasattr(deploy, "head_dist")
    assert sum(isinstance(m, nn.Linear) for m in deploy.modules()) == 1
    x = _image(2, seed=8)
    with torch.no_grad():
        assert max_rel(model(x), deploy(x)) <= 1e-5


@pytest.mark.parametrize("distillation,num_classes", [(False, 10), (True, 10), (True, 0)])
def test_rewrites_are_idempotent_and_exact_on_tiny(distillation, num_classes):
    model = _randomize(_tiny(distillation=distillation, num_classes=num_classes).double(), seed=4).eval()
    deploy = reparameterize(model)
    assert deploy.reparam_report.fp64_max_rel_diff <= 1e-10
    # Calling every rewrite again changes nothing, and the walker finds nothing left to do.
    x = _image(1, dtype=torch.float64, seed=9)
    with torch.no_grad():
        before = deploy(x)
        for m in deploy.modules():
            if isinstance(m, (LSNet, LSConv, Attention)):
                m.reparameterize()
        assert torch.equal(before, deploy(x))
        again = reparameterize(deploy)
    assert again.reparam_report.rewrites == []
    assert again.reparam_report.passed


def test_distilled_heads_merge_even_if_already_fused():
    # An official-style walk (utils.replace_batchnorm) fuses each BN_Linear before anyone merges the heads.
    model = _randomize(_tiny(distillation=True).double(), seed=5).eval()
    feats = torch.randn(3, model.num_features, dtype=torch.float64)
    with torch.no_grad():
        ref = (model.head(feats) + model.head_dist(feats)) / 2
        model.head, model.head_dist = model.head.fuse(), model.head_dist.fuse()
        model.reparameterize()
        assert isinstance(model.head, nn.Linear) and not hasattr(model, "head_dist")
        assert max_rel(ref, model.head(feats)) <= 1e-12


def test_block_fusions_idempotent():
    torch.manual_seed(0)
    blk = randomize_(RepVGGDW(16).double()).eval()
    x = torch.randn(2, 16, 7, 7, dtype=torch.float64)
    a, b = blk.fuse(), blk.fuse()
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    with torch.no_grad():
        assert max_rel(blk(x), a(x)) <= 1e-12
    cbn = randomize_(Conv2d_BN(16, 8, 3, 2, 1).double()).eval()
    with torch.no_grad():
        assert max_rel(cbn(x), cbn.fuse()(x)) <= 1e-12


# --- checkpoints --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source():
    """A randomized lsnet_t, its state dict and its outputs on a fixed input."""
    model = _randomized("lsnet_t", seed=11)
    x = _image(1, seed=12)
    with torch.no_grad():
        out = model(x)
    return model.state_dict(), x, out


def test_weights_load_in_any_order(source, tmp_path):
    sd, x, out = source
    path = tmp_path / "lsnet_t.pth"
    torch.save(sd, path)
    with torch.no_grad():
        # create_model builds in eval mode, then loads.
        assert torch.equal(create_model("lsnet_t", weights=path)(x), out)
        # load_state_dict after .eval() (the official module would keep its zero bias cache here).
        model = create_model("lsnet_t").eval()
        model(x)
        model.load_state_dict(sd)
        assert torch.equal(model(x), out)
        # .to() after loading, and train()/eval() toggles.
        model.train()
        model.eval()
        model = model.to(torch.float64)
        assert max_rel(out, model(x.double())) <= 1e-5


def test_official_checkpoint_layout_round_trip(source, tmp_path):
    sd, x, out = source
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": {f"module.{k}": v for k, v in sd.items()}, "epoch": 299}, path)
    model = create_model("lsnet_t", weights=path)
    assert model.load_report.wrapper == "model" and model.load_report.stripped_prefix == "module."
    assert model.load_report.num_tensors == len(sd)
    with torch.no_grad():
        assert torch.equal(model(x), out)


def test_bad_checkpoint_lists_missing_and_mismatched_keys(source, tmp_path):
    sd, _, _ = source
    bad = dict(sd)
    del bad["blocks3.3.mixer.lkp.cv4.weight"]
    bad["head.l.weight"] = torch.zeros(10, 384)
    path = tmp_path / "bad.pth"
    torch.save({"model": bad}, path)
    with pytest.raises(BadInputError) as err:
        create_model("lsnet_t", weights=path)
    msg = str(err.value)
    assert "blocks3.3.mixer.lkp.cv4.weight" in msg and "missing keys (1)" in msg
    assert "head.l.weight (10, 384) vs model (1000, 384)" in msg
    # A plain checkpoint given to the distilled variant is not silently accepted.
    torch.save({"model": sd}, path)
    with pytest.raises(BadInputError, match="head_dist"):
        create_model("lsnet_t_distill", weights=path)


def test_filter_restores_derived_index_buffers(source, tmp_path):
    sd, x, out = source
    # The official fine-tuning loader (utils.load_model) deletes every attention_bias_idxs.
    stripped = {k: v for k, v in sd.items() if not k.endswith("attention_bias_idxs")}
    assert len(stripped) == len(sd) - 5
    path = tmp_path / "finetune.pth"
    torch.save({"model": stripped}, path)
    with torch.no_grad():
        assert torch.equal(create_model("lsnet_t", weights=path)(x), out)
    tampered = dict(sd)
    key = "blocks4.3.mixer.m.attention_bias_idxs"
    tampered[key] = tampered[key].flip(0)
    with pytest.raises(BadInputError, match="position index table"):
        checkpoint_filter_fn(tampered, create_model("lsnet_t"))
