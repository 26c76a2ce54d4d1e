"""Several TensorRT optimization profiles per engine: the EngineSpec checks them, the recipe resolves each (DCN
index limits at every profile's max), the thin builder adds one per entry (fake TensorRT: our calls only), and
the trtexec line writes `--profile=N` followed by that profile's min/opt/max set, the way trtexec 10.x/11.x
pairs them by position (trtexec_flags: getOptimizationProfiles, getAndDelOptionBehind); 8.5/8.6 have no
--profile and are refused."""

from __future__ import annotations

import onnx
import pytest

from deployconv.core.errors import EXIT_BAD_INPUT, BadInputError
from deployconv.engine.builder import build_engine
from deployconv.engine.onnx_facts import facts_from_model, read_onnx_facts
from deployconv.engine.recipe import make_recipe
from deployconv.engine.spec import EngineSpec
from deployconv.engine.trtexec import check_profile_count, trtexec_argv, trtexec_run_argv
from deployconv.engine.trtexec_flags import BEHAVIOUR, PARSED, parsed_flags, release_for, several_profiles
from deployconv.runtime.plugin_loading import forget_loaded
from tests.engine.graphs import conv_net
from tests.engine.test_op_limits import LIB, _dcn_net
from tests.fake_tensorrt import FakeTensorRT
from tests.runtime import save

HW = facts_from_model(conv_net(hw=("H", "W")))
SMALL = {"x": ((1, 3, 8, 8), (1, 3, 16, 16), (4, 3, 32, 32))}
LARGE = {"x": ((1, 3, 32, 32), (1, 3, 64, 64), (4, 3, 128, 128))}
TWO = EngineSpec("t", profiles=(SMALL, LARGE))


def test_spec_checks_every_profile():
    assert TWO.profile_shapes() == (SMALL, LARGE) and EngineSpec("t", shapes=SMALL).profile_shapes() == (SMALL,)
    assert TWO.to_dict()["profiles"][1]["x"] == [[1, 3, 32, 32], [1, 3, 64, 64], [4, 3, 128, 128]]
    with pytest.raises(BadInputError, match=r"profiles\[1\]\['x'\]: needs min <= opt <= max"):
        EngineSpec("t", profiles=(SMALL, {"x": ((1, 3, 64, 64), (1, 3, 32, 32), (4, 3, 128, 128))}))
    with pytest.raises(BadInputError, match="shapes is not the first profile"):
        EngineSpec("t", shapes=LARGE, profiles=(SMALL, LARGE))
    assert EngineSpec("t", shapes=SMALL, profiles=(SMALL, LARGE)).profile_shapes() == (SMALL, LARGE)
    with pytest.raises(BadInputError, match="2 optimization profiles asked of a DLA engine"):
        EngineSpec("t", dla_core=0, profiles=(SMALL, LARGE))


def test_recipe_resolves_each_profile_in_order():
    plan = make_recipe(TWO, "10.3", HW)
    assert [p["x"].max for p in plan.all_profiles] == [(4, 3, 32, 32), (4, 3, 128, 128)]
    assert plan.profile is plan.profiles[0]
    assert [p["inputs"]["x"]["opt"] for p in plan.to_dict()["profiles"]] == [[1, 3, 16, 16], [1, 3, 64, 64]]
    bad = EngineSpec("t", profiles=(SMALL, {"x": ((1, 3, 8, 8), (1, 3, 8, 8), (1, 4, 8, 8))}))
    with pytest.raises(BadInputError, match=r"^optimization profile 1: shapes\['x'\] changes static dims"):
        make_recipe(bad, "10.3", HW)


def test_op_limits_see_the_second_profiles_max(tmp_path):
    path = tmp_path / "dcn.onnx"
    onnx.save(_dcn_net(), str(path))
    facts = read_onnx_facts(path)
    small = {"x": ((1, 4, 32, 32), (1, 4, 64, 64), (1, 4, 800, 1344))}
    ok = make_recipe(EngineSpec("t", profiles=(small, small)), "10.3", facts, (LIB,))
    assert "profile 1: DCN index limits hold at the profile max for 2 node(s)" in ok.notes
    huge = {"x": ((1, 4, 32, 32), (1, 4, 64, 64), (1, 4, 46341, 46341))}
    make_recipe(EngineSpec("t", shapes=small), "10.3", facts, (LIB,))  # the first profile alone is fine
    with pytest.raises(BadInputError, match="DCN index limit") as e:
        make_recipe(EngineSpec("t", profiles=(small, huge)), "10.3", facts, (LIB,))
    assert e.value.exit_code == EXIT_BAD_INPUT and "46341x46341" in e.value.what


