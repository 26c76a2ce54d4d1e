"""The reparameterization report: data first (dataclasses, JSON via asdict), rendering elsewhere."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class RewriteRecord:
    """One rewrite: where it ran, what it was, params before/after, and its own fp64 equivalence figure."""

    path: str
    rewrite: str
    module_type: str
    params_before: int
    params_after: int
    max_abs_diff: float | None = None  # fp64, this rewrite alone, on the probe's activations at this module
    max_rel_diff: float | None = None
    replaced: list[str] = field(default_factory=list)  # graph pass: the modules the fused conv replaces


@dataclass
class NearMiss:
    """A structure the graph pass left alone, and why (a non-linearity between, shared weights, a stride
    mismatch, padding after a biased op, a BatchNorm without running statistics, an untraceable module)."""

    path: str
    pattern: str  # "parallel" | "chain" | "trace"
    reason: str


@dataclass
class ReparamReport:
    model: str
    probe_shape: list[int]
    params_before: int
    params_after: int
    rewrites: list[RewriteRecord] = field(default_factory=list)
    # Whole model, train-form vs deploy-form on the same probe.
    fp64_max_abs_diff: float = float("nan")
    fp64_max_rel_diff: float = float("nan")
    fp32_max_abs_diff: float = float("nan")
    fp32_max_rel_diff: float = float("nan")
    tolerance_fp64_rel: float = 1e-5
    passed: bool = False
    remaining_batchnorm: list[str] = field(default_factory=list)
    near_misses: list[NearMiss] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rewrites:
            out[r.rewrite] = out.get(r.rewrite, 0) + 1
        return out
