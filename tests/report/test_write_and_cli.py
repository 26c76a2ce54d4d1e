"""`deployconv report DIR`: bad input is a BadInputError with what/why/fix (exit 2, no traceback), the page is
written atomically and never over an existing file without --force."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from deployconv.cli.app import app
from deployconv.cli.report import report_cmd
from deployconv.core.errors import BadInputError
from deployconv.report import load_export_dir, write_report
from tests.report.conftest import edit_json

# cli.py registers the command (one line); until it does, register it here so these tests run the command.
if not any(c.name == "report" for c in app.registered_commands):
    app.command("report")(report_cmd)

runner = CliRunner()


def assert_bad(exc: pytest.ExceptionInfo, *words: str) -> None:
    e = exc.value
    assert e.what and e.fix, e.render()
    for w in words:
        assert w in e.render(), e.render()


def test_not_a_directory(tmp_path):
    with pytest.raises(BadInputError) as exc:
        load_export_dir(tmp_path / "nope")
    assert_bad(exc, "is not a directory", "does not exist")


def test_directory_without_manifest(tmp_path):
    with pytest.raises(BadInputError) as exc:
        load_export_dir(tmp_path)
    assert_bad(exc, "not a deployconv export directory", "no manifest.json")


def test_manifest_of_another_tool(export_dir):
    edit_json(export_dir / "manifest.json", lambda m: m.update(format="something/2"))
    with pytest.raises(BadInputError) as exc:
        load_export_dir(export_dir)
    assert_bad(exc, "format 'something/2'")


def test_missing_report(export_dir):
    (export_dir / "report.json").unlink()
    with pytest.raises(BadInputError) as exc:
        load_export_dir(export_dir)
    assert_bad(exc, "no report.json")


def test_truncated_report(export_dir):
    p = export_dir / "report.json"
    p.write_text(p.read_text()[:500])
    with pytest.raises(BadInputError) as exc:
        load_export_dir(export_dir)
    assert_bad(exc, "report.json is corrupt", "not valid JSON")


@pytest.mark.parametrize("change, words", [
    (lambda r: r.pop("parity"), ("lacks parity",)),
    (lambda r: r["parity"].pop("budget"), ("lacks parity.budget",)),
    (lambda r: r["parity"].update(stages=[1, 2]), ("not a list of stages",)),
    (lambda r: r["latency"]["runs"]["onnxruntime cpu"].pop("stats"), ("is not a latency result",)),
])
def test_report_missing_what_the_page_needs(export_dir, change, words):
    edit_json(export_dir / "report.json", change)
    with pytest.raises(BadInputError) as exc:
        load_export_dir(export_dir)
    assert_bad(exc, *words)


def test_corrupt_gate_and_foreign_bench_file(export_dir):
    (export_dir / "gate.json").write_text("{not json")
    with pytest.raises(BadInputError) as exc:
        load_export_dir(export_dir)
    assert_bad(exc, "gate.json is corrupt")
    (export_dir / "gate.json").unlink()
    (export_dir / "bench-old.json").write_text(json.dumps({"schema": "other/1"}))
    with pytest.raises(BadInputError) as exc:
        load_export_dir(export_dir)
    assert_bad(exc, "not a deployconv benchmark result", "other/1")


def test_edited_report_is_flagged(export_dir):
    edit_json(export_dir / "report.json", lambda r: r.update(model="renamed"))
    d = load_export_dir(export_dir)
    assert d.report_matches_manifest is False
    assert load_export_dir(export_dir).report_sha256 != json.loads(
        (export_dir / "manifest.json").read_text())["files"]["report.json"]


def test_write_default_place_refuse_then_force(export_dir):
    written = write_report(export_dir)
    out = export_dir / "report.html"
    assert written.path == out and out.read_text().startswith("<!DOCTYPE html>")
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    before = out.read_bytes()
    with pytest.raises(BadInputError, match="already exists"):
        write_report(export_dir)
    out.write_text("old")
    write_report(export_dir, force=True)
    assert out.read_bytes() == before
    assert not [p.name for p in export_dir.iterdir() if p.name.startswith(".")], "temporary file left behind"


def test_failed_render_leaves_nothing(export_dir, tmp_path):
    (export_dir / "report.json").write_text("[]")
    out = tmp_path / "r.html"
    with pytest.raises(BadInputError):
        write_report(export_dir, out)
    assert not out.exists() and list(tmp_path.glob(".r.html*")) == []


def test_out_is_a_directory(export_dir, tmp_path):
    with pytest.raises(BadInputError, match="is a directory"):
        write_report(export_dir, tmp_path, force=True)


def test_cli_writes_and_refuses(export_dir, tmp_path):
    out = tmp_path / "page.html"
    res = runner.invoke(app, ["report", str(export_dir), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.is_file() and "wrote" in res.stderr
    res = runner.invoke(app, ["report", str(export_dir), "--out", str(out)])
    assert res.exit_code == 2 and "already exists" in res.stderr and "--force" in res.stderr
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["report", str(export_dir), "-o", str(out), "--force"])
    assert res.exit_code == 0, res.output


def test_cli_bad_input_exit_2(tmp_path):
    res = runner.invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2
    assert "not a deployconv export directory" in res.stderr and "fix:" in res.stderr
    assert "Traceback" not in res.output


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m
