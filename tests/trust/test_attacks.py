"""Issue #12's attacks, one test each, through the CLI: every one passed (or crashed) before the closed manifest,
the strict reader and the source rule, and each now fails with a clear message naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from deployconv.cli.app import app
from deployconv.core.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, BadInputError
from deployconv.core.fsio import sha256_file
from deployconv.pipeline.bundle import make_bundle
from deployconv.trust.manifest import verify_hashes
from tests.trust.fixture import minimal_checkout


def cli(*args: str):
    res = CliRunner().invoke(app, list(args))
    assert "Traceback" not in res.output and not (res.exception and not isinstance(res.exception, SystemExit)), \
        res.output
    return res


def copy(src: Path, tmp_path: Path, name: str = "b") -> Path:
    dest = tmp_path / name
    shutil.copytree(src, dest)
    return dest


def edit_manifest(folder: Path, **changes) -> dict:
    man = json.loads((folder / "manifest.json").read_text())
    man.update(changes)
    (folder / "manifest.json").write_text(json.dumps(man, indent=2))
    return man


def files_check(res) -> dict:
    return next(c for c in json.loads(res.stdout)["checks"] if c["name"] == "files")


@pytest.mark.parametrize("extra", ["plugins/trt/injected.cpp", "evil.py", "plugins/trt/.hidden.cpp"])
def test_an_unlisted_file_fails_check(trust_fixture, tmp_path, extra):
    b = copy(trust_fixture.bundle, tmp_path)
    (b / extra).write_text("int injected = 1;\n")
    res = cli("check", str(b), "--json")
    assert res.exit_code == EXIT_CHECK_FAILED, res.output
    assert f"{extra}: not listed in manifest.json" in files_check(res)["found"]
    assert cli("validate", str(b), "--torch-free").exit_code == EXIT_CHECK_FAILED


def test_a_dropped_entry_with_a_replaced_file_fails(trust_fixture, tmp_path):
    b = copy(trust_fixture.bundle, tmp_path)
    man = json.loads((b / "manifest.json").read_text())
    del man["files"]["reference.npz"]
    (b / "manifest.json").write_text(json.dumps(man, indent=2))
    ref = dict(np.load(b / "reference.npz"))
    np.savez(b / "reference.npz", input=ref["input"], expected=ref["expected"] + 1)
    res = cli("check", str(b), "--json")
    assert res.exit_code == EXIT_CHECK_FAILED
    found = files_check(res)["found"]
    assert "reference.npz: not listed" in found and "reference.npz: required" in found


def test_required_files_depend_on_the_target(trust_fixture, tmp_path):
    """A plugin graph needs its ONNX Runtime twin, a bundle its plugin and deployconv sources."""
    from deployconv.trust.closed import required_files

    man = json.loads((trust_fixture.bundle / "manifest.json").read_text())
    need = required_files(man)
    assert {"model.onnx", "reference.npz", "report.json", "plugins/CMakeLists.txt",
            "deployconv_src/pyproject.toml", "deployconv_src/deployconv/__init__.py"} <= set(need)
    plugin = {"name": "X", "version": "1", "namespace": ""}
    assert "ort/model.onnx" in required_files({**man, "plugins": [plugin], "ort_model": "ort/model.onnx"})
    b = copy(trust_fixture.bundle, tmp_path)
    man["files"].pop("plugins/CMakeLists.txt")
    (b / "plugins" / "CMakeLists.txt").unlink()
    (b / "manifest.json").write_text(json.dumps(man))
    assert "plugins/CMakeLists.txt: required" in files_check(cli("check", str(b), "--json"))["found"]


def test_parity_never_runs_on_a_decoy(trust_fixture, tmp_path):
    b = copy(trust_fixture.bundle, tmp_path)
    (b / "ort").mkdir()
    shutil.copyfile(b / "model.onnx", b / "ort" / "decoy.onnx")
    edit_manifest(b, ort_model="ort/decoy.onnx")
    res = cli("check", str(b), "--json")
    assert res.exit_code == EXIT_CHECK_FAILED
    checks = {c["name"]: c for c in json.loads(res.stdout)["checks"]}
    assert "ort/decoy.onnx: named by ort_model but not listed" in checks["files"]["found"]
    assert checks["parity"]["status"] == "skip"


@pytest.mark.parametrize("bad", ["../../x", "/etc/passwd", "a/../../b"])
def test_path_traversal_is_refused_everywhere(trust_fixture, tmp_path, bad):
    exp = copy(trust_fixture.export, tmp_path, "exp")
    edit_manifest(exp, ort_model=bad)
    with pytest.raises(BadInputError, match="ort_model"):
        make_bundle(exp, tmp_path / "out", root=minimal_checkout(tmp_path / "src"))
    assert not (tmp_path / "out").exists()
    assert verify_hashes(exp, {"files": {bad: "0" * 64}}) == [f"{bad!r}: unsafe path ({_why(bad)}); not read"]
    b = copy(trust_fixture.bundle, tmp_path)
    man = json.loads((b / "manifest.json").read_text())
    man["files"][bad] = "0" * 64
    (b / "manifest.json").write_text(json.dumps(man))
    res = cli("check", str(b), "--json")
    assert res.exit_code == EXIT_CHECK_FAILED and "unsafe path" in files_check(res)["found"]


def _why(bad: str) -> str:
    from deployconv.core.artifacts.paths import path_problem

    return path_problem(bad)


def test_a_symlinked_file_fails_even_with_the_right_bytes(trust_fixture, tmp_path):
    b = copy(trust_fixture.bundle, tmp_path)
    real = tmp_path / "elsewhere.json"
    shutil.copyfile(b / "report.json", real)
    (b / "report.json").unlink()
    (b / "report.json").symlink_to(real)
    found = files_check(cli("check", str(b), "--json"))["found"]
    assert "report.json: is a symbolic link" in found


def test_build_engine_verifies_first_and_never_reblesses(trust_fixture, tmp_path):
    exp = copy(trust_fixture.export, tmp_path, "exp")
    before = (exp / "manifest.json").read_bytes()
    with open(exp / "report.json", "a") as f:
        f.write(" ")
    res = cli("build-engine", str(exp), "--target", "trt-fp32")
    assert res.exit_code == EXIT_CHECK_FAILED and "report.json: sha256 differs" in res.output
    assert (exp / "manifest.json").read_bytes() == before and not (exp / "engine.plan").exists()


def test_record_engine_adds_only_the_engine(trust_fixture, tmp_path):
    from deployconv.trust.engine_record import record_engine

    exp = copy(trust_fixture.export, tmp_path, "exp")
    old = json.loads((exp / "manifest.json").read_text())
    (exp / "engine.plan").write_bytes(b"plan")
    with open(exp / "report.json", "a") as f:  # changed after the check: must not be re-hashed
        f.write(" ")
    built = {"file": "engine.plan", "sha256": sha256_file(exp / "engine.plan"), "tensorrt": "10.3"}
    note = record_engine(exp, exp, {"engine": built})
    new = json.loads((exp / "manifest.json").read_text())
    assert new["files"] == {**old["files"], "engine.plan": sha256_file(exp / "engine.plan")}
    # the same entry export writes: a status beside the engine table
    assert new["engine"]["status"] == "built" and new["engine"]["engine"]["file"] == "engine.plan"
    assert "new sha256" in note
    b = copy(trust_fixture.bundle, tmp_path)
    pinned = (b / "manifest.json").read_bytes()
    (b / "engine.plan").write_bytes(b"plan")
    assert "unchanged" in record_engine(b, b, {"engine": built})
    assert (b / "manifest.json").read_bytes() == pinned
    found = files_check(cli("check", str(b), "--json"))
    assert found["status"] == "pass" and "built here, not covered by the manifest: engine.plan" in found["found"]
    assert cli("check", str(b), "--fresh").exit_code == EXIT_CHECK_FAILED


EVIL = '''
from pathlib import Path
Path(__file__).with_name("RAN").write_text("code from the manifest ran")
def build():
    from tests.fixtures.tiny_model import build as b
    return b()
'''


def test_validate_never_runs_code_the_manifest_names(trust_fixture, tmp_path):
    exp = copy(trust_fixture.export, tmp_path, "exp")
    evil = tmp_path / "evil.py"
    evil.write_text(EVIL)
    edit_manifest(exp, model=f"{evil}:build")
    res = cli("validate", str(exp), "--json")
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "RAN").exists()
    assert "not run unless you name it again" in json.loads(res.stdout)["mode"]
    res = cli("validate", str(exp), "--trust-source")  # the recorded sha256 is the exported source's, not evil's
    assert res.exit_code == EXIT_CHECK_FAILED and "is not the source that was exported" in res.output
    assert not (tmp_path / "RAN").exists()


def test_trust_source_runs_only_the_recorded_file(trust_fixture, tmp_path):
    from tests.trust.fixture import MODEL_SOURCE

    man = json.loads((trust_fixture.export / "manifest.json").read_text())
    assert man["model"] == MODEL_SOURCE and man["model_source_sha256"] == sha256_file(Path(MODEL_SOURCE[:-6]))
    res = cli("validate", str(trust_fixture.export), "--trust-source", "--json")
    assert res.exit_code == 0, res.output
    assert "sha256 matches the manifest" in json.loads(res.stdout)["mode"]
    exp = copy(trust_fixture.export, tmp_path, "exp")
    edit_manifest(exp, model_source_sha256="0" * 64)
    res = cli("validate", str(exp), "--trust-source")
    assert res.exit_code == EXIT_CHECK_FAILED and "is not the source that was exported" in res.output
    res = cli("validate", str(exp), "--model", MODEL_SOURCE, "--json")
    assert res.exit_code == 0 and "named with --model" in json.loads(res.stdout)["mode"]


def test_a_manifest_without_target_is_bad_input(trust_fixture, tmp_path):
    b = copy(trust_fixture.bundle, tmp_path)
    man = json.loads((b / "manifest.json").read_text())
    del man["target"]
    man["surprise"] = 1
    man["opset"] = "20"
    (b / "manifest.json").write_text(json.dumps(man))
    for cmd in ("check", "validate"):
        res = cli(cmd, str(b))
        assert res.exit_code == EXIT_BAD_INPUT, res.output
        for words in ("target: missing", "surprise: unknown key", "opset: must be an integer"):
            assert words in res.output


def test_an_old_format_is_refused_with_the_fix(trust_fixture, tmp_path):
    b = copy(trust_fixture.bundle, tmp_path)
    edit_manifest(b, format="deployconv.export/0")
    res = cli("check", str(b))
    assert res.exit_code == EXIT_BAD_INPUT and "re-export" in res.output


def test_object_arrays_in_reference_are_bad_input(trust_fixture, tmp_path):
    from tests.trust.fuzzlib import MARKER, _mutate_npz

    b = copy(trust_fixture.bundle, tmp_path)
    _mutate_npz(b, {"op": "object", "seed": 0, "rehash": True})
    res = cli("validate", str(b), "--torch-free")
    assert res.exit_code == EXIT_BAD_INPUT and "reference.npz" in res.output
    assert not (b / MARKER).exists()
    res = cli("check", str(b))
    assert res.exit_code == EXIT_BAD_INPUT and "reference.npz" in res.output


@pytest.mark.parametrize("op, words", [("shape", "the model takes input"), ("dtype", "not a float type"),
                                       ("samples", "samples"), ("missing", "has no")])
def test_a_wrong_reference_says_what_is_wrong(trust_fixture, tmp_path, op, words):
    from tests.trust.fuzzlib import _mutate_npz

    b = copy(trust_fixture.bundle, tmp_path)
    _mutate_npz(b, {"op": op, "seed": 1, "rehash": True})
    res = cli("validate", str(b), "--torch-free")
    assert res.exit_code == EXIT_BAD_INPUT and words in res.output, res.output


def test_nan_weights_name_the_tensor_and_module(trust_fixture, tmp_path):
    from tests.trust.fixture import MODEL_SOURCE
    from tests.trust.fuzzlib import _make_checkpoint

    ckpt = _make_checkpoint(trust_fixture, tmp_path / "nan.pt", {"op": "nan", "seed": 0})
    res = cli("reparam", "--model", MODEL_SOURCE, "--weights", str(ckpt), "--out", str(tmp_path / "o" / "d.pt"))
    assert res.exit_code == EXIT_CHECK_FAILED, res.output
    assert "bn.running_var (buffer of BatchNorm2d bn): 1 NaN, 0 Inf of 16 values" in res.output
    assert not (tmp_path / "o").exists()


def test_no_traceback_from_a_real_process(trust_fixture, tmp_path):
    """The console script's path (python -m deployconv), not only CliRunner: a manifest without "target"."""
    import os
    import subprocess
    import sys

    b = copy(trust_fixture.bundle, tmp_path)
    man = json.loads((b / "manifest.json").read_text())
    del man["target"]
    (b / "manifest.json").write_text(json.dumps(man))
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    proc = subprocess.run([sys.executable, "-m", "deployconv", "check", str(b)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == EXIT_BAD_INPUT and "Traceback" not in proc.stderr and "target: missing" in proc.stderr


def test_a_bundle_manifest_cannot_pass_as_an_export(trust_fixture, tmp_path):
    """Dropping the "bundle" entry would drop the plugin and deployconv sources from the required files."""
    b = copy(trust_fixture.bundle, tmp_path)
    man = json.loads((b / "manifest.json").read_text())
    del man["bundle"]
    (b / "manifest.json").write_text(json.dumps(man))
    res = cli("check", str(b), "--json")
    assert res.exit_code == EXIT_CHECK_FAILED
    assert "plugins/CMakeLists.txt: bundle content, but the manifest has no bundle entry" in files_check(res)["found"]
