"""Several TensorRT optimization profiles per export (issue #14): `--profile` parsing and checks (pure), the
manifest form (every profile listed; a manifest with one profile, written before, still loads), and one tiny
dynamic model end to end through `deployconv export` with two profiles."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployconv.cli.app import app
from deployconv.core.errors import BadInputError
from deployconv.core.io_spec import (
    DimRange,
    IOSpec,
    build_spec,
    check_for_target,
    parse_input,
    parse_profile,
    with_profiles,
)
from deployconv.core.target import get_target

FIX = Path(__file__).parents[1] / "fixtures" / "io"
runner = CliRunner()


def _spec(h=(320, 640, 1344), w=(320, 640, 1344)) -> IOSpec:
    return build_spec([parse_input("image=Bx3xHxW")], {"H": DimRange(*h), "W": DimRange(*w)},
                      batch=(1, 1, 4), source="cli")


def test_parse_profile():
    assert parse_profile("H=320..480..640,W=320..640") == {"H": DimRange(320, 480, 640), "W": DimRange(320, 320, 640)}
    for text, needle in (("H=640..320", "min 640 > max 320"), ("H=1..2,H=2..3", "gives H twice"),
                         ("H", "bad --profile")):
        with pytest.raises(BadInputError, match=needle) as e:
            parse_profile(text)
        assert e.value.exit_code == 2


def test_profiles_lie_inside_their_dim_range_and_the_ranges_become_their_union():
    spec = with_profiles(_spec(), [parse_profile("H=320..480..640,W=320..480..640"),
                                   parse_profile("H=640..1024..1344")])
    assert [r["H"] for r in spec.profile_ranges()] == [DimRange(320, 480, 640), DimRange(640, 1024, 1344)]
    assert spec.profile_ranges()[1]["W"] == DimRange(320, 640, 1344)  # omitted: keeps the --dim range
    assert spec.ranges["H"] == DimRange(320, 640, 1344)  # the --dim opt 640 is held by a profile
    shapes = spec.every_profile_shapes()
    assert shapes[0]["image"] == ((1, 3, 320, 320), (1, 3, 480, 480), (4, 3, 640, 640))
    assert shapes[1]["image"] == ((1, 3, 640, 320), (1, 3, 1024, 640), (4, 3, 1344, 1344))
    assert list(spec.engine_shapes()) == ["profiles"] and list(_spec().engine_shapes()) == ["shapes"]
    gap = with_profiles(_spec(), [parse_profile("H=320..400..480"), parse_profile("H=800..900..1344")])
    assert gap.ranges["H"] == DimRange(320, 400, 1344)  # 640 is in no profile: the first profile's opt
    narrow = with_profiles(_spec(), [parse_profile("H=400..500..600"), parse_profile("H=500..600..700")])
    assert narrow.ranges["H"] == DimRange(400, 640, 700)  # parity runs only where some profile reaches
    assert with_profiles(_spec(), []) == _spec()
    with pytest.raises(BadInputError) as e:
        with_profiles(_spec(), [parse_profile("H=320..480..640"), parse_profile("W=640..1024..2048")])
    assert "--profile 2" in e.value.what and "W=640..1024..2048 is outside its --dim range W=320..640..1344" \
        in e.value.what and e.value.exit_code == 2
    with pytest.raises(BadInputError, match="names symbol Q, which no input uses"):
        with_profiles(_spec(), [parse_profile("Q=1..2")])


def test_manifest_lists_every_profile_and_old_manifests_load():
    spec = with_profiles(_spec(), [parse_profile("H=320..480..640"), parse_profile("H=640..1024..1344")])
    d = spec.to_dict()
    assert len(d["profiles"]) == 2 and d["profiles"][1]["image"]["max"] == [4, 3, 1344, 1344]
    assert IOSpec.from_dict(json.loads(json.dumps(d))) == spec
    old = _spec().to_dict()  # one profile: the form written before several profiles existed
    assert "profile_dims" not in old and len(old["profiles"]) == 1
    back = IOSpec.from_dict(old)
    assert back.profiles == () and back.every_profile_shapes() == [_spec().profile_shapes()]


def test_dla_refuses_several_profiles():
    class Dla:
        name, uses_dla = "dla-target", True

    spec = with_profiles(_spec((800, 800, 800), (1344, 1344, 1344)), [parse_profile("H=800"), parse_profile("H=800")])
    with pytest.raises(BadInputError, match="2 optimization profiles were asked") as e:
        check_for_target(spec, Dla())
    assert e.value.exit_code == 2


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_two_profiles_end_to_end(tmp_path):
    out = tmp_path / "det"
    res = run("export", "-m", f"{FIX}/detector.py:build", "-t", "trt-fp32", "-o", out, "--no-bench",
              "--profile", "H=64..64..96,W=64..64..128", "--profile", "H=96..128..160,W=128..160..192")
    assert res.exit_code == 0, res.output
    m = json.loads((out / "manifest.json").read_text())
    profiles = m["io_spec"]["profiles"]
    assert [p["image"] for p in profiles] == [
        {"min": [1, 3, 64, 64], "opt": [1, 3, 64, 64], "max": [32, 3, 96, 128]},
        {"min": [1, 3, 96, 128], "opt": [1, 3, 128, 160], "max": [32, 3, 160, 192]}]
    report = json.loads((out / "report.json").read_text())
    assert report["parity"]["passed"]
    assert report["parity"]["points"]["max"]["shapes"]["image"][2:] == [160, 192]  # the union's max
    assert report["parity"]["points"]["opt"]["shapes"]["image"][2:] == [96, 128]  # the --dim opt, in profile 0
    flat = " ".join(res.output.split())
    want = ("--profile=0 --minShapes=image:1x3x64x64 --optShapes=image:1x3x64x64 --maxShapes=image:32x3x96x128 "
            "--profile=1 --minShapes=image:1x3x96x128 --optShapes=image:1x3x128x160 --maxShapes=image:32x3x160x192")
    assert want in flat, res.output
    assert any(want in ln for ln in report["engine"]["trtexec"])
    # the build-later hint export prints names OUT/model.onnx: build-engine reads that folder's manifest (profiles)
    res = run("build-engine", out / "model.onnx", "--target", "trt-fp32", "--dry-run")
    assert res.exit_code == 0, res.output
    assert want in " ".join(res.output.split())


def test_profile_outside_its_dim_range_is_exit_2(tmp_path):
    res = run("export", "-m", f"{FIX}/detector.py:build", "-t", "trt-fp32", "-o", tmp_path / "x", "--no-bench",
              "--profile", "H=64..96", "--profile", "H=96..128..200")
    assert res.exit_code == 2, res.output
    flat = " ".join(res.output.split())
    assert "--profile 2" in flat and "H=96..128..200 is outside its --dim range H=64..96..160" in flat
    assert "Traceback" not in res.output and not (tmp_path / "x").exists()


def test_trtexec_without_profile_option_is_exit_2(tmp_path):
    res = run("export", "-m", f"{FIX}/detector.py:build", "-t", "jetson-xavier-fp16", "-o", tmp_path / "x",
              "--no-bench", "--profile", "H=64..96", "--profile", "H=96..160")
    assert res.exit_code == 2, res.output
    assert "builds one optimization profile" in " ".join(res.output.split())


def test_bundle_trtexec_line_carries_the_manifests_profiles():
    from deployconv.pipeline.bundle import trtexec_lines
    from tests.engine.graphs import conv_net

    spec = build_spec([parse_input("x=Bx3xHxW")], {"H": DimRange(8, 16, 64), "W": DimRange(8, 16, 64)},
                      batch=(1, 1, 4), source="cli")
    two = with_profiles(spec, [parse_profile("H=8..16..32,W=8..16..32"), parse_profile("H=32..48..64,W=32..48..64")])
    build, run, note = trtexec_lines(conv_net(hw=("H", "W")), get_target("trt-fp32"), two.to_dict())
    assert note == "TensorRT 10.1" and "--profile=0 --minShapes=x:1x3x8x8" in build
    assert "--profile=1 --minShapes=x:1x3x32x32 --optShapes=x:1x3x48x48 --maxShapes=x:4x3x64x64" in build
    assert "--shapes=x:1x3x16x16" in run
    without, _, why = trtexec_lines(conv_net(hw=("H", "W")), get_target("trt-fp32"))
    assert without is None and "dynamic dims besides the batch" in why  # what a bundle said before
