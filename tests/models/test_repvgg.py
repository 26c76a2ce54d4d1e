"""RepVGG zoo entries: official sizes, whole-model reparameterization, deploy form and checkpoint loading."""

from __future__ import annotations

import copy

import pytest
import torch

from deployconv.core.errors import BadInputError
from deployconv.models import create_model, get_model_spec, registry
from deployconv.reparam import reparameterize
from tests.helpers import max_rel, randomize_

# Train-form counts from facts/models.md; deploy-form counts measured with the official repvgg.py.
PARAMS = {
    "repvgg_a0": (9_108_968, 8_309_384),
    "repvgg_a1": (14_092_264, 12_789_864),
    "repvgg_a2": (28_210_600, 25_499_944),
    "repvgg_b0": (15_817_960, 14_339_048),
    "repvgg_b1": (57_415_016, 51_829_480),
    "repvgg_b1g2": (45_782_376, 41_360_104),
    "repvgg_b1g4": (39_966_056, 36_125_416),
    "repvgg_b2": (89_022_376, 80_315_112),
    "repvgg_b2g4": (61_758_376, 55_777_512),
    "repvgg_b3": (123_085_288, 110_960_872),
    "repvgg_b3g4": (83_825_128, 75_626_728),
}
PROBE = (1, 3, 64, 64)


def test_registry_has_all_variants():
    specs = [get_model_spec(name) for name in PARAMS]
    assert {s.family for s in specs} == {"repvgg"}
    assert {n for n, s in registry.REGISTRY.items() if s.family == "repvgg"} == set(PARAMS)
    info = get_model_spec("repvgg_a0").info
    assert info.input_size == (3, 224, 224) and info.interpolation == "bilinear" and info.crop_pct == 0.875


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_param_counts(name):
    """Built on the meta device: shapes only, so even b3 (123M) costs milliseconds."""
    with torch.device("meta"):
        train = create_model(name)
        deploy = create_model(name, deploy=True)
    assert sum(p.numel() for p in train.parameters()) == PARAMS[name][0]
    assert sum(p.numel() for p in deploy.parameters()) == PARAMS[name][1]


def test_b1g2_groups_on_even_layers():
    with torch.device("meta"):
        m = create_model("repvgg_b1g2")
    blocks = [b for s in (m.stage1, m.stage2, m.stage3, m.stage4) for b in s]
    assert m.stage0.groups == 1
    assert [b.groups for b in blocks] == [2 if i % 2 == 0 else 1 for i in range(1, 28)]


@pytest.fixture(scope="module")
def a0():
    torch.manual_seed(0)
    return randomize_(create_model("repvgg_a0")).eval()


def test_reparameterize_a0_fp64(a0):
    model = copy.deepcopy(a0).double()
    probe = torch.randn(*PROBE, dtype=torch.float64)
    deploy = reparameterize(model, probe=probe)
    report = deploy.reparam_report
    assert report.passed and report.fp64_max_rel_diff <= 1e-10
    assert report.remaining_batchnorm == []
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in deploy.modules())
    assert report.counts() == {"RepVGGBlock.reparameterize": 22}
    assert report.params_after == PARAMS["repvgg_a0"][1]
    # The official deploy layout, loadable by a model built with deploy=True.
    fresh = create_model("repvgg_a0", deploy=True).double()
    fresh.load_state_dict(deploy.state_dict(), strict=True)
    with torch.no_grad():
        assert max_rel(model(probe), fresh(probe)) <= 1e-10


def test_checkpoint_round_trip(a0, tmp_path):
    x = torch.randn(*PROBE)
    with torch.no_grad():
        ref = a0(x)
    path = tmp_path / "RepVGG-A0-train.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in a0.state_dict().items()}}, path)
    loaded = create_model("repvgg_a0", weights=path)
    assert loaded.load_report.wrapper == "state_dict" and loaded.load_report.stripped_prefix == "module."
    with torch.no_grad():
        assert max_rel(ref, loaded(x)) <= 1e-6
        # A train-form checkpoint also loads into the deploy form: the filter fuses it on the way in.
        fused = create_model("repvgg_a0", weights=path, deploy=True)
        assert all(b.deploy for b in fused.modules() if hasattr(b, "rbr_reparam"))
        assert max_rel(ref, fused(x)) <= 1e-5
    # An official deploy-form checkpoint loads into deploy=True, and is refused by the train form.
    deploy_path = tmp_path / "RepVGG-A0-deploy.pth"
    torch.save(reparameterize(a0, probe=x, verify=False).state_dict(), deploy_path)
    with torch.no_grad():
        assert max_rel(ref, create_model("repvgg_a0", weights=deploy_path, deploy=True)(x)) <= 1e-5
    with pytest.raises(BadInputError, match="deploy=True"):
        create_model("repvgg_a0", weights=deploy_path)


def test_wrong_variant_checkpoint_is_refused(a0, tmp_path):
    path = tmp_path / "a0.pth"
    torch.save(a0.state_dict(), path)
    with pytest.raises(BadInputError, match="shape mismatches"):
        create_model("repvgg_a1", weights=path)
