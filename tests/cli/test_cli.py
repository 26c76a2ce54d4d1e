"""The CLI: exit codes (0 ok, 1 check failed, 2 bad input, 3 missing env), no tracebacks, --json, --force."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from deployconv import __version__
from deployconv.cli.app import app

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_model.py"
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_version_and_module_entry_point():
    assert run("--version").stdout.strip() == f"deployconv {__version__}"
    proc = subprocess.run([sys.executable, "-m", "deployconv", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_doctor_json():
    res = run("doctor", "--json")
    assert res.exit_code == 0
    comps = {c["name"]: c for c in json.loads(res.stdout)}
    assert comps["torch"]["found"] and comps["torch"]["version"].startswith(torch.__version__.split("+")[0])
    assert "tensorrt" in comps and "gpu" in comps and "nvcc" in comps


def test_reparam_user_model_json_and_overwrite(tmp_path):
    out = tmp_path / "tiny.pt"
    args = ["reparam", "--model", f"{FIXTURE}:build", "--input-shape", "2,3,64,64", "--out", str(out)]
    res = run(*args, "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    rep = data["report"]
    assert rep["passed"] and rep["remaining_batchnorm"] == []
    assert {r["rewrite"] for r in rep["rewrites"]} == {"fold_conv_bn(fx)"}
    assert out.is_file()
    # refused without --force, accepted with it
    res = run(*args)
    assert res.exit_code == 2 and "already exists" in res.output and "Traceback" not in res.output
    assert run(*args, "--force").exit_code == 0
    # the saved deploy form loads back (weights_only) and matches
    from deployconv.models import create_model
    from deployconv.reparam.artifact import load_deploy

    deploy = load_deploy(out)
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(deploy(x), create_model(f"{FIXTURE}:build")(x), rtol=1e-5, atol=1e-5)


def test_unknown_model_suggests_close_matches():
    res = run("reparam", "--model", "repvgg_a00")
    assert res.exit_code == 2
    assert "unknown model 'repvgg_a00'" in res.output and "repvgg_a0" in res.output
    assert "Traceback" not in res.output


def test_missing_weights_file_plain_message(tmp_path):
    res = run("reparam", "--model", f"{FIXTURE}:build", "--weights", str(tmp_path / "none.pth"),
              "--out", str(tmp_path / "o.pt"))
    assert res.exit_code == 2 and "checkpoint file not found" in res.output
    assert "Traceback" not in res.output


def test_bad_checkpoint_gets_key_report(tmp_path):
    ck = tmp_path / "bad.pth"
    torch.save({"model": {"fc.weight": torch.zeros(10, 16)}}, ck)
    res = run("reparam", "--model", f"{FIXTURE}:build", "--weights", str(ck), "--out", str(tmp_path / "o.pt"))
    assert res.exit_code == 2
    assert "missing keys" in res.output and "stem.0.weight" in res.output


def test_bad_probe_shape_is_bad_input(tmp_path):
    res = run("reparam", "--model", f"{FIXTURE}:build", "--input-shape", "1,5,32,32", "--out", str(tmp_path / "o.pt"))
    assert res.exit_code == 2 and "--input-shape" in res.output
    res = run("reparam", "--model", f"{FIXTURE}:build", "--input-shape", "abc", "--out", str(tmp_path / "o.pt"))
    assert res.exit_code == 2 and "bad --input-shape" in res.output


@pytest.mark.parametrize("cmd", [["--help"], ["models", "--help"], ["reparam", "--help"], ["doctor", "--help"]])
def test_help(cmd):
    assert run(*cmd).exit_code == 0


def test_failed_check_exits_1_without_traceback(monkeypatch, tmp_path):
    import deployconv.layers.modules as mods

    real = mods.fuse_conv_bn_modules

    def wrong(conv, bn):
        f = real(conv, bn)
        f.bias.data += 1.0
        return f

    monkeypatch.setattr("deployconv.reparam.walker.fuse_conv_bn_modules", wrong)
    res = run("reparam", "--model", f"{FIXTURE}:build", "--input-shape", "1,3,32,32", "--out", str(tmp_path / "o.pt"))
    assert res.exit_code == 1 and "not equivalent" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o.pt").exists()
