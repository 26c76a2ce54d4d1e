"""The parity chain: every stage compared with the one before it and with the fp64 reference, against a
tolerance budget; the first stage that breaks the budget is named, with by how much. Torch-free: stages are
plain callables `batch (np.ndarray) -> output (np.ndarray)` built by whoever has the runtimes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from deployconv.export.targets import Budget
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

    def to_dict(self) -> dict:
        return asdict(self)


def budget_failures(metrics: dict, budget: Budget) -> list[str]:
    """Why `metrics` (a CompareResult as dict) breaks `budget`; empty when within it."""
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


def _cat(outputs: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(o, dtype=np.float64) for o in outputs], axis=0)


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
            nonfinite = int((~np.isfinite(outputs[name])).sum())
            fails = [f"NaN/Inf in reference outputs ({nonfinite})"] if nonfinite else []
            results.append(StageResult(name, None, None, None, not fails, fails))
        else:
            vs_prev = asdict(compare(outputs[prev], outputs[name]))
            vs_ref = asdict(compare(outputs[ref_name], outputs[name]))
            own = stage_budgets.get(name)
            fails = budget_failures(vs_prev, own or budget)
            results.append(StageResult(name, prev, vs_prev, vs_ref, not fails, fails, asdict(own) if own else None))
        prev = name
    broke = next((r for r in results if not r.passed), None)
    report = ParityReport(asdict(budget), inputs, results, broke is None, broke.stage if broke else None)
    return report, outputs
