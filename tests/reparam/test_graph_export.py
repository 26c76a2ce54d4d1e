"""Issue #15's done-when: the hand-written RepVGG-style net (no method) exports through the CLI with one conv
per block and no BatchNormalization, its parity chain passes, and its report lists every fused site."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from deployconv.cli.app import app

FIXTURE = Path(__file__).parents[1] / "fixtures" / "repvgg_style.py"


@pytest.mark.slow
def test_repvgg_style_user_net_exports_fused(tmp_path):
    out = tmp_path / "bundle"
    res = CliRunner().invoke(app, ["export", "--model", f"{FIXTURE}:build", "--target", "onnx", "--no-bench",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    ops = Counter(n.op_type for n in onnx.load(out / "model.onnx").graph.node)
    assert ops["Conv"] == 4 and ops["BatchNormalization"] == 0  # 4 blocks, one conv each
    report = json.loads((out / "report.json").read_text())
    assert report["parity"]["passed"]
    sites = [r for r in report["reparam"]["rewrites"] if r["rewrite"] == "graph:parallel"]
    assert [s["path"] for s in sites] == ["body.0", "body.1", "body.2", "body.3"]
    assert [s["module_type"] for s in sites[:2]] == ["conv3x3s2 + conv1x1s2", "conv3x3 + conv1x1 + bn(x)"]
    assert all(s["max_rel_diff"] is not None and s["max_rel_diff"] < 1e-5 for s in sites)
    assert report["reparam"]["remaining_batchnorm"] == [] and report["reparam"]["near_misses"] == []
