"""The export pipeline end to end on small models: artifacts, graph hygiene, parity chain, attribution,
validate, and the bad-input cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from deployconv.core.errors import BadInputError, CheckFailedError
from deployconv.pipeline.export import ExportOptions, export
from deployconv.trust.manifest import read_manifest, verify_hashes
from deployconv.validate.export_dir import recheck_dir

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_model.py"
FAST = ExportOptions(bench=False)


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "tiny"
    return export(f"{FIXTURE}:build", "onnx", out, options=ExportOptions(bench=True, bench_seconds=0.2))


def test_artifacts_and_manifest(tiny_export):
    out = tiny_export.out
    assert {p.name for p in out.iterdir()} == {"model.onnx", "manifest.json", "report.json", "reference.npz"}
    man = read_manifest(out)
    assert verify_hashes(out, man) == []
    assert set(man.files) == {"model.onnx", "report.json", "reference.npz"}
    assert man.exporter == "dynamo" and man.target == "onnx" and man.parity_passed
    assert man.io["inputs"][0]["shape"][0] == "batch"  # named, free batch axis
    assert man.tools["onnxruntime"] and man.tools["deployconv"]
    props = {p.key: p.value for p in onnx.load(str(out / "model.onnx")).metadata_props}
    assert props["target"] == "onnx" and props["deployconv_version"] and "lowering" in props


def test_graph_is_clean_and_report_complete(tiny_export):
    rep = json.loads((tiny_export.out / "report.json").read_text())
    g = rep["graph"]["final"]
    assert g["batchnorm"] == 0 and g["identity"] == 0 and g["dead"] == [] and g["duplicates"] == []
    stages = [s["stage"] for s in rep["parity"]["stages"]]
    assert stages == ["train-fp64", "train-fp32", "deploy-fp32", "onnx-raw (ort-cpu)", "onnx-onnxslim (ort-cpu)"]
    assert rep["parity"]["passed"] and all(s["passed"] for s in rep["parity"]["stages"])
    for s in rep["parity"]["stages"][1:]:
        m = s["vs_previous"]
        assert {"max_abs", "p99_abs", "max_abs_rel_scale", "cosine", "top1_agreement", "top5_agreement"} <= set(m)
    assert set(rep["latency"]["runs"]) == {"torch eager, train form", "torch eager, deploy form", "onnxruntime cpu"}


def test_validate_dir_and_tampering(tiny_export, tmp_path):
    res = recheck_dir(tiny_export.out)  # a user source named only by the manifest is never run
    assert res["parity"]["passed"] and "not run unless you name it again" in res["mode"]
    # torch present, the source reproducible and its sha256 the recorded one: the whole chain re-runs
    res = recheck_dir(tiny_export.out, trust_source=True)
    assert res["hash_mismatches"] == [] and res["parity"]["passed"] and res["mode"].startswith("full chain")
    assert [s["stage"] for s in res["parity"]["stages"]][:3] == ["train-fp64", "train-fp32",
                                                                 "reference (train-fp32, recorded)"]
    res = recheck_dir(tiny_export.out, torch_free=True)
    assert res["parity"]["passed"] and len(res["parity"]["stages"]) == 2
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_export.out, copy)
    ref = dict(np.load(copy / "reference.npz"))
    ref["expected"] = ref["expected"] + 1.0
    np.savez(copy / "reference.npz", **ref)
    with pytest.raises(CheckFailedError, match=r"reference\.npz: sha256 differs"):  # nothing runs on changed files
        recheck_dir(copy)


def test_existing_output_refused_without_force(tiny_export):
    with pytest.raises(BadInputError, match="already exists"):
        export(f"{FIXTURE}:build", "onnx", tiny_export.out, options=FAST)


def test_images_go_through_preprocessing(tmp_path):
    from PIL import Image

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (300, 260 + i, 3), dtype=np.uint8)).save(imgs / f"{i}.png")
    (imgs / "broken.jpg").write_bytes(b"not a jpeg")
    res = export(f"{FIXTURE}:build", "ort-cpu", tmp_path / "o", options=ExportOptions(bench=False, images=imgs))
    desc = res.report["parity"]["inputs"]["images"]
    assert desc["used"] == 3 and desc["skipped"] == 1 and res.passed
    with pytest.raises(BadInputError, match="no images"):
        export(f"{FIXTURE}:build", "onnx", tmp_path / "o2", options=ExportOptions(bench=False, images=tmp_path / "o"))


class _NaNAfterStem(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=8)

    def forward(self, x):
        return torch.log(self.conv(x) - 1e6).mean((2, 3))  # log of negatives: NaN


def build_nan():
    return _NaNAfterStem()


def test_nan_in_chain_is_a_failure(tmp_path):
    from deployconv.core.errors import CheckFailedError
    from deployconv.core.target import FP32_BUDGET
    from deployconv.validate.parity import run_chain

    with pytest.raises(CheckFailedError, match="NaN/Inf"):
        export(_NaNAfterStem().eval(), "onnx", tmp_path / "nan", options=FAST)
    assert not (tmp_path / "nan").exists()
    # a stage that turns finite outputs into NaN breaks the chain at that stage
    batches = [np.ones((2, 3), np.float32)]
    rep, _ = run_chain([("ref", lambda b: b.astype(np.float64)), ("bad", lambda b: b * np.nan)], batches,
                       FP32_BUDGET, {})
    assert not rep.passed and rep.broke_at == "bad" and "NaN/Inf" in rep.stages[1].failures[0]


@torch.library.custom_op("dctest::mystery", mutates_args=())
def _mystery(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@_mystery.register_fake
def _(x):
    return torch.empty_like(x)


class _Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, stride=8)
        self.block = _MysteryBlock()

    def forward(self, x):
        return self.block(self.stem(x)).mean((2, 3))


class _MysteryBlock(nn.Module):
    def forward(self, x):
        return torch.ops.dctest.mystery(x)


def test_unsupported_op_names_op_and_module(tmp_path):
    with pytest.raises(BadInputError) as ei:
        export(_Unsupported().eval(), "onnx", tmp_path / "u", options=FAST)
    msg = str(ei.value)
    assert "dctest" in msg and "mystery" in msg and "block" in msg


def test_unknown_target_and_low_opset(tmp_path):
    with pytest.raises(BadInputError, match="unknown target"):
        export(f"{FIXTURE}:build", "onnxx", tmp_path / "t", options=FAST)


@pytest.mark.slow
def test_broken_lowering_is_attributed_to_the_layer(tmp_path, monkeypatch):
    """A wrong SKA lowering must make the chain break at the ONNX stage and name the SKA's module."""
    import importlib

    from deployconv.ops.registry import OpEntry

    ska_mod = importlib.import_module("deployconv.ops.ska")  # `deployconv.ops.ska` the attribute is the function

    good = ska_mod.ENTRY.lowerings["standard"]

    def bad(x, w):
        from onnxscript import opset18 as op

        return op.Mul(good(x, w), op.CastLike(op.Constant(value_float=1.01), x))

    entry = OpEntry(ska_mod.ENTRY.name, ska_mod.ENTRY.qualname, {**ska_mod.ENTRY.lowerings, "standard": bad},
                    ska_mod.ENTRY.min_opset)
    import deployconv.ops.lowering_table as table

    monkeypatch.setattr(table, "ENTRIES", tuple(entry if e.name == entry.name else e for e in table.ENTRIES))
    res = export("lsnet_t", "onnx", tmp_path / "bad", options=FAST)
    par = res.report["parity"]
    assert not res.passed and par["broke_at"] == "onnx-raw (ort-cpu)"
    assert par["first_divergence"]["module"].endswith("ska"), par["first_divergence"]


@pytest.mark.skipif(__import__("importlib").util.find_spec("tensorrt") is not None,
                    reason="TensorRT is installed here: the engine would be built, not skipped")
def test_trt_target_without_tensorrt_skips_the_engine_and_require_engine_exits_3(tmp_path):
    from typer.testing import CliRunner

    from deployconv.cli.app import app

    args = ["export", "--model", f"{FIXTURE}:build", "--target", "trt-fp32", "--no-bench"]
    ok = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert ok.exit_code == 0, ok.output
    assert "skipped: TensorRT not installed" in ok.output and "deployconv build-engine" in ok.output
    engine = json.loads((tmp_path / "a" / "report.json").read_text())["engine"]
    assert engine["status"] == "skipped: TensorRT not installed" and engine["trtexec"]
    strict = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b"), "--require-engine"])
    assert strict.exit_code == 3 and "Traceback" not in strict.output
    assert (tmp_path / "b" / "model.onnx").is_file()  # the export itself is kept
