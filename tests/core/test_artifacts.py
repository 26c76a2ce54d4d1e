"""core.artifacts: the typed manifest / report / engine entry, read strictly, with the schema-version rule.

tests/fixtures/artifacts_v1 holds manifest.json and report.json exactly as `deployconv export` wrote them BEFORE
these types existed (commit 2b37bef, tiny_model.py:build, --no-bench, targets onnx and trt-fp32 without
TensorRT): files of schema /1 must keep loading."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from deployconv.core.artifacts import EngineEntry, ExportReport, Manifest
from deployconv.core.artifacts.version import parse_format
from deployconv.core.errors import EXIT_BAD_INPUT, BadInputError
from tests.artifact_samples import manifest_dict

V1 = Path(__file__).parents[1] / "fixtures" / "artifacts_v1"
SHA = "ab" * 32


def _load(kind: str, name: str) -> dict:
    return json.loads((V1 / kind / name).read_text())


@pytest.mark.parametrize("kind", ["onnx", "trt-fp32"])
def test_v1_files_written_before_the_types_still_load(kind):
    raw = _load(kind, "manifest.json")
    m = Manifest.from_dict(raw)
    assert m.model == "tests/fixtures/tiny_model.py:build" and m.target == kind and not m.is_bundle
    assert m.files == raw["files"] and m.plugin_names == [] and not m.has_ort_twin
    again = m.to_dict()
    if kind == "onnx":
        assert again == raw  # nothing lost, nothing added
    else:  # the skipped engine entry gains the keys every writer now writes (engine: null)
        assert {k: v for k, v in again.items() if k != "engine"} == {k: v for k, v in raw.items() if k != "engine"}
        assert {k: v for k, v in again["engine"].items() if v is not None} == raw["engine"]
        assert m.engine is not None and not m.engine.built and m.engine.status.startswith("skipped")
    assert Manifest.from_dict(again) == m
    report = ExportReport.from_dict(_load(kind, "report.json"))  # no "format" key: /1 by the rule
    assert report.model == m.model and report.parity["passed"] is True and report.format == "deployconv.report/1"
    assert ExportReport.from_dict(report.to_dict()) == report


def test_read_manifest_returns_the_type(tmp_path):
    from deployconv.trust.manifest import read_manifest

    shutil.copyfile(V1 / "onnx" / "manifest.json", tmp_path / "manifest.json")
    assert isinstance(read_manifest(tmp_path), Manifest)


@pytest.mark.parametrize("where", ["manifest", "bundle", "report"])
def test_a_newer_major_schema_is_refused_with_upgrade(tmp_path, where):
    if where == "report":
        data = {**_load("onnx", "report.json"), "format": "deployconv.report/2"}
        with pytest.raises(BadInputError) as e:
            ExportReport.from_dict(data)
    else:
        data = _load("onnx", "manifest.json")
        if where == "manifest":
            data["format"] = "deployconv.export/2"
            data["new_key_of_schema_2"] = 1  # whatever a newer writer adds: the version speaks first
        else:
            data["bundle"] = {"format": "deployconv.bundle/3"}
        (tmp_path / "manifest.json").write_text(json.dumps(data))
        from deployconv.trust.manifest import read_manifest

        with pytest.raises(BadInputError) as e:
            read_manifest(tmp_path)
    major = {"manifest": 2, "bundle": 3, "report": 2}[where]
    assert f"written by a newer deployconv (schema {major})" in e.value.what
    assert "upgrade deployconv" in e.value.fix and e.value.exit_code == EXIT_BAD_INPUT


def test_an_older_major_says_re_export():
    with pytest.raises(BadInputError, match="schema 0") as e:
        Manifest.from_dict(manifest_dict(format="deployconv.export/0"))
    assert "re-export" in e.value.fix


def test_the_cli_refuses_a_newer_manifest_with_exit_2(tmp_path):
    from typer.testing import CliRunner

    from deployconv.cli.app import app

    data = {**_load("onnx", "manifest.json"), "format": "deployconv.export/2"}
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    res = CliRunner().invoke(app, ["validate", str(tmp_path), "--torch-free"])
    assert res.exit_code == EXIT_BAD_INPUT
    assert "newer deployconv (schema 2)" in res.output and "Traceback" not in res.output


def test_parse_format():
    assert parse_format("deployconv.export/12") is not None and parse_format("deployconv.export/12").major == 12
    assert parse_format("deployconv.export/1.5") is None and parse_format(3) is None


@pytest.mark.parametrize(("change", "named"), [
    (lambda d: d.update(surprise=1), "surprise: unknown key"),
    (lambda d: d.pop("opset"), "opset: missing"),
    (lambda d: d.update(opset="17"), "opset: must be an integer"),
    (lambda d: d.update(reproducible=1), "reproducible: must be true or false"),
    (lambda d: d.update(engine={"status": "built"}), "status is 'built' but there is no engine table"),
    (lambda d: d.update(engine={"status": "built", "engine": {"file": "engine.plan", "sha256": SHA, "x": 1}}),
     "engine.engine.x: unknown key"),
    (lambda d: d.update(bundle={"format": "deployconv.bundle/1"}), "bundle.plugin_sources: missing"),
])
def test_from_dict_is_strict_and_names_the_key(change, named):
    data = manifest_dict()
    change(data)
    with pytest.raises(BadInputError) as e:
        Manifest.from_dict(data)
    assert named in e.value.what + " ".join(e.value.details) and e.value.exit_code == EXIT_BAD_INPUT


def test_report_from_dict_is_strict():
    data = {**_load("onnx", "report.json"), "parity": [1]}
    with pytest.raises(BadInputError, match="report schema") as e:
        ExportReport.from_dict(data)
    assert any("parity: must be a table" in d for d in e.value.details)


def test_the_flat_build_engine_entry_of_v1_reads_as_built():
    """build-engine wrote the engine table alone (no status) before both writers shared EngineEntry."""
    flat = {"file": "engine.plan", "sha256": SHA, "tensorrt": "10.3", "plan": {"device": "gpu"}}
    entry = EngineEntry.from_dict(flat)
    assert entry.built and entry.file == "engine.plan" and entry.engine.tensorrt == "10.3"
    assert entry.to_dict()["status"] == "built" and EngineEntry.from_dict(entry.to_dict()) == entry
