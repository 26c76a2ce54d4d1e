"""The parity chain: every stage compared with the one before it and with the fp64 reference, against a
tolerance budget; the first stage that breaks the budget is named, with by how much. Torch-free: stages are
plain callables `batch (np.ndarray) -> output (np.ndarray)` built by whoever has the runtimes; several inputs
and outputs are dicts {name: array}, compared per output with the worst named.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from deployconv.core.errors import CheckFailedError
from deployconv.core.target import Budget
from deployconv.validate.metrics import compare

Stage = tuple[str, Callable[[np.ndarray], np.ndarray]]


@dataclass
class StageResult:
    stage: str
    compared_with: str | None
    vs_previous: dict | None
    vs_reference: dict | None
    passed: bool
    failures: list[str] = field(default_factory=list)
    budget: dict | None = None  # this stage's budget when it differs from the chain's (precision stages)


@dataclass
class ParityReport:
    budget: dict
    inputs: dict
    stages: list[StageResult]
    passed: bool
    broke_at: str | None = None
    first_divergence: dict | None = None
    points: dict | None = None  # dynamic sizes: the chain at min, opt and max ({point: shapes, passed, stages})
    broke_at_point: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def budget_failures(metrics: dict, budget: Budget) -> list[str]:
    """Why `metrics` (a CompareResult as dict) breaks `budget`; empty when within it. Named outputs are
    checked one by one, each failure prefixed with its output's name."""
    if metrics.get("per_output"):
        return [f"output {name!r}: {f}" for name, m in metrics["per_output"].items() for f in budget_failures(m, budget)]
    out = []
    if metrics.get("nonfinite"):
        out.append(f"NaN/Inf in outputs (reference {metrics.get('nonfinite_ref', '?')}, "
                   f"this stage {metrics.get('nonfinite_out', '?')})")
    if metrics["max_abs_rel_scale"] > budget.max_abs_rel_scale:
        out.append(f"max abs / scale {metrics['max_abs_rel_scale']:.3e} > {budget.max_abs_rel_scale:.1e}")
    if metrics["cosine"] < budget.min_cosine:
        out.append(f"cosine {metrics['cosine']:.7f} < {budget.min_cosine}")
    top1 = metrics.get("top1_agreement")
    if budget.min_top1_agreement is not None and top1 is not None and top1 < budget.min_top1_agreement:
        out.append(f"top-1 agreement {top1:.3f} < {budget.min_top1_agreement}")
    return out


def _cat(outputs: Sequence) -> np.ndarray | dict[str, np.ndarray]:
    """Concatenate a stage's per-batch outputs along the batch axis (per named output for dict outputs)."""
    if outputs and isinstance(outputs[0], dict):
        return {k: np.concatenate([np.asarray(o[k], dtype=np.float64) for o in outputs], axis=0) for k in outputs[0]}
    return np.concatenate([np.asarray(o, dtype=np.float64) for o in outputs], axis=0)


def compare_named(ref: np.ndarray | dict, out: np.ndarray | dict) -> dict:
    """compare() as a dict; for named outputs, per output, with the worst one's metrics on top (`output` names
    it, `per_output` holds all) so every reader of a single-output report reads the worst output."""
    if not isinstance(ref, dict):
        return asdict(compare(ref, out))
    if not isinstance(out, dict) or set(ref) != set(out):
        raise CheckFailedError(f"output names differ between stages: {sorted(ref)} vs "
                               f"{sorted(out) if isinstance(out, dict) else 'one unnamed output'}",
                               fix="re-export: every runner must return the names recorded in the manifest")
    per = {k: asdict(compare(ref[k], out[k])) for k in ref}
    worst = max(per, key=lambda k: (bool(per[k].get("nonfinite")), per[k]["max_abs_rel_scale"], -per[k]["cosine"]))
    return {**per[worst], "output": worst, "per_output": per}


def _nonfinite(x: np.ndarray | dict) -> int:
    arrays = x.values() if isinstance(x, dict) else [x]
    return sum(int((~np.isfinite(a)).sum()) for a in arrays)


def run_chain(stages: Sequence[Stage], batches: Sequence[np.ndarray], budget: Budget, inputs: dict,
              progress: Callable[[str], None] | None = None, *,
              stage_budgets: dict[str, Budget] | None = None) -> tuple[ParityReport, dict[str, np.ndarray]]:
    """Run every stage on every batch; the first stage is the reference. Returns the report and the
    outputs per stage (for attribution or saving reference outputs). `stage_budgets` overrides the budget for
    named stages: an fp16 or int8 stage is held to its precision's budget, the fp32 stages before it to fp32's."""
    stage_budgets = stage_budgets or {}
    outputs: dict[str, np.ndarray] = {}
    results: list[StageResult] = []
    prev: str | None = None
    ref_name = stages[0][0]
    for name, fn in stages:
        if progress:
            progress(name)
        outputs[name] = _cat([fn(b) for b in batches])
        if prev is None:
            nonfinite = _nonfinite(outputs[name])
            fails = [f"NaN/Inf in reference outputs ({nonfinite})"] if nonfinite else []
            results.append(StageResult(name, None, None, None, not fails, fails))
        else:
            vs_prev = compare_named(outputs[prev], outputs[name])
            vs_ref = compare_named(outputs[ref_name], outputs[name])
            own = stage_budgets.get(name)
            fails = budget_failures(vs_prev, own or budget)
            results.append(StageResult(name, prev, vs_prev, vs_ref, not fails, fails, asdict(own) if own else None))
        prev = name
    broke = next((r for r in results if not r.passed), None)
    report = ParityReport(asdict(budget), inputs, results, broke is None, broke.stage if broke else None)
    return report, outputs


def merge_points(reports: dict[str, ParityReport], shapes_at: Callable[[str], dict]) -> ParityReport:
    """One report for the chain run at several shape points: passed when every point passed; the stages shown
    are the first failing point's (else opt's); every point's stages are kept under `points`."""
    order = [p for p in ("min", "opt", "max") if p in reports] + [p for p in reports if p not in ("min", "opt", "max")]
    failing = next((p for p in order if not reports[p].passed), None)
    main = reports[failing or ("opt" if "opt" in reports else order[0])]
    points = {p: {"shapes": {k: list(v) for k, v in shapes_at(p).items()}, "passed": reports[p].passed,
                  "broke_at": reports[p].broke_at, "stages": [asdict(s) for s in reports[p].stages]} for p in order}
    return ParityReport(main.budget, main.inputs, main.stages, failing is None, main.broke_at if failing else None,
                        points=points, broke_at_point=failing)
