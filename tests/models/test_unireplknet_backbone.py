"""UniRepLKNet's backbone form (the official mmdet `UniRepLKNetBackbone` layout): per-stage outputs through
their own norms, detection/ImageNet checkpoints by key, and a dynamic-H/W export whose 13x13 depthwise
lowering holds at min/opt/max, including sizes where the stage-4 map is smaller than the kernel."""

import json

import pytest
import torch

from deployconv.core.errors import BadInputError
from deployconv.models.checkpoint import load_checkpoint
from deployconv.models.unireplknet import BACKBONE_INFO, LayerNorm2d, UniRepLKNet, checkpoint_filter_fn
from deployconv.pipeline.export import ExportOptions, export
from tests.helpers import randomize_

SMALL = dict(depths=(1, 1, 2, 1), dims=(8, 16, 24, 32), kernel_sizes=((3,), (13,), (13, 3), (13,)))


def _small(features=("c2", "c3", "c4", "c5"), deploy=False, seed=0):
    torch.manual_seed(seed)
    m = UniRepLKNet(**SMALL, features=features, deploy=deploy)
    randomize_(m, seed)
    with torch.no_grad():  # the per-stage norms start at 1/0: give them values a wrong mapping would show
        for i in range(4):
            getattr(m, f"norm{i}").weight.uniform_(0.5, 1.5)
            getattr(m, f"norm{i}").bias.uniform_(-0.5, 0.5)
    return m.eval()


def test_zoo_entry_is_the_official_detection_size():
    from deployconv.models import create_model

    with torch.device("meta"):
        m = create_model("unireplknet_t_backbone")
    # UniRepLKNet-T (the official COCO Cascade Mask R-CNN with a deploy config): dims 80..640, depths 3,3,18,3
    assert not hasattr(m, "head") and not hasattr(m, "norm")
    assert [len(s) for s in m.stages] == [3, 3, 18, 3] and m.norm3.weight.shape == (640,)
    assert m.features == ("c2", "c3", "c4", "c5")
    assert m.deployconv_info.input_size == (3, 800, 1344)
    assert m.deployconv_info.dims == ("B=1..1..4", "H=320..800..1344", "W=320..1344..1344")


def test_backbone_outputs_are_normed_stage_maps():
    m = _small()
    x = torch.randn(1, 3, 65, 97)
    out = m(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "c2": (1, 8, 17, 25), "c3": (1, 16, 9, 13), "c4": (1, 24, 5, 7), "c5": (1, 32, 3, 4)}
    with torch.no_grad():  # by definition: stage i output through norm{i}
        h = x
        for i, (down, stage) in enumerate(zip(m.downsample_layers, m.stages)):
            h = stage(down(h))
            assert torch.equal(out[f"c{i + 2}"], getattr(m, f"norm{i}")(h))
    sub = _small(features=("c3",))
    assert list(sub(x)) == ["c3"]
    with pytest.raises(BadInputError, match="unknown feature"):
        UniRepLKNet(**SMALL, features=("c6",))


def test_detection_checkpoint_loads_in_train_and_deploy_form(tmp_path):
    src = _small()
    sd = {f"backbone.{k}": v for k, v in src.state_dict().items()}
    sd["neck.lateral_convs.0.conv.weight"] = torch.zeros(1)  # the detector's other parts are dropped
    path = tmp_path / "det.pth"
    torch.save({"state_dict": sd, "meta": {}}, path)
    x = torch.randn(1, 3, 40, 72, dtype=torch.float64)
    want = src.double()(x)
    for deploy in (False, True):
        m = UniRepLKNet(**SMALL, features=("c2", "c3", "c4", "c5"), deploy=deploy)
        load_checkpoint(m, path, filter_fn=checkpoint_filter_fn, optional_keys=BACKBONE_INFO.optional_keys)
        got = m.double().eval()(x)
        tol = 1e-6 if deploy else 0.0  # the deploy form's weights were folded in fp64, then stored as fp32
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=tol, atol=tol)


def test_imagenet_checkpoint_needs_the_norms_allowed(tmp_path):
    cls = UniRepLKNet(**SMALL, num_classes=10)
    path = tmp_path / "in1k.pth"
    torch.save({"model": cls.state_dict()}, path)
    for deploy in (False, True):
        m = UniRepLKNet(**SMALL, features=("c3", "c4", "c5"), deploy=deploy)
        with pytest.raises(BadInputError) as e:
            load_checkpoint(m, path, filter_fn=checkpoint_filter_fn, optional_keys=BACKBONE_INFO.optional_keys)
        assert "--allow-missing 'norm[0-3].*'" in e.value.render()
        rep = load_checkpoint(m, path, filter_fn=checkpoint_filter_fn, allow_missing=("norm[0-3].*",),
                              optional_keys=BACKBONE_INFO.optional_keys)
        assert sorted(rep.allowed_missing) == [f"norm{i}.{p}" for i in range(4) for p in ("bias", "weight")]
        # the stage weights came from the checkpoint: the trunk equals the classifier's
        x = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            assert torch.allclose(m.eval().forward_features(x), cls.eval().forward_features(x), atol=1e-5)
            assert isinstance(m.norm3, LayerNorm2d) and torch.equal(m.norm3.weight, torch.ones(32))


@pytest.mark.slow
def test_dynamic_hw_export_parity_at_min_opt_max(tmp_path):
    # H min 33: the stage-4 map is 2 pixels high under a 13x13 kernel (padding does all the work); odd,
    # non-multiple-of-32 ends exercise the stride-2 rounding at every level.
    opts = ExportOptions(inputs=("input=Bx3xHxW",), dims=("H=33..64..97", "W=40..96..129"), bench=False)
    res = export(_small(), "onnx", tmp_path / "bb", options=opts)
    parity = res.report["parity"]
    assert res.passed, parity
    assert set(parity["points"]) == {"min", "opt", "max"}
    assert parity["points"]["min"]["shapes"]["input"][2:] == [33, 40]
    assert parity["points"]["max"]["shapes"]["input"][2:] == [97, 129]
    m = json.loads((tmp_path / "bb" / "manifest.json").read_text())
    assert m["io"]["inputs"][0]["shape"] == ["B", 3, "H", "W"]
    assert [o["name"] for o in m["io"]["outputs"]] == ["c2", "c3", "c4", "c5"]
    import onnx

    g = onnx.load(str(next((tmp_path / "bb").glob("*.onnx")))).graph
    big = [n for n in g.node if n.op_type == "Conv"
           and any(a.name == "kernel_shape" and list(a.ints) == [13, 13] for a in n.attribute)]
    assert len(big) == 3  # one merged 13x13 depthwise conv per large-kernel block, no branches left


@pytest.mark.slow
def test_trt_fp16_target_profile_and_parity(tmp_path):
    # The TensorRT fp16 target (no plugin: the large kernel is a plain depthwise Conv): the parity chain, with
    # the fp16 emulation, passes at every range point, and the engine's profile carries min/opt/max.
    opts = ExportOptions(inputs=("input=Bx3xHxW",), dims=("H=33..64..97", "W=40..96..129"), bench=False)
    res = export(_small(), "trt-fp16", tmp_path / "bb16", options=opts)
    assert res.passed, res.report["parity"]
    assert set(res.report["parity"]["points"]) == {"min", "opt", "max"}
    lines = res.report["engine"]["trtexec"]
    assert any("--minShapes=input:1x3x33x40" in ln and "--optShapes=input:1x3x64x96" in ln
               and "x3x97x129" in ln.split("--maxShapes=input:")[1] for ln in lines if "--maxShapes" in ln)
