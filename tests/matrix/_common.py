"""What the end-to-end matrix tests share: a tiny user model (seconds to export on 2 cores) and short benches."""

from __future__ import annotations

from pathlib import Path

from deployconv.matrix.spec import HOST, MatrixSpec
from deployconv.matrix.steps import StepOptions

REPO = Path(__file__).resolve().parents[2]
TINY = f"{REPO / 'tests' / 'fixtures' / 'tiny_model.py'}:build"
FAST = StepOptions(bench_warmup_s=0.1, bench_duration_s=0.3, bench_repeat=2)


def tiny_spec(steps=("export", "validate", "bench", "check"), devices=(HOST,), targets=("onnx",)) -> MatrixSpec:
    return MatrixSpec(models=(TINY,), targets=targets, devices=devices, steps=steps, user_models=(TINY,))


def layout(out: Path) -> set[str]:
    """Every file a run left under cells/, relative to OUT, temporary names excluded."""
    return {str(p.relative_to(out)) for p in (out / "cells").rglob("*") if p.is_file() and not p.name.startswith(".")}
