"""The ledger's gate (exit 1 only for a significant drop beyond --max-drop) and its report section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from deployconv.accuracy.ledger import Tally, build_rows
from deployconv.cli.app import app

runner = CliRunner()


def _ledger(ref: np.ndarray, stage: np.ndarray) -> dict:
    """A two-stage ledger from per-image correctness (logits with the right class on top when correct)."""
    labels = np.zeros(ref.size, np.int64)
    tallies = {"train": Tally(), "int8": Tally()}
    for name, ok in (("train", ref), ("int8", stage)):
        logits = np.zeros((ref.size, 10), np.float32)
        logits[np.arange(ref.size), np.where(ok, 0, 1)] = 1.0
        tallies[name].add(logits, labels)
    rows = build_rows(tallies, {"train": "t", "int8": "q"}, {}, "train")
    from dataclasses import asdict

    return {"accuracy": {"stages": [asdict(r) for r in rows], "alpha": 0.05}}


@pytest.mark.parametrize(("lost", "gained", "max_drop", "code"), [
    (40, 10, 2.0, 1),   # -3 pts, p ~ 1e-5: a real loss beyond 2 pts
    (40, 10, 5.0, 0),   # the same loss within 5 pts
    (6, 1, 0.4, 0),     # -0.5 pts beyond 0.4, but p = 0.125 (7 discordant images): noise, passes
])
def test_accuracy_gate(tmp_path: Path, lost: int, gained: int, max_drop: float, code: int) -> None:
    n = 1000
    ref = np.zeros(n, bool)
    ref[:700] = True
    stage = ref.copy()
    stage[:lost] = False
    stage[900:900 + gained] = True
    path = tmp_path / "report.json"
    path.write_text(json.dumps(_ledger(ref, stage)))
    res = runner.invoke(app, ["gate", "--accuracy", str(path), "--max-drop", str(max_drop), "--json"])
    assert res.exit_code == code, res.output
    verdict = json.loads(res.stdout[res.stdout.index("{"):res.stdout.rindex("}") + 1])
    assert verdict["stages"][0]["drop_pts"] == pytest.approx(100 * (lost - gained) / n)


def test_gate_without_runs_or_ledger_is_bad_input() -> None:
    res = runner.invoke(app, ["gate"])
    assert res.exit_code == 2 and "--accuracy" in res.output


def test_report_section_has_table_and_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from deployconv.report.accuracy_section import accuracy_section

    ref = np.arange(200) % 4 != 0
    led = _ledger(ref, ref & (np.arange(200) % 7 != 0))["accuracy"]
    led.update(data={"root": "d", "classes": 10, "labels": {"source": "folder names (sorted)"}}, images=200,
               skipped_images=0, interval="wilson", confidence=0.95, images_per_s=1.0, skipped=[], notes=[])
    html = accuracy_section(led)
    assert "<table" in html and "data:image/svg+xml;base64," in html and "McNemar" in html
