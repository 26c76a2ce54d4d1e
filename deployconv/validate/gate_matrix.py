"""Gate a whole matrix: every cell of the current `deployconv matrix` run against the same cell of a baseline
run. Pure and torch-free; reads the two matrix.json files (schema deployconv.matrix/1) and each cell's
bench.json next to them, and decides each cell with the single-run latency gate (deployconv.validate.gate).

Per cell (model, target, device):
- regression: the latency gate says regression, or the cell passed in the baseline and does not now
  (a parity or check failure is a regression too);
- pass / noisy / incomparable: the latency gate's verdict;
- not comparable: the cell is in one run only, or one side has no bench result (the reason is named).
Exit 1 when any cell regressed; otherwise 0, with the cells that could not be compared or decided listed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deployconv.core.errors import BadInputError
from deployconv.validate.gate import GateResult, gate
from deployconv.validate.gate_baseline import load_run

MATRIX_SCHEMA = "deployconv.matrix/1"
SCHEMA = "deployconv.gate.matrix/1"


@dataclass
class CellGate:
    model: str
    target: str
    device: str
    verdict: str  # pass | regression | noisy | incomparable | not-comparable
    reason: str
    baseline_status: str | None = None
    current_status: str | None = None
    gate: dict[str, Any] | None = None  # the latency GateResult, where one ran


@dataclass
class MatrixGateResult:
    cells: list[CellGate]
    metric: str
    max_regression: float
    baseline_file: str
    current_file: str
    schema: str = SCHEMA
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def regressed(self) -> list[CellGate]:
        return [c for c in self.cells if c.verdict == "regression"]

    @property
    def exit_code(self) -> int:
        return 1 if self.regressed else 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exit_code": self.exit_code}


def load_matrix(path: Path, role: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{role} matrix {path}: no such file", fix="give a matrix.json written by `deployconv matrix`")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInputError(f"{role} matrix {path} is not readable JSON", why=str(e)) from None
    if not isinstance(doc, dict) or doc.get("schema") != MATRIX_SCHEMA or not isinstance(doc.get("cells"), list):
        raise BadInputError(f"{role} {path} is not a deployconv matrix result",
                            fix=f"give a matrix.json written by `deployconv matrix` (schema {MATRIX_SCHEMA})")
    return doc


def _key(c: dict[str, Any]) -> tuple[str, str, str]:
    return c["model"], c["target"], c["device"]


def _bench_file(root: Path, cell: dict[str, Any]) -> Path | None:
    lat = cell.get("latency") or {}
    if not lat.get("file") or (cell.get("steps", {}).get("bench", {}).get("status") != "passed"):
        return None
    return root / lat["file"]


def gate_cell(base: dict[str, Any] | None, cur: dict[str, Any] | None, base_root: Path, cur_root: Path,
              **gate_kwargs: Any) -> CellGate:
    ref = base or cur
    assert ref is not None
    head = {"model": ref["model"], "target": ref["target"], "device": ref["device"],
            "baseline_status": base and base["status"], "current_status": cur and cur["status"]}
    if base is None or cur is None:
        return CellGate(**head, verdict="not-comparable",
                        reason=f"only in the {'current' if base is None else 'baseline'} run")
    if base["status"] == "passed" and cur["status"] != "passed":
        step = (cur.get("error") or {}).get("step", "?")
        return CellGate(**head, verdict="regression",
                        reason=f"passed in the baseline, {cur['status']} now (at {step})")
    fb, fc = _bench_file(base_root, base), _bench_file(cur_root, cur)
    if fb is None or fc is None:
        side = "baseline" if fb is None else "current"
        status = (base if fb is None else cur).get("steps", {}).get("bench", {}).get("status", "not run")
        return CellGate(**head, verdict="not-comparable", reason=f"no bench result in the {side} run (bench {status})")
    r: GateResult = gate(load_run(fb, "baseline"), load_run(fc, "current"), baseline_file=str(fb),
                         current_file=str(fc), **gate_kwargs)
    return CellGate(**head, verdict=r.verdict, reason=r.reason, gate=r.to_dict())


def gate_matrix(baseline: Path, current: Path, *, metric: str = "median", max_regression: float = 0.05,
                **gate_kwargs: Any) -> MatrixGateResult:
    """Gate every cell of `current` (a matrix.json) against `baseline` (see the module docstring)."""
    bdoc, cdoc = load_matrix(baseline, "baseline"), load_matrix(current, "current")
    bcells = {_key(c): c for c in bdoc["cells"]}
    ccells = {_key(c): c for c in cdoc["cells"]}
    keys = list(bcells) + [k for k in ccells if k not in bcells]
    cells = [gate_cell(bcells.get(k), ccells.get(k), Path(baseline).parent, Path(current).parent, metric=metric,
                       max_regression=max_regression, **gate_kwargs) for k in keys]
    counts: dict[str, int] = {}
    for c in cells:
        counts[c.verdict] = counts.get(c.verdict, 0) + 1
    return MatrixGateResult(cells, metric, max_regression, str(baseline), str(current), counts=counts)


def to_markdown(r: MatrixGateResult) -> str:
    head = "REGRESSION" if r.regressed else "PASS"
    lines = [f"### deployconv matrix gate: {head}", "",
             f"{len(r.cells)} cells, metric {r.metric}, limit +{r.max_regression * 100:.1f}%: "
             + ", ".join(f"{n} {v}" for v, n in sorted(r.counts.items())), "",
             "| model | target | device | verdict | change (95% CI) | reason |", "|---|---|---|---|---:|---|"]
    for c in r.cells:
        change = "-"
        if c.gate and c.gate.get("ratio") is not None:
            g = c.gate
            change = (f"{(g['ratio'] - 1) * 100:+.1f}% ({(g['ci_low'] - 1) * 100:+.1f}% to "
                      f"{(g['ci_high'] - 1) * 100:+.1f}%)")
        verdict = f"**{c.verdict}**" if c.verdict == "regression" else c.verdict
        lines.append(f"| {c.model} | {c.target} | {c.device} | {verdict} | {change} | {c.reason} |")
    undecided = [c for c in r.cells if c.verdict in ("not-comparable", "incomparable", "noisy")]
    if undecided:
        lines += ["", f"{len(undecided)} cell(s) could not be compared or decided; they do not fail the gate."]
    return "\n".join(lines) + "\n"
