"""Issue #14 end to end through the CLI, with small self-built models of the shapes users bring: a
features_only-style backbone (list out), a detector head (nested dict out, dynamic H/W declared by
`example_inputs`), a two-input model (image + int64 mask) and a segmentation net at 512x1024. Each exports,
validates, and one each benches and bundles; every bad spec is exit 2 with a message, no traceback."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from deployconv.cli.app import app

FIX = Path(__file__).parents[1] / "fixtures" / "io"
runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def ok(res):
    assert res.exit_code == 0, res.output
    return res


def bad(res, *needles):
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    for n in needles:
        assert n in res.output, res.output
    return res


def test_features_only_backbone_list_outputs(tmp_path):
    out = tmp_path / "feat"
    ok(run("export", "-m", f"{FIX}/features.py:build", "-o", out, "--no-bench"))
    m = json.loads((out / "manifest.json").read_text())
    assert m["io_spec"]["outputs"] == ["p0", "p1", "p2"]
    assert [o["name"] for o in m["io"]["outputs"]] == ["p0", "p1", "p2"]
    report = json.loads((out / "report.json").read_text())
    onnx_stage = report["parity"]["stages"][-1]
    assert set(onnx_stage["vs_previous"]["per_output"]) == {"p0", "p1", "p2"}
    assert onnx_stage["vs_previous"]["output"] in {"p0", "p1", "p2"}  # the worst output, named
    res = ok(run("validate", out, "--json"))
    assert json.loads(res.stdout)["parity"]["passed"]
    res = ok(run("bench", out, "--iters", "3", "--warmup", "0", "--json"))
    assert json.loads(res.stdout)["stats"]["count"] == 3


def test_detector_dict_outputs_dynamic_hw(tmp_path):
    out = tmp_path / "det"
    ok(run("export", "-m", f"{FIX}/detector.py:build", "-o", out, "--no-bench"))
    m = json.loads((out / "manifest.json").read_text())
    io = m["io_spec"]
    assert io["outputs"] == ["cls", "box", "feat.stage2", "feat.stage3"]
    assert io["profiles"][0]["image"] == {"min": [1, 3, 64, 64], "opt": [1, 3, 96, 128], "max": [32, 3, 160, 192]}
    assert m["io"]["inputs"][0]["shape"] == ["B", 3, "H", "W"]  # named dynamic ONNX dims
    assert not any(str(d).startswith("s") for o in m["io"]["outputs"] for d in o["shape"] if isinstance(d, str))
    parity = json.loads((out / "report.json").read_text())["parity"]
    assert parity["passed"] and set(parity["points"]) == {"min", "opt", "max"}
    assert parity["points"]["max"]["shapes"]["image"][2:] == [160, 192]
    res = ok(run("validate", out, "--json"))
    assert set(json.loads(res.stdout)["parity"]["points"]) == {"min", "opt", "max"}
    ref = np.load(out / "reference.npz")
    assert ref["max/input/image"].shape[2:] == (160, 192) and "min/expected/feat.stage3" in ref.files
    # the PyTorch-side helper restores the module's structure from runtime outputs
    from deployconv.core.outputs import restore

    flat = {n: ref[f"opt/expected/{n}"] for n in io["outputs"]}
    assert set(restore(io["output_structure"], flat)["feat"]) == {"stage2", "stage3"}


def test_two_inputs_image_and_int_mask_bundle(tmp_path):
    out = tmp_path / "masked"
    ok(run("export", "-m", f"{FIX}/masked.py:build", "-o", out, "--no-bench"))
    m = json.loads((out / "manifest.json").read_text())
    assert [(i["name"], i["dtype"]) for i in m["io"]["inputs"]] == [("image", "float32"), ("mask", "int64")]
    assert m["io_spec"]["outputs"] == ["p0", "p1"]
    ok(run("validate", out, "--torch-free"))
    ok(run("bundle", "-m", f"{FIX}/masked.py:build", "-t", "onnx", "-o", tmp_path / "bundle"))
    assert (tmp_path / "bundle" / "reference.npz").is_file()


def test_segmentation_512x1024(tmp_path):
    out = tmp_path / "seg"
    ok(run("export", "-m", f"{FIX}/seg.py:build", "-o", out, "--input", "input=Bx3x512x1024", "--no-bench"))
    m = json.loads((out / "manifest.json").read_text())
    assert m["io"]["outputs"][0]["shape"] == ["B", 3, 512, 1024]
    ok(run("validate", out))


def test_bad_specs_are_exit_2(tmp_path):
    seg, masked = f"{FIX}/seg.py:build", f"{FIX}/masked.py:build"
    bad(run("export", "-m", seg, "-o", tmp_path / "a", "--input", "input=1x4x64x64"), "enc.0.0", "Conv2d")
    bad(run("export", "-m", seg, "-o", tmp_path / "b", "--input", "input=1x3xHxW", "--dim", "H=640..320",
            "--dim", "W=64"), "min 640 > max 320")
    bad(run("export", "-m", seg, "-o", tmp_path / "c", "--input", "input=1x3xHxW", "--dim", "H=64"),
        "without a range: W")
    bad(run("export", "-m", masked, "-o", tmp_path / "d", "-t", "jetson-orin-dla-fp16"), "DLA", "int64")
    bad(run("export", "-m", seg, "-o", tmp_path / "e", "--input", "input=1x3xHxW", "--dim", "H=64..96..128",
            "--dim", "W=64..96..128", "-t", "jetson-orin-dla-fp16"), "static shapes")
    bad(run("export", "-m", f"{FIX}/seg.py:build_varying", "-o", tmp_path / "f"), "different output structure")
    bad(run("export", "-m", seg, "-o", tmp_path / "g", "--dim", "H=64..128"), "no symbols")


@pytest.mark.slow
def test_symbol_used_inconsistently(tmp_path):
    """mask=BxWxH against image=Bx3xHxW: the model multiplies them, so H must equal W; torch.export's
    constraint error becomes exit 2 naming the symbols."""
    res = run("export", "-m", f"{FIX}/masked.py:build", "-o", tmp_path / "x", "--input", "image=Bx3xHxW",
              "--input", "mask=BxWxH:int64", "--dim", "H=32..48..64", "--dim", "W=32..48..64")
    bad(res, "does not accept symbol")
