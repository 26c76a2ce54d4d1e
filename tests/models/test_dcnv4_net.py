"""dcnv4_tiny: the zoo's DCNv4 test model builds through the registry, runs, exercises the op, reparameterizes."""

from __future__ import annotations

import pytest
import torch

from deployconv.models import create_model, get_model_spec, list_models
from deployconv.ops.dcnv4 import DCNv4
from deployconv.reparam import reparameterize
from tests.helpers import randomize_

PARAMS = 2_677_976


def test_registered_and_created_through_the_registry():
    assert "dcnv4_tiny" in list_models("dcnv4*")
    spec = get_model_spec("dcnv4_tiny")
    assert spec.family == "dcnv4_net" and spec.info.input_size == (3, 224, 224) and not spec.info.fixed_hw
    model = create_model("dcnv4_tiny")
    assert not model.training and model.deployconv_name == "dcnv4_tiny"
    assert sum(p.numel() for p in model.parameters()) == PARAMS
    dcns = [m for m in model.modules() if isinstance(m, DCNv4)]
    assert len(dcns) == 6 and all(m.group_channels == 16 for m in dcns)
    assert all(m.offset_mask.weight.abs().sum() > 0 for m in dcns)  # random offsets: the op is exercised


def test_runs_and_samples_off_grid():
    model = create_model("dcnv4_tiny")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    seen = []
    dcn = model.levels[0].blocks[0].dcn
    handle = dcn.offset_mask.register_forward_hook(lambda m, a, out: seen.append(out))
    with torch.no_grad():
        y = model(x)
    handle.remove()
    assert y.shape == (2, 1000) and torch.isfinite(y).all()
    k = dcn.K  # G*K offsets per pixel: mostly fractional, some beyond a pixel
    offsets = seen[0][..., : 3 * k].unflatten(-1, (dcn.group, 27))[..., :18]
    assert offsets.abs().mean() > 0.1 and (offsets.abs() > 1).any()


def test_reparameterize_folds_the_stem_and_downsample_bns():
    model = randomize_(create_model("dcnv4_tiny"))
    probe = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    deploy = reparameterize(model, probe=probe)
    rep = deploy.reparam_report
    assert rep.passed, rep
    assert rep.remaining_batchnorm == []
    assert sorted(r.path for r in rep.rewrites) == [
        "levels.0.downsample.conv+levels.0.downsample.norm", "levels.1.downsample.conv+levels.1.downsample.norm",
        "patch_embed.conv1+patch_embed.norm1", "patch_embed.conv2+patch_embed.norm2"]
    assert rep.fp64_max_rel_diff <= 1e-5 and rep.fp32_max_rel_diff <= 1e-4
    assert rep.params_after < rep.params_before


@pytest.mark.slow
def test_deploy_form_exports_and_runs_in_ort():
    """Deploy form -> ONNX (standard lowering, dynamic batch) -> ONNX Runtime, at two batch sizes."""
    from deployconv.ops.dcnv4 import ENTRY
    from tests.ops._export_helpers import assert_ort_matches, export, lowering_table

    g = torch.Generator().manual_seed(0)
    model = randomize_(create_model("dcnv4_tiny"))
    deploy = reparameterize(model, probe=torch.randn(1, 3, 64, 64, generator=g))
    proto = export(deploy, (torch.randn(2, 3, 64, 64, generator=g),), lowering_table([ENTRY], "standard", 18), 18)
    assert not any(n.op_type == "BatchNormalization" for n in proto.graph.node)
    assert sum(n.op_type == "GridSample" for n in proto.graph.node) == 6
    # against the train form in fp64: reparameterization and lowering together
    assert_ort_matches(proto, model, lambda n: (torch.randn(n, 3, 64, 64, generator=g),), tol=1e-4)
