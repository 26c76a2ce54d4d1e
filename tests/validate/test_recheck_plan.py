"""`deployconv validate`: which runtimes re-run the model (pure decision), and a TensorRT-target bundle whose plugin
graph ONNX Runtime cannot run is validated through its ONNX Runtime twin, on the device and here."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployconv.core.errors import MissingEnvironmentError
from deployconv.pipeline.bundle import make_bundle
from deployconv.pipeline.export import ExportOptions, export
from deployconv.trust.manifest import read_manifest, verify_hashes
from deployconv.validate.device import check_bundle
from deployconv.validate.export_dir import choose_runtimes, recheck_dir

CUSTOM = f"{Path(__file__).parents[1] / 'fixtures' / 'custom_ops_model.py'}:build"


@pytest.mark.parametrize(("requested", "runtime", "engine", "ort", "trt", "expect"), [
    ("auto", "onnxruntime", False, True, False, (True, False)),
    ("auto", "onnxruntime", True, True, True, (True, False)),  # an ORT target never needs its engine
    ("auto", "tensorrt", True, True, True, (True, True)),  # both: the engine is compared with the ONNX
    ("auto", "tensorrt", True, False, True, (False, True)),  # a Jetson with TensorRT, numpy, cuda-python only
    ("auto", "tensorrt", False, True, True, (True, False)),  # not built yet: ONNX only, with a note
    ("auto", "tensorrt", True, True, False, (True, False)),  # no TensorRT here: ONNX only, with a note
    ("ort-cpu", "tensorrt", True, True, True, (True, False)),
    ("trt", "onnxruntime", True, True, True, (False, True)),
])
def test_choose_runtimes(requested, runtime, engine, ort, trt, expect):
    plan = choose_runtimes(requested, runtime, engine, ort, trt)
    assert (plan.ort, plan.trt) == expect
    if runtime == "tensorrt" and requested == "auto" and not plan.trt:
        assert plan.notes and "engine not checked" in plan.notes[0]


@pytest.mark.parametrize(("requested", "engine", "ort", "trt", "words"), [
    ("trt", False, True, True, "no engine.plan"),
    ("trt", True, True, False, "TensorRT is not installed"),
    ("ort-cpu", True, False, True, "onnxruntime is not installed"),
    ("auto", True, False, False, "nothing here can run the model"),
])
def test_choose_runtimes_refuses_what_cannot_run(requested, engine, ort, trt, words):
    with pytest.raises(MissingEnvironmentError, match=words):
        choose_runtimes(requested, "tensorrt", engine, ort, trt)


@pytest.fixture(scope="module")
def trt_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("e") / "custom-trt-fp16"
    assert export(CUSTOM, "trt-fp16", out, options=ExportOptions(bench=False)).passed
    return make_bundle(out, tmp_path_factory.mktemp("b") / "bundle").out


def test_plugin_bundle_carries_its_twin_and_validates_through_it(trt_bundle):
    man = read_manifest(trt_bundle)
    assert man.ort_model == "ort/model.onnx" and "ort/model.onnx" in man.files
    assert verify_hashes(trt_bundle, man) == []
    assert "ort/model.onnx" in (trt_bundle / "README.md").read_text()
    res = recheck_dir(trt_bundle, torch_free=True)
    assert res["parity"]["passed"] and res["runtimes"] == ["onnx (ort-cpu)"]
    assert any("engine not checked" in n for n in res["notes"])  # no TensorRT and no engine here: said
    report = check_bundle(trt_bundle, runtime="ort-cpu")
    parity = next(c for c in report.checks if c.name == "parity")
    assert parity.status == "pass" and "twin" in parity.found
