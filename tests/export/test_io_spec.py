"""Input specs, symbols and ranges; output flattening and naming; per-output parity; reference.npz layouts.
Pure and fast: no export here (tests/export/test_io_cli.py runs the CLI end to end)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from deployconv.core.errors import BadInputError, CheckFailedError
from deployconv.core.io_spec import DimRange, IOSpec, build_spec, check_for_target, parse_dim, parse_input
from deployconv.core.outputs import check_same, flatten, restore
from deployconv.core.reference import RefPoint, load_reference, save_reference
from deployconv.core.target import FP32_BUDGET, get_target
from deployconv.models.io import dynamic_shapes, run_checked, spec_from_examples
from deployconv.validate.parity import merge_points, run_chain


def test_parse_input_dims_and_dtypes():
    s = parse_input("mask=BxHxW:int64")
    assert (s.name, s.dims, s.dtype) == ("mask", ("B", "H", "W"), "int64")
    assert parse_input("image=1x3x512x1024").dims == (1, 3, 512, 1024)
    assert parse_input("t=B,max_len:bool").dims == ("B", "max_len")  # comma form for symbols with an x


@pytest.mark.parametrize("bad", ["image", "image=", "image=1x0x3", "image=1x3x?:float32", "image=Bx3:complex"])
def test_parse_input_rejects(bad):
    with pytest.raises(BadInputError):
        parse_input(bad)


def test_parse_dim_forms_and_errors():
    assert parse_dim("H=320..640..1344") == ("H", DimRange(320, 640, 1344))
    assert parse_dim("B=1..16") == ("B", DimRange(1, 1, 16))  # two values: opt = min (latency first)
    assert parse_dim("H=800") == ("H", DimRange(800, 800, 800))
    with pytest.raises(BadInputError, match="min 640 > max 320"):
        parse_dim("H=640..320")
    with pytest.raises(BadInputError, match="outside"):
        parse_dim("H=320..2000..1344")
    with pytest.raises(BadInputError):
        parse_dim("H=0..4")


def test_build_spec_symbols():
    inputs = [parse_input("image=Bx3xHxW"), parse_input("mask=BxHxW:int64")]
    spec = build_spec(inputs, {"H": DimRange(64, 96, 128), "W": DimRange(64, 64, 64)}, batch=(1, 2, 8), source="cli")
    assert spec.ranges["B"] == DimRange(1, 2, 8)  # a dim-0-only symbol is the batch
    assert spec.dynamic_symbols() == ["B", "H"] and spec.points == ("min", "opt", "max")
    assert spec.shapes_at("max") == {"image": (8, 3, 128, 64), "mask": (8, 128, 64)}
    assert spec.shapes_at("min", batch=2)["image"] == (2, 3, 64, 64)
    assert spec.profile_shapes()["mask"] == ((1, 64, 64), (2, 96, 64), (8, 128, 64))
    assert IOSpec.from_dict(spec.to_dict()) == spec
    feed = spec.feeds("opt", batch=2, count=1, seed=0)[0]
    assert feed["mask"].dtype == np.int64 and set(np.unique(feed["mask"])) <= {0, 1}
    with pytest.raises(BadInputError, match="without a range: H"):
        build_spec([parse_input("image=Bx3xHxH")], {}, batch=(1, 1, 4), source="cli")
    with pytest.raises(BadInputError, match="no input uses: Q"):
        build_spec(inputs, {"H": DimRange(1, 1, 1), "W": DimRange(1, 1, 1), "Q": DimRange(1, 1, 1)},
                   batch=(1, 1, 1), source="cli")
    with pytest.raises(BadInputError, match="given twice"):
        build_spec([parse_input("x=1x3"), parse_input("x=1x4")], {}, batch=None, source="cli")
    with pytest.raises(BadInputError, match="also input names"):
        build_spec([parse_input("x=1xy"), parse_input("y=1x4")], {"y": DimRange(1, 1, 1)}, batch=None, source="cli")


def test_dla_refuses_dynamic_dims_and_int64():
    dla = next(t for t in __import__("deployconv.core.target", fromlist=["x"]).builtin_targets().values()
               if t.uses_dla)
    dyn = build_spec([parse_input("image=1x3xHxW")], {"H": DimRange(64, 96, 128), "W": DimRange(64, 64, 64)},
                     batch=None, source="cli")
    with pytest.raises(BadInputError, match="static shapes"):
        check_for_target(dyn, dla)
    ints = build_spec([parse_input("image=1x3x64x64"), parse_input("mask=1x64x64:int64")], {}, batch=None,
                      source="cli")
    with pytest.raises(BadInputError, match="int64"):
        check_for_target(ints, dla)
    check_for_target(ints, get_target("onnx"))  # a GPU/CPU target takes them


def test_dynamic_shapes_share_symbols():
    spec = build_spec([parse_input("image=Bx3xHxW"), parse_input("mask=BxHxW:bool")],
                      {"H": DimRange(32, 64, 96), "W": DimRange(32, 64, 96)}, batch=(1, 1, 1), source="cli")
    ds = dynamic_shapes(spec)
    assert set(ds[0]) == {2, 3} and ds[0][2] is ds[1][1]  # B is static (1..1); H is one Dim in both inputs


def test_example_inputs_convention():
    m = torch.nn.Identity()
    spec = spec_from_examples(m, lambda: {"image": torch.zeros(2, 3, 8, 8), "mask": torch.ones(2, 8, 8, dtype=torch.int64)},
                              None, (1, 2, 4))
    assert spec.inputs[0].dims == ("batch", 3, 8, 8) and spec.inputs[1].dtype == "int64"
    spec = spec_from_examples(m, ["image=Bx3xHxW"], {"H": (32, 64, 96), "W": 64}, (1, 1, 4))
    assert spec.ranges["H"] == DimRange(32, 64, 96) and spec.ranges["W"] == DimRange(64, 64, 64)
    with pytest.raises(BadInputError, match="example_inputs returned"):
        spec_from_examples(m, 3, None, None)


def test_flatten_names_and_restore():
    t = torch.zeros
    out = {"cls": t(1), "feat": {"stage3": t(2), "stage4": t(3)}, "aux": [t(4), (t(5),)]}
    flat = flatten(out)
    assert flat.names == ["cls", "feat.stage3", "feat.stage4", "aux.p0", "aux.p1.p0"]
    back = restore(flat.structure, dict(zip(flat.names, flat.tensors)))
    assert back["feat"]["stage4"].shape == (3,) and isinstance(back["aux"][1], tuple)
    assert flatten([t(1), t(2)]).names == ["p0", "p1"] and flatten(t(1)).names == ["output"]
    with pytest.raises(BadInputError, match="NoneType"):
        flatten((t(1), None))
    with pytest.raises(BadInputError, match="different output structure"):
        check_same(flatten({"a": t(1)}), flatten({"a": t(1), "b": t(1)}), "m")


def test_run_checked_names_the_module():
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Sequential(torch.nn.Conv2d(4, 4, 1)))
    with pytest.raises(BadInputError, match=r"module '0' \(Conv2d\)"):
        run_checked(m, (torch.zeros(1, 5, 8, 8),), "m")


def test_per_output_parity_names_the_worst():
    batches = [np.ones((2, 3))]
    a = {"p0": np.ones((2, 4)), "p1": np.full((2, 5), 2.0)}
    b = {"p0": np.ones((2, 4)), "p1": np.full((2, 5), 2.0) + np.array([0, 0, 0, 0, 0.5])}
    rep, _ = run_chain([("ref", lambda x: a), ("ok", lambda x: a), ("bad", lambda x: b)], batches, FP32_BUDGET, {})
    assert rep.stages[1].passed and not rep.stages[2].passed and rep.broke_at == "bad"
    assert rep.stages[2].vs_previous["output"] == "p1" and set(rep.stages[2].vs_previous["per_output"]) == {"p0", "p1"}
    assert all(f.startswith("output 'p1'") for f in rep.stages[2].failures)
    with pytest.raises(CheckFailedError, match="output names differ"):
        run_chain([("ref", lambda x: a), ("other", lambda x: {"q": a["p0"]})], batches, FP32_BUDGET, {})
    ok, _ = run_chain([("ref", lambda x: a), ("ok", lambda x: a)], batches, FP32_BUDGET, {})
    merged = merge_points({"min": ok, "opt": ok, "max": rep}, lambda p: {"x": (1, 2)})
    assert not merged.passed and merged.broke_at_point == "max" and merged.broke_at == "bad"


def test_reference_layouts(tmp_path: Path):
    one = [RefPoint("opt", {"input": np.ones((2, 3), np.float32)}, {"output": np.ones(2)}, {"output": np.ones(2)})]
    save_reference(tmp_path / "a.npz", one)
    assert set(np.load(tmp_path / "a.npz").files) == {"input", "expected", "expected_fp64"}  # the classic layout
    assert load_reference(tmp_path / "a.npz", ["x"], ["y"])[0].inputs.keys() == {"x"}
    pts = [RefPoint(p, {"image": np.zeros((1, 3)), "mask": np.ones((1, 3), np.int64)},
                    {"a": np.ones(1), "b": np.zeros(2)}, {"a": np.ones(1), "b": np.zeros(2)}) for p in ("max", "min")]
    save_reference(tmp_path / "b.npz", pts)
    back = load_reference(tmp_path / "b.npz", ["image", "mask"], ["a", "b"])
    assert [r.point for r in back] == ["min", "max"] and back[0].inputs["mask"].dtype == np.int64
    assert isinstance(back[0].batch(), dict) and set(back[0].expected_batch()) == {"a", "b"}
