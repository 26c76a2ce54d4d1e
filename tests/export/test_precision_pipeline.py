"""`deployconv export` with fp16 and int8 targets, end to end on small models: the precision stage joins the parity
chain, the artifact carries the precision (TensorRT 11 is strongly typed), TensorRT targets get the decisions made
on the ONNX Runtime twin carried to their plugin graph, and calibration input errors are clear."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper
from typer.testing import CliRunner

from deployconv.cli.app import app
from deployconv.core.errors import BadInputError
from deployconv.pipeline.export import ExportOptions, export
from deployconv.plugins.table import ONNX_DOMAIN
from deployconv.trust.manifest import read_manifest, verify_hashes
from deployconv.validate.export_dir import recheck_dir

FIXTURES = Path(__file__).parents[1] / "fixtures"
TINY = f"{FIXTURES / 'tiny_model.py'}:build"
CUSTOM = f"{FIXTURES / 'custom_ops_model.py'}:build"
FAST = ExportOptions(bench=False, calib_samples=16)


def _exported(tmp_path_factory, model: str, target: str, **opts) -> Path:
    out = tmp_path_factory.mktemp("prec") / target
    options = ExportOptions(**{**FAST.__dict__, **opts})
    res = export(model, target, out, options=options)
    assert res.passed, res.report["parity"]
    return out


@pytest.fixture(scope="module")
def fp16_dir(tmp_path_factory):
    return _exported(tmp_path_factory, TINY, "onnx-fp16")


@pytest.fixture(scope="module")
def int8_dir(tmp_path_factory):
    return _exported(tmp_path_factory, TINY, "onnx-int8")


@pytest.fixture(scope="module")
def trt_dirs(tmp_path_factory):
    return {t: _exported(tmp_path_factory, CUSTOM, t) for t in ("trt-fp16", "trt-int8")}


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def _elem(proto: onnx.ModelProto, name: str) -> int:
    return next(v.type.tensor_type.elem_type for v in (*proto.graph.input, *proto.graph.output) if v.name == name)


def test_fp16_stage_joins_the_chain_and_graph_carries_fp16(fp16_dir):
    rep = _report(fp16_dir)
    stages = [s["stage"] for s in rep["parity"]["stages"]]
    assert stages[-1] == "onnx-fp16 (ort-cpu, fp16 rounding emulated)" and rep["parity"]["passed"]
    m = onnx.load(str(fp16_dir / "model.onnx"))
    assert any(t.data_type == TensorProto.FLOAT16 for t in m.graph.initializer)
    assert _elem(m, m.graph.input[0].name) == TensorProto.FLOAT  # io stays fp32 by default
    man = read_manifest(fp16_dir)
    pr = man.precision_report
    assert pr["precision"] == "fp16" and pr["fp16_nodes"] > 0
    assert {"ReduceMean"} <= {k["op_type"] for k in pr["kept_fp32"]}  # accumulating reduction stays fp32
    assert all(k["reason"] for k in pr["kept_fp32"])
    assert verify_hashes(fp16_dir, man) == []
    props = {p.key: p.value for p in m.metadata_props}
    assert props["precision"] == "fp16"


def test_fp16_io_dtype_fp16(tmp_path_factory):
    out = _exported(tmp_path_factory, TINY, "onnx-fp16", io_dtype="fp16")
    m = onnx.load(str(out / "model.onnx"))
    assert _elem(m, m.graph.input[0].name) == TensorProto.FLOAT16
    assert _elem(m, m.graph.output[0].name) == TensorProto.FLOAT16
    assert read_manifest(out).io_dtype == "fp16"


def test_int8_graph_is_explicit_qdq_with_report(int8_dir):
    rep = _report(int8_dir)
    assert rep["parity"]["stages"][-1]["stage"] == "onnx-int8 (ort-cpu)" and rep["parity"]["passed"]
    m = onnx.load(str(int8_dir / "model.onnx"))
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > ops.count("QuantizeLinear")
    zero_points = [numpy_helper.to_array(t) for t in m.graph.initializer if "zero_point" in t.name]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)  # symmetric int8
    pr = read_manifest(int8_dir).precision_report
    assert pr["activation"] == "int8-symmetric" and pr["placement_violations"] == []
    assert pr["calibration"]["source"] == "synthetic" and not pr["calibration"]["representative"]
    assert pr["accuracy_vs_fp32"]["cosine"] >= 0.99
    assert any("SYNTHETIC" in n for n in rep["notes"])  # the loud warning


def test_validate_reruns_a_precision_export_torch_free(int8_dir, fp16_dir):
    for d in (int8_dir, fp16_dir):
        res = recheck_dir(d, torch_free=True)
        assert res["hash_mismatches"] == [] and res["parity"]["passed"], res


def test_ort_cpu_int8_uses_uint8_activations(tmp_path_factory):
    out = _exported(tmp_path_factory, TINY, "ort-cpu-int8")
    pr = read_manifest(out).precision_report
    assert pr["activation"] == "uint8"
    m = onnx.load(str(out / "model.onnx"))
    act_zp = [numpy_helper.to_array(t) for t in m.graph.initializer
              if "zero_point" in t.name and numpy_helper.to_array(t).dtype == np.uint8]
    assert act_zp


def _write_images(folder: Path, n: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"img_{i}.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")


def test_calibration_images_are_used_and_broken_ones_counted(tmp_path_factory, tmp_path):
    _write_images(tmp_path / "calib", 5)
    out = _exported(tmp_path_factory, TINY, "onnx-int8", calib=tmp_path / "calib", calib_method="percentile")
    pr = read_manifest(out).precision_report
    assert pr["calibration"]["source"] == "images" and pr["calibration"]["samples"] == 5
    assert pr["calibration"]["skipped"] == 1 and pr["method"].startswith("percentile")
    assert not any("SYNTHETIC" in n for n in _report(out)["notes"])


def test_empty_calibration_dir_is_bad_input(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match=r"calib|image"):
        export(TINY, "onnx-int8", tmp_path / "out", options=ExportOptions(bench=False, calib=tmp_path / "empty"))
    assert not (tmp_path / "out").exists()  # nothing half written


def test_trt_targets_carry_twin_decisions_to_the_plugin_graph(trt_dirs):
    for out in trt_dirs.values():
        art = onnx.load(str(out / "model.onnx"))
        twin = onnx.load(str(out / "ort" / "model.onnx"))
        assert {n.op_type for n in art.graph.node if n.domain == ONNX_DOMAIN} == {"DeployconvSKA",
                                                                                "DeployconvDeformConv2d"}
        assert not any(n.domain == ONNX_DOMAIN for n in twin.graph.node)
        onnx.checker.check_model(art, full_check=True)
        carried = read_manifest(out).precision_report["carried_to_artifact"]
        assert carried["same_graph"] is False and carried["not_carried"] == []
        assert _report(out)["engine"]["status"] == "skipped: TensorRT not installed"
    fp16 = onnx.load(str(trt_dirs["trt-fp16"] / "model.onnx"))
    assert any(t.data_type == TensorProto.FLOAT16 for t in fp16.graph.initializer)


def _qdq_scales(proto: onnx.ModelProto) -> list[float]:
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    return sorted(float(inits[n.input[1]].ravel()[0]) for n in proto.graph.node if n.op_type == "QuantizeLinear")


def test_trt_int8_plugin_graph_has_the_twins_quantization(trt_dirs):
    out = trt_dirs["trt-int8"]
    art = onnx.load(str(out / "model.onnx"))
    twin = onnx.load(str(out / "ort" / "model.onnx"))
    # same calibrated activation scales (ranges renamed tensor by tensor, not recalibrated)
    assert _qdq_scales(art) == pytest.approx(_qdq_scales(twin), rel=1e-6) and _qdq_scales(art)
    pr = read_manifest(out).precision_report
    assert pr["carried_to_artifact"]["artifact_quantized"] == pr["quantized"]
    assert pr["carried_to_artifact"]["artifact_placement_violations"] == []


def test_cli_int8_export_warns_loudly_about_synthetic_calibration(tmp_path):
    res = CliRunner().invoke(app, ["export", "--model", TINY, "--target", "onnx-int8", "--out", str(tmp_path / "o"),
                                   "--no-bench", "--calib-samples", "8"])
    assert res.exit_code == 0, res.output
    assert "SYNTHETIC" in res.output
    bad = CliRunner().invoke(app, ["export", "--model", TINY, "--target", "onnx-int8", "--out", str(tmp_path / "p"),
                                   "--calib", str(tmp_path / "nowhere")])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
