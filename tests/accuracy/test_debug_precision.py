"""`deployconv debug precision` on the digits model with a planted int8-sensitive layer: the search finds it,
keeps it out of int8 through Q/DQ edits only, writes the Pareto table and a target whose keep-list export
reads."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from deployconv.accuracy.precision_search import Candidate, choose, pareto_front
from deployconv.cli.app import app
from tests.accuracy.digits import Digits, plant_outlier

runner = CliRunner()


def _cand(drop: float, ms: float, kept: int, feasible: bool) -> Candidate:
    return Candidate([f"n{i}" for i in range(kept)], "t", 90 - drop, 0, 100, drop, 0.5, False, ms, kept, feasible)


def test_pareto_front_and_choice() -> None:
    cands = [_cand(5.0, 1.0, 0, False), _cand(0.5, 1.2, 1, True), _cand(0.4, 1.5, 2, True),
             _cand(0.6, 1.3, 2, True), _cand(0.1, 2.0, 3, True)]
    assert pareto_front(cands) == [True, True, True, False, True]
    assert choose(cands) is cands[1]  # the fewest layers kept among those within the drop
    assert choose([_cand(5.0, 1.0, 0, False)]) is None


def test_planted_sensitive_layer_is_found(digits: Digits, tmp_path: Path) -> None:
    planted = plant_outlier(digits.weights, tmp_path / "planted.pt")
    out = tmp_path / "dbg"
    res = runner.invoke(app, ["debug", "precision", digits.source, "--weights", str(planted), "--data",
                              str(digits.eval_dir), "--calib", str(digits.train_dir), "--max-drop", "1.5",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    result = json.loads((out / "pareto.json").read_text())
    top = result["ranking"][0]
    assert top["weight"].startswith("stage2."), result["ranking"]  # the planted layer ranks first
    everything = next(c for c in result["candidates"] if not c["keep"])
    assert everything["drop_pts"] > 10 and everything["significant"]  # all-int8 is badly broken
    chosen = result["chosen"]
    assert top["node"] in chosen["keep"] and chosen["drop_pts"] <= 1.5
    assert all(c["layers_kept"] >= chosen["layers_kept"] for c in result["candidates"] if c["feasible"])
    assert any(c["pareto"] for c in result["candidates"])
    assert "| layers kept float |" in (out / "pareto.md").read_text()

    from deployconv.core.target import get_target

    tgt = get_target(str(out / "onnx-int8-keep.toml"))
    assert tgt.precision == "int8" and tuple(tgt.quant.keep_float) == tuple(chosen["keep"])
