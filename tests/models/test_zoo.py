"""Every registered model, for free: official parameter count, eval mode, reparameterization verified with
no BatchNorm and no multi-branch block left."""

from __future__ import annotations

import pytest
import torch

from deployconv.models import create_model, get_model_spec, list_models
from deployconv.reparam import reparameterize
from deployconv.reparam.walker import REWRITE_METHODS
from tests.helpers import randomize_

# ../shared/facts/models.md: counts measured by running the official code.
OFFICIAL_PARAMS = {
    "lsnet_t": 11_409_832, "lsnet_s": 16_146_304, "lsnet_b": 23_313_608,
    "lsnet_t_distill": 11_795_600, "lsnet_s_distill": 16_596_200, "lsnet_b_distill": 23_827_632,
    "unireplknet_a": 4_649_060, "unireplknet_f": 6_489_328, "unireplknet_p": 11_080_520,
    "unireplknet_n": 18_818_880, "unireplknet_t": 31_693_420, "unireplknet_s": 56_456_704,
    "repvgg_a0": 9_108_968, "repvgg_a1": 14_092_264, "repvgg_a2": 28_210_600, "repvgg_b0": 15_817_960,
    "repvgg_b1": 57_415_016, "repvgg_b1g2": 45_782_376, "repvgg_b2": 89_022_376, "repvgg_b3": 123_085_288,
    "resnet50_dcn": 26_428_295,
}
REQUIRED = set(OFFICIAL_PARAMS)
ALL = list_models()


def test_zoo_has_every_required_model():
    assert set(ALL) >= REQUIRED, f"missing: {sorted(REQUIRED - set(ALL))}"


@pytest.mark.parametrize("name", ALL)
def test_param_count_matches_official(name):
    with torch.device("meta"):
        model = get_model_spec(name).builder()
    n = sum(p.numel() for p in model.parameters())
    if name in OFFICIAL_PARAMS:
        assert n == OFFICIAL_PARAMS[name]


def _probe(name: str) -> torch.Tensor:
    info = get_model_spec(name).info
    hw = info.input_size[1:] if info.fixed_hw else (64, 64)
    return torch.randn(1, info.input_size[0], *hw, generator=torch.Generator().manual_seed(0))


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_reparameterize_every_model(name):
    model = randomize_(create_model(name))
    assert not model.training
    deploy = reparameterize(model, probe=_probe(name))
    rep = deploy.reparam_report
    assert rep.passed, rep
    assert rep.fp64_max_rel_diff <= 1e-5 and rep.fp32_max_rel_diff <= 1e-4
    assert rep.remaining_batchnorm == [], rep.remaining_batchnorm
    # no multi-branch block is left un-rewritten
    pending = [type(m).__name__ for m in deploy.modules()
               if any(callable(getattr(m, a, None)) for a in REWRITE_METHODS)
               and not getattr(m, "_deployconv_reparameterized", False)]
    assert pending == []
    assert rep.params_after <= rep.params_before
