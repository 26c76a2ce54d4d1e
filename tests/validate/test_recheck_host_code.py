"""`validate` on a version-compatible engine.plan: refused (exit 2) unless the user passes --allow-host-code, and
then loaded with engine_host_code_allowed set. Driven by a fake `tensorrt` whose engine is an identity
(tests/fake_tensorrt.py): this tests the wiring from the command to the runner, not TensorRT."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from deployconv.core.artifacts import Manifest
from deployconv.core.errors import BadInputError
from deployconv.core.target import FP32_BUDGET
from deployconv.runtime.plugin_loading import forget_loaded
from deployconv.validate.export_dir import reference_parity
from tests.artifact_samples import manifest_dict
from tests.fake_tensorrt import install


@pytest.fixture
def fake(monkeypatch):
    trt = install(monkeypatch)
    yield trt
    forget_loaded(trt)


def _bundle(tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    np.savez(tmp_path / "reference.npz", input=x, expected=x)  # the fake engine is y = x
    (tmp_path / "engine.plan").write_bytes(b"fake plan bytes")
    engine = {"status": "built", "engine": {"file": "engine.plan", "sha256": "0" * 64,
                                            "plan": {"device": "gpu", "runtime_needs_host_code": True}}}
    data = manifest_dict(engine=engine)
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    return Manifest.from_dict(data)


TARGET = SimpleNamespace(runtime="tensorrt", dynamic_batch=True, max_batch=8, precision="fp32", budget=FP32_BUDGET)


def test_reference_parity_needs_allow_host_code(fake, tmp_path):
    manifest = _bundle(tmp_path)
    with pytest.raises(BadInputError, match="version-compatible plan"):
        reference_parity(tmp_path, manifest, TARGET, runtime="trt")
    result = reference_parity(tmp_path, manifest, TARGET, runtime="trt", allow_host_code=True)
    assert result["runtimes"] == ["engine (tensorrt)"] and result["parity"]["passed"]
    assert ("runtime.engine_host_code_allowed", True) in fake.calls


def test_validate_cli_passes_allow_host_code(monkeypatch, tmp_path):
    from deployconv.cli.app import app

    seen = {}

    def recheck_dir(directory, **kwargs):
        seen.update(kwargs)
        raise BadInputError("stop here")

    monkeypatch.setattr("deployconv.cli.validate.recheck_dir", recheck_dir)
    res = CliRunner().invoke(app, ["validate", str(tmp_path), "--allow-host-code"])
    assert res.exit_code == 2 and seen["allow_host_code"] is True