@pytest.fixture
def fake():
    trt = FakeTensorRT()
    yield trt
    forget_loaded(trt)


def test_builder_adds_one_optimization_profile_per_entry(fake, tmp_path):
    onnx_path = save(conv_net(hw=("H", "W")), tmp_path / "model.onnx")
    build_engine(onnx_path, TWO, tmp_path / "out", trt_module=fake)
    added = [c[1] for c in fake.calls if c[0] == "config.add_optimization_profile"]
    assert added == [SMALL, LARGE]
    fake2 = FakeTensorRT()
    try:
        build_engine(onnx_path, EngineSpec("t", shapes=SMALL), tmp_path / "one", trt_module=fake2)
        assert [c[1] for c in fake2.calls if c[0] == "config.add_optimization_profile"] == [SMALL]
    finally:
        forget_loaded(fake2)


def _trtexec_profiles(argv: list[str]) -> dict[int, dict[str, str]]:
    """Reads profiles the way trtexec 10.x's getOptimizationProfiles does (the pinned facts): for each
    --profile=N at position pos, the shape flags at pos+1, pos+2, pos+3 (one per selector, each once)."""
    out: dict[int, dict[str, str]] = {}
    for pos, arg in enumerate(argv):
        if not arg.startswith("--profile="):
            continue
        shapes: dict[str, str] = {}
        for nxt in argv[pos + 1:pos + 4]:
            flag, _, value = nxt.partition("=")
            if flag not in ("--minShapes", "--optShapes", "--maxShapes") or flag in shapes:
                break
            shapes[flag] = value
        out[int(arg.split("=", 1)[1])] = shapes
    return out


@pytest.mark.parametrize("version", ["10.3.0", "10.16.0", "11.1.0"])
def test_trtexec_line_pairs_each_profile_with_its_shapes(version):
    plan = make_recipe(TWO, version, HW)
    argv = trtexec_argv(plan, "model.onnx")
    assert _trtexec_profiles(argv) == {
        0: {"--minShapes": "x:1x3x8x8", "--optShapes": "x:1x3x16x16", "--maxShapes": "x:4x3x32x32"},
        1: {"--minShapes": "x:1x3x32x32", "--optShapes": "x:1x3x64x64", "--maxShapes": "x:4x3x128x128"}}
    assert sum(a.split("=")[0] in ("--minShapes", "--optShapes", "--maxShapes") for a in argv) == 6
    major, minor = (int(p) for p in version.split(".")[:2])
    flags = {a.split("=", 1)[0] for a in argv[1:] + trtexec_run_argv(plan)[1:]}
    assert flags <= parsed_flags(release_for(major, minor))
    assert "--shapes=x:1x3x16x16" in trtexec_run_argv(plan)  # a plain run uses profile 0: its opt
    one = trtexec_argv(make_recipe(EngineSpec("t", shapes=SMALL), version, HW), "model.onnx")
    assert not any(a.startswith("--profile") for a in one) and "--maxShapes=x:4x3x32x32" in one


def test_trtexec_8x_has_no_profile_option_and_is_refused():
    assert not several_profiles("8.5") and not several_profiles("8.6")
    assert all(several_profiles(r) for r in ("10.3", "10.16", "11.1"))
    for version in ("8.5.2", "8.6.1"):
        plan = make_recipe(TWO, version, HW)
        with pytest.raises(BadInputError, match="builds one optimization profile; 2 were asked") as e:
            trtexec_argv(plan, "model.onnx")
        assert e.value.exit_code == EXIT_BAD_INPUT and "--profile" in e.value.why
    check_profile_count("t", "8.5", 1)  # one profile is fine anywhere
    check_profile_count("t", None, 3)  # no upper bound: 10.x/11.x lines
    with pytest.raises(BadInputError, match=r"TensorRT 8\.6"):
        check_profile_count("t", "8.6", 2)


def test_profile_facts_are_pinned_for_every_release_that_parses_it():
    pinned = {s.release for s in PARSED if s.flag == "--profile"}
    assert pinned == {"10.3", "10.16", "11.1"}
    behind = {s.release for s in BEHAVIOUR if s.flag == "--profile" and "pos == 1" in s.quote}
    assert behind == pinned
