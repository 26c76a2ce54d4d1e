"""One chain budget rule (deployconv.core.target.chain_budget), asked by `export` and `validate` alike.

The drift it ends: export held a bf16 target's fp32 stages (PyTorch and the ONNX, which stays fp32 for bf16) to
the target's loose budget (1e-1), validate to FP32_BUDGET (1e-4). The fp32 budget is right: nothing in those
stages computes in bf16, so a loose budget there only hides reparameterization and export errors."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from deployconv.core.target import FP32_BUDGET, builtin_targets, chain_budget, get_target, onnx_precision
from deployconv.pipeline import model as model_step
from deployconv.pipeline.export import ExportOptions, export
from deployconv.validate.export_dir import recheck_dir

FIXTURE = f"{Path(__file__).parents[1] / 'fixtures' / 'tiny_model.py'}:build"
FAST = ExportOptions(bench=False)


def test_the_rule_on_every_builtin_target():
    for t in builtin_targets().values():
        assert chain_budget(t) == (t.budget if t.precision == "fp32" else FP32_BUDGET), t.name
        assert chain_budget(t, t.precision) == t.budget, t.name
        assert chain_budget(t, onnx_precision(t.precision)) == (FP32_BUDGET if t.precision == "bf16" else
                                                                chain_budget(t, t.precision)), t.name
    bf16 = get_target("trt-bf16")
    assert chain_budget(bf16) == FP32_BUDGET != bf16.budget


def test_a_bf16_export_holds_its_fp32_stages_to_the_fp32_budget(tmp_path, monkeypatch):
    """A deploy form 0.5% off (a reparameterization bug) breaks the chain at deploy-fp32 on a bf16 target; the
    old rule passed it under bf16's 1e-1."""
    real = model_step.reparameterize

    def drifting(train, **kw):
        deploy = real(train, **kw)
        with torch.no_grad():
            next(deploy.parameters()).mul_(1.005)
        return deploy

    monkeypatch.setattr(model_step, "reparameterize", drifting)
    res = export(FIXTURE, "trt-bf16", tmp_path / "o", options=FAST)
    par = res.report["parity"]
    assert not res.passed and par["broke_at"] == "deploy-fp32", par["stages"]
    assert par["budget"] == asdict(FP32_BUDGET)


@pytest.mark.skipif(__import__("importlib").util.find_spec("tensorrt") is not None,
                    reason="TensorRT is installed here: the engine would be built and validated too")
def test_export_and_validate_hold_a_bf16_chain_to_the_same_budgets(tmp_path):
    res = export(FIXTURE, "trt-bf16", tmp_path / "o", options=FAST)
    assert res.passed
    checked = recheck_dir(tmp_path / "o", model=FIXTURE)  # the whole chain again, from the named source
    assert checked["parity"]["passed"]
    assert checked["parity"]["budget"] == res.report["parity"]["budget"] == asdict(FP32_BUDGET)
    onnx_stage = next(s for s in checked["parity"]["stages"] if s["stage"] == "onnx (ort-cpu)")
    assert onnx_stage["budget"] == asdict(FP32_BUDGET)  # bf16's ONNX is fp32
