"""The ledger on real labelled images: a RepVGG-style net trained on sklearn's digits, evaluated through the
real `deployconv eval` CLI path (ImageFolder of PNGs, user model file.py:factory with weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from deployconv.cli.app import app
from tests.accuracy.digits import Digits
from tests.artifact_samples import manifest_dict

runner = CliRunner()


@pytest.fixture(scope="module")
def ledger(digits: Digits, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("eval") / "out"
    md = out.parent / "summary.md"
    res = runner.invoke(app, ["eval", digits.source, "--weights", str(digits.weights), "--data",
                              str(digits.eval_dir), "--calib", str(digits.train_dir), "--batch", "64",
                              "--out", str(out), "--markdown", str(md)])
    assert res.exit_code == 0, res.output
    assert "img/s" in res.output  # the progress bar shows the speed
    report = json.loads((out / "report.json").read_text())
    assert md.read_text() == (out / "accuracy.md").read_text()
    assert "Accuracy ledger" in (out / "accuracy.html").read_text()
    return report["accuracy"]


def _row(ledger: dict, name: str) -> dict:
    return next(s for s in ledger["stages"] if s["name"] == name)


def test_every_stage_runs_on_every_image(ledger: dict) -> None:
    assert [s["name"] for s in ledger["stages"]] == ["train", "deploy", "onnx", "simplified", "fp16", "int8"]
    assert [s["name"] for s in ledger["skipped"]] == ["engine"]  # no TensorRT here, and said so
    assert ledger["images"] == 599 and ledger["skipped_images"] == 0
    assert all(s["top1"]["n"] == 599 for s in ledger["stages"])
    assert _row(ledger, "fp16")["emulated"] is True
    assert _row(ledger, "train")["top1"]["value"] > 90  # a trained model, not chance (10%)


def test_fp32_deploy_onnx_keep_accuracy(ledger: dict) -> None:
    train = _row(ledger, "train")["top1"]
    for name in ("deploy", "onnx", "simplified"):
        row = _row(ledger, name)
        assert train["low"] <= row["top1"]["value"] <= train["high"]
        assert not row["vs_fp32"]["significant"]
        assert row["vs_previous"]["agreement_top1"] > 99.5


def test_int8_row_carries_drop_and_significance(ledger: dict) -> None:
    row = _row(ledger, "int8")
    c = row["vs_fp32"]
    assert c["against"] == "train"
    assert c["top1_delta_pts"] == pytest.approx(100 * (c["gained"] - c["lost"]) / 599)
    assert 0 <= c["p_value"] <= 1 and c["significant"] == (c["p_value"] < 0.05)
    assert row["top1"]["low"] < row["top1"]["value"] < row["top1"]["high"]


def _broken_int8(digits: Digits, factor: float) -> onnx.ModelProto:
    """The int8 graph eval builds, with one activation QuantizeLinear's scale multiplied by `factor` (its
    DequantizeLinear keeps the right scale): the classic wrong-scale bug."""
    import torch

    from deployconv.accuracy.stages import StageOptions, export_graphs, int8_graph
    from deployconv.export.precision.calibration import calibration_from_images
    from deployconv.models import create_model
    from deployconv.reparam import reparameterize
    from tests.accuracy.digits_net import INFO

    model = create_model(digits.source, digits.weights)
    with torch.no_grad():
        graphs = export_graphs(reparameterize(model), INFO.input_size, StageOptions())
    q, _ = int8_graph(graphs.simplified, calibration_from_images(digits.train_dir, INFO, 64), StageOptions())
    inits = {t.name: t for t in q.graph.initializer}
    acts = [n for n in q.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits]
    target = acts[len(acts) // 2]
    scale = numpy_helper.to_array(inits[target.input[1]]) * np.float32(factor)
    q.graph.initializer.append(numpy_helper.from_array(scale.astype(np.float32), target.input[1] + "_wrong"))
    target.input[1] = target.input[1] + "_wrong"
    return q


def test_planted_int8_fault_is_caught_as_significant(digits: Digits, ledger: dict) -> None:
    from deployconv.accuracy.dataset import scan_image_folder
    from deployconv.accuracy.evaluate import EvalOptions, run_ledger
    from deployconv.accuracy.stages import Stage, ort_run, torch_run
    from deployconv.models import create_model
    from tests.accuracy.digits_net import INFO

    model = create_model(digits.source, digits.weights)
    stages = [Stage("train", "PyTorch fp32", torch_run(model)),
              Stage("int8", "broken int8", ort_run(_broken_int8(digits, 8.0)))]
    broken = run_ledger(stages, [], scan_image_folder(digits.eval_dir), INFO, EvalOptions(batch=64))
    row = broken.stage("int8")
    assert row.top1.value < _row(ledger, "int8")["top1"]["value"] - 2
    assert row.vs_fp32 is not None and row.vs_fp32.significant and row.vs_fp32.top1_delta_pts < -2
    assert broken.stage("train").top1.value == pytest.approx(_row(ledger, "train")["top1"]["value"])


def test_max_drop_gates_with_significance(digits: Digits, tmp_path: Path) -> None:
    """--max-drop 0 fails only when a drop is significant; the fp32 stages alone never are."""
    res = runner.invoke(app, ["eval", digits.source, "--weights", str(digits.weights), "--data",
                              str(digits.eval_dir), "--stages", "train,deploy", "--out", str(tmp_path / "o"),
                              "--max-drop", "0", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout[res.stdout.index("{"):])["accuracy"]["stages"][1]["vs_fp32"]["lost"] == 0


def test_eval_of_an_export_dir_gates_its_broken_int8_graph(digits: Digits, tmp_path: Path) -> None:
    """`eval DIR` rebuilds the model a manifest names and evaluates the directory's own int8 graph; with a
    wrong Q scale planted in it, --max-drop fails the run (exit 1) on significance."""
    d = tmp_path / "export"
    d.mkdir()
    onnx.save(_broken_int8(digits, 8.0), d / "model.onnx")
    (d / "manifest.json").write_text(json.dumps(manifest_dict(
        model=digits.source, weights=str(digits.weights), reproducible=True, precision="int8",
        ort_model="model.onnx", allow_missing=[])))
    res = runner.invoke(app, ["eval", str(d), "--data", str(digits.eval_dir), "--stages", "train,int8",
                              "--batch", "64", "--out", str(tmp_path / "o"), "--max-drop", "1"])
    assert res.exit_code == 1, res.output
    assert "lost more than 1.0 top-1 points" in res.output
    led = json.loads((tmp_path / "o" / "report.json").read_text())["accuracy"]
    assert str(d / "model.onnx") in _row(led, "int8")["label"]


def test_eval_refuses_a_dir_it_cannot_rebuild(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps(manifest_dict(model="x", reproducible=False)))
    res = runner.invoke(app, ["eval", str(tmp_path), "--data", str(tmp_path)])
    assert res.exit_code == 2 and "in-memory module" in res.output
