"""ResNet-50-DCN: official size and names, explicit loading of plain ResNet-50 and detection checkpoints,
and reparameterization down to no BatchNorm."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from deployconv.core.errors import BadInputError
from deployconv.models import create_model, get_model_spec
from deployconv.ops.deform_conv import ModulatedDeformConv2dPack
from deployconv.reparam import reparameterize
from deployconv.reparam.pairs import find_pairs
from tests.helpers import max_rel, randomize_

PROBE = (1, 3, 64, 64)
DCN_BLOCKS = [f"layer{i}.{j}" for i, n in ((2, 4), (3, 6), (4, 3)) for j in range(n)]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = randomize_(create_model("resnet50_dcn"))
    with torch.no_grad():  # non-zero offsets and masks, so the deformable path is really exercised
        for mod in m.modules():
            if isinstance(mod, ModulatedDeformConv2dPack):
                mod.conv_offset.weight.normal_(std=0.02)
    return m.eval()


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    """The model's weights, saved once: (path, state dict)."""
    sd = model.state_dict()
    path = tmp_path_factory.mktemp("r50dcn") / "full.pth"
    torch.save(sd, path)
    return path, sd


def test_size_names_and_info(model):
    assert sum(p.numel() for p in model.parameters()) == 26_428_295
    dcn = sorted(n[: -len(".conv2")] for n, m in model.named_modules() if isinstance(m, ModulatedDeformConv2dPack))
    assert dcn == sorted(DCN_BLOCKS)
    assert all(isinstance(model.layer1[j].conv2, nn.Conv2d) for j in range(3))
    pack = model.layer2[0].conv2
    assert pack.stride == (2, 2) and pack.bias is None and pack.deform_groups == 1
    assert pack.conv_offset.out_channels == 27 and pack.conv_offset.stride == (2, 2)
    keys = model.state_dict()
    for k in ("conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer1.0.downsample.0.weight",
              "layer1.0.downsample.1.running_mean", "layer2.0.conv2.weight", "layer2.0.conv2.conv_offset.weight",
              "layer2.0.conv2.conv_offset.bias", "layer4.2.bn3.bias", "fc.weight", "fc.bias"):
        assert k in keys, k
    assert "layer2.0.conv2.bias" not in keys
    # The stride sits on the 3x3 (v1.5).
    assert model.layer3[0].conv1.stride == (1, 1) and model.layer3[0].downsample[0].stride == (2, 2)
    info = get_model_spec("resnet50_dcn").info
    assert info.optional_keys == ("*.conv2.conv_offset.*", "fc.*") and info.interpolation == "bilinear"


def test_fresh_model_is_resnet50_with_half_mask():
    """Offsets start at zero and the mask at sigmoid(0) = 0.5: each deformable conv is half a plain conv."""
    torch.manual_seed(0)
    m = create_model("resnet50_dcn")
    pack = m.layer3[1].conv2
    x = torch.randn(1, 256, 6, 6)
    with torch.no_grad():
        assert max_rel(0.5 * nn.functional.conv2d(x, pack.weight, padding=1), pack(x)) <= 1e-6


def test_plain_resnet50_checkpoint_needs_explicit_allow(model, checkpoint, tmp_path):
    _, sd = checkpoint
    # A torchvision-style file: no offset convs and (as in older releases) no num_batches_tracked counters.
    plain = {k: v for k, v in sd.items() if "conv_offset" not in k and not k.endswith("num_batches_tracked")}
    assert len(sd) - len(plain) == 26 + 53
    p = tmp_path / "resnet50.pth"
    torch.save(plain, p)
    with pytest.raises(BadInputError, match=r"missing keys \(26\).*conv_offset") as e:
        create_model("resnet50_dcn", weights=p)
    assert "--allow-missing" in str(e.value)
    loaded = create_model("resnet50_dcn", weights=p, allow_missing=("*.conv_offset.*",))
    expected = sorted(f"{b}.conv2.conv_offset.{t}" for b in DCN_BLOCKS for t in ("weight", "bias"))
    assert sorted(loaded.load_report.allowed_missing) == expected
    got = loaded.state_dict()
    assert all(torch.equal(got[k], v) for k, v in plain.items())
    assert all(not got[k].any() for k in expected)  # offsets start at zero


def test_detection_checkpoint_backbone_prefix(checkpoint, tmp_path):
    """mmdet layout: {'state_dict': {'backbone.*', 'neck.*', '*_head.*'}, 'meta': ...}, and no fc."""
    _, sd = checkpoint
    det = {f"backbone.{k}": v for k, v in sd.items() if not k.startswith("fc.")}
    det["neck.lateral_convs.0.conv.weight"] = torch.zeros(1)
    det["rpn_head.rpn_cls.bias"] = torch.zeros(1)
    p = tmp_path / "det.pth"
    torch.save({"state_dict": det, "meta": {"epoch": 12}}, p)
    # The backbone maps by name once `backbone.` is stripped; the missing fc stays strict until allowed.
    with pytest.raises(BadInputError, match=r"missing keys \(2\): fc\.weight, fc\.bias") as e:
        create_model("resnet50_dcn", weights=p)
    assert "unexpected" not in str(e.value)
    loaded = create_model("resnet50_dcn", weights=p, allow_missing=("fc.*",))
    assert sorted(loaded.load_report.allowed_missing) == ["fc.bias", "fc.weight"]
    got = loaded.state_dict()
    assert all(torch.equal(got[k], v) for k, v in sd.items() if not k.startswith("fc."))


def test_mmcv_v1_offset_names(model, checkpoint):
    _, sd = checkpoint
    old = {k.replace(".conv2.conv_offset.", ".conv2_offset."): v for k, v in sd.items()}
    assert "layer2.0.conv2_offset.weight" in old
    spec = get_model_spec("resnet50_dcn")
    assert sorted(spec.filter_fn(old, model)) == sorted(sd)


def test_reparameterize_fp64_leaves_no_batchnorm(model):
    m = copy.deepcopy(model).double()
    # The generic fx pass sees every conv->BN pair but the 13 behind a deformable conv (an opaque leaf).
    assert len(find_pairs(m)) == 53 - 13
    probe = torch.randn(*PROBE, dtype=torch.float64)
    offsets = []
    hook = m.layer3[0].conv2.conv_offset.register_forward_hook(lambda mod, a, out: offsets.append(out))
    with torch.no_grad():
        m(probe)
    hook.remove()
    assert offsets[0][:, :18].abs().max() > 0.5  # offsets of a pixel or more: sampling really moves
    deploy = reparameterize(m, probe=probe)
    report = deploy.reparam_report
    assert report.passed and report.fp64_max_rel_diff <= 1e-10
    assert report.remaining_batchnorm == []
    assert not any(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in deploy.modules())
    assert report.counts() == {"Bottleneck.reparameterize": 16, "fold_conv_bn(fx)": 1}
    assert all(r.max_rel_diff is not None and r.max_rel_diff <= 1e-10 for r in report.rewrites
               if r.rewrite.startswith("Bottleneck"))
    assert isinstance(deploy.layer2[0].conv2, ModulatedDeformConv2dPack) and deploy.layer2[0].conv2.bias is not None
