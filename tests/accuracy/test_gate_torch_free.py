"""`deployconv gate --accuracy` is part of the torch-free device path: it reads a saved ledger with numpy only."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_torch_free import blocked_env, run_blocked  # noqa: F401  (the fixture is used by name)


def test_accuracy_gate_runs_without_torch(blocked_env, tmp_path: Path) -> None:  # noqa: F811
    row = {"name": "int8", "vs_fp32": {"against": "train", "top1_delta_pts": -3.0, "p_value": 1e-6,
                                       "significant": True}}
    (tmp_path / "report.json").write_text(json.dumps({"accuracy": {"stages": [row], "alpha": 0.05}}))
    proc = run_blocked(blocked_env, "-m", "deployconv", "gate", "--accuracy", "report.json", "--max-drop", "1",
                       cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "| int8 | train | +3.00 |" in proc.stdout
