"""Targets are data: runtime, precision, lowering per custom op, shape policy, parity budget.

Adding a target means adding an entry here (or, later, a TOML file), never a branch in the pipeline.
Torch-free.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field

from deployconv.errors import BadInputError


@dataclass(frozen=True)
class Budget:
    """Parity tolerance between consecutive stages (and against the fp64 reference)."""

    max_abs_rel_scale: float  # max |a-b| / max |ref|
    min_cosine: float
    min_top1_agreement: float | None = None  # None: reported, not gated


@dataclass(frozen=True)
class Target:
    name: str
    runtime: str  # "onnxruntime" | "tensorrt"
    precision: str  # "fp32" | "fp16" | "int8" | "bf16"
    lowering: str  # default lowering for every custom op: "standard" | "plugin"
    lowering_overrides: dict[str, str] = field(default_factory=dict)
    opset: int = 20  # 20: native Gelu (UniRepLKNet), DeformConv needs >= 19
    dynamic_batch: bool = True
    benchmark_runtime: str | None = "ort-cpu"
    budget: Budget = Budget(1e-4, 0.99999)
    description: str = ""

    def lowering_for(self, op: str) -> str:
        return self.lowering_overrides.get(op, self.lowering)

    def to_dict(self) -> dict:
        return asdict(self)


FP32_BUDGET = Budget(max_abs_rel_scale=1e-4, min_cosine=0.99999)

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("onnx", "onnxruntime", "fp32", "standard", budget=FP32_BUDGET,
               description="portable fp32 ONNX, ONNX-domain ops only (default)"),
        Target("ort-cpu", "onnxruntime", "fp32", "standard", budget=FP32_BUDGET,
               description="the same graph, validated and benchmarked on ONNX Runtime CPU"),
    )
}


def get_target(name: str) -> Target:
    if name in TARGETS:
        return TARGETS[name]
    close = difflib.get_close_matches(name, list(TARGETS), n=3, cutoff=0.4)
    raise BadInputError(f"unknown target {name!r}",
                        fix=(f"did you mean {', '.join(close)}? " if close else "")
                        + f"available: {', '.join(TARGETS)}")
