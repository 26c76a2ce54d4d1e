"""Keep the int8 layers that hurt most in float until an accuracy budget holds.

Method (affordable on a 2-core CPU): quantize everything once, with the calibrated tensor ranges cached in
a file; then, for each quantized layer, measure the graph in which only that layer is int8 and every other
one float (a graph edit of the quantized model — no recalibration, no requantization) on a few evaluation
samples. A layer's error is 1 - cosine vs fp32 of that graph: the error it adds on its own. Layers are kept
in float in order of error: the smallest prefix that meets the budget on the full evaluation set, found by
doubling and bisection, each candidate graph requantized from the cached ranges with those exclusions (a
few ONNX Runtime quantizer runs, no recalibration), so the graph returned is the one measured. (The edited
graphs serve for ranking only: on the ort-cpu profile ORT folds a Relu into the Q before it, and such a Q
stays in an edited graph.) If the budget fails even for the fp32 graph itself, it cannot be met:
CheckFailedError; if it holds only with every quantizable layer float, there is no int8 left:
CheckFailedError.

Why one-at-a-time rather than un-quantizing one layer of the fully quantized graph: errors do not add up.
On lsnet_t (seeded weights) the residual Adds' skip Q/DQ share the residual stream; un-quantizing any one
of them barely moves the error while the others still round the stream, so that ranking needed ~100 of 150
layers in float, while each one measured alone shows its real weight.

Each measured layer carries a structural role where one applies (first/last layer, attention MatMul,
normalised weight path such as LSNet's LKP -> GroupNorm -> SKA, DCN offsets), the usual suspects, so a
report reads as more than node names. Accuracy vs fp32: `deployconv.validate.metrics.compare` (cosine, max
abs relative to output scale, top-1/top-5 agreement) on the evaluation data (user images when given).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from deployconv.core.errors import CheckFailedError
from deployconv.core.target import Budget
from deployconv.export.precision.calibration import CalibrationData, synthetic_calibration
from deployconv.export.precision.int8 import CALIB_BATCH, Int8Report, quantize_int8, resolve_exclusions
from deployconv.export.precision.int8_graph import (
    WEIGHTED,
    GraphIndex,
    name_nodes,
    restore_float_inputs,
    weight_input,
)
from deployconv.runtime.ort import ort_session
from deployconv.validate.metrics import compare
from deployconv.validate.parity import budget_failures

# Proposed from measurement (benchmarks/results/int8_cpu.json): int8 PTQ of the zoo's models lands at
# cosine >= 0.99 vs fp32 and max |diff| within a few tenths of the output scale; top-1 agreement is gated
# only when the evaluation data are real images (on random inputs the logits of a classifier are near ties).
INT8_BUDGET = Budget(max_abs_rel_scale=0.25, min_cosine=0.99, min_top1_agreement=None)
EVAL_SAMPLES = 16
RANK_SAMPLES = 8

_FOLLOW = frozenset({"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Slice", "Split", "Sigmoid",
                     "Concat", "Identity"})

Runner = Callable[[onnx.ModelProto, np.ndarray], np.ndarray]


@dataclass
class LayerEffect:
    node: str
    op_type: str
    weight: str | None
    role: str | None
    cosine_alone: float  # cosine vs fp32 with only this layer in int8 (ranking samples)
    error_alone: float  # 1 - cosine_alone: the error this layer adds on its own


@dataclass
class SensitivityReport:
    budget: dict[str, Any]
    evaluation: dict[str, Any]
    all_quantized: dict[str, Any]
    passed_without_exclusions: bool
    chosen: list[dict[str, Any]]
    final: dict[str, Any]
    ranked: list[LayerEffect] = field(default_factory=list)
    graphs_evaluated: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ort_runner(threads: int | None = None, batch: int = 8) -> Runner:
    """Run a graph on ONNX Runtime CPU, `batch` samples at a time; fp64 outputs (first output)."""

    def run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
        sess = ort_session(proto.SerializeToString(), threads=threads)
        name = sess.get_inputs()[0].name
        outs = [sess.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)]
        return np.concatenate(outs).astype(np.float64)

    return run


def layer_role(node: onnx.NodeProto, idx: GraphIndex) -> str | None:
    """A structural label for the usual int8 suspects, or None."""
    if node.input and node.input[0] not in idx.producer and not idx.is_constant(node.input[0]):
        return "first layer (reads the graph input)"
    if node.op_type == "MatMul" and weight_input(node, idx) is None:
        return "attention (MatMul of two activations)"
    frontier = list(node.output)
    for _ in range(6):  # follow the output through data movement and bias Adds only
        nxt = []
        for t in frontier:
            if t in idx.graph_outputs:
                return "last layer (produces the graph output)"
            for reader, i in idx.readers(t):
                if reader.op_type == "DeformConv" and i >= 2:
                    return "DCN offsets/mask"
                if reader.op_type in ("InstanceNormalization", "GroupNormalization"):
                    return "normalised weight path (e.g. LSNet LKP -> GroupNorm -> SKA)"
                if reader.op_type in _FOLLOW or (reader.op_type == "Add" and any(
                        idx.is_constant(n) for n in reader.input)):
                    nxt += list(reader.output)
        frontier = nxt
    return None


def _describe(name: str, idx: GraphIndex) -> tuple[str, str | None, str | None]:
    node = idx.nodes[name]
    w = weight_input(node, idx) if node.op_type in WEIGHTED else None
    role = layer_role(node, idx) if node.op_type in WEIGHTED else ("residual Add" if node.op_type == "Add" else None)
    return node.op_type, (node.input[w] if w is not None else None), role


def _eval_data(calib: CalibrationData, eval_data: np.ndarray | CalibrationData | None,
               samples: int) -> tuple[np.ndarray, dict[str, Any]]:
    if isinstance(eval_data, CalibrationData):
        return eval_data.array[:samples], {"source": eval_data.source, "samples": min(samples, len(eval_data))}
    if eval_data is not None:
        arr = np.asarray(eval_data, dtype=np.float32)[:samples]
        return arr, {"source": "given", "samples": len(arr)}
    if calib.synthetic:  # fresh samples: not the ones the ranges were calibrated on
        seed = (calib.seed or 0) + 1
        fresh = synthetic_calibration(tuple(calib.array.shape[1:]), samples, seed)
        return fresh.array, {"source": "synthetic", "samples": samples, "seed": seed,
                             "note": "not representative of real images"}
    return calib.array[:samples], {"source": "calibration images", "samples": min(samples, len(calib)),
                                   "note": "the calibration images themselves (pass separate images to "
                                           "measure on unseen data)"}


def quantize_within_budget(
        fp32_proto: onnx.ModelProto, calib: CalibrationData, budget: Budget = INT8_BUDGET, *,
        eval_data: np.ndarray | CalibrationData | None = None, method: str = "minmax",
        activation: str = "int8-symmetric", per_channel: bool = True, exclude_nodes: Sequence[str] = (),
        eval_samples: int = EVAL_SAMPLES, rank_samples: int = RANK_SAMPLES, runner: Runner | None = None,
        batch_size: int = CALIB_BATCH, progress: Callable[[str], None] | None = None,
        ranges_cache: Path | None = None,
) -> tuple[onnx.ModelProto, Int8Report, SensitivityReport]:
    """Quantize `fp32_proto` to int8 and keep the most sensitive layers float until `budget` holds vs the
    fp32 graph. Raises CheckFailedError when it cannot hold even with every quantizable layer in float.
    `ranges_cache`: where the calibrated ranges are kept (a new JSON file; default a temporary one), for a
    caller that quantizes a second graph of the same model with them."""
    t0 = time.perf_counter()
    step = progress or (lambda _s: None)
    run = runner or ort_runner()
    named = name_nodes(fp32_proto)
    idx = GraphIndex.of(named)
    user_excl = resolve_exclusions(named, exclude_nodes)
    x, eval_desc = _eval_data(calib, eval_data, eval_samples)
    xr = x[:rank_samples]
    evaluated = 0

    def measure(proto: onnx.ModelProto, data: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
        nonlocal evaluated
        evaluated += 1
        return compare(ref, run(proto, data)).to_dict()

    step("int8: fp32 reference")
    ref = run(named, x)
    ref_r = ref[:len(xr)]
    with tempfile.TemporaryDirectory(prefix="deployconv-int8-ranges-") as tmp:
        cache = ranges_cache or Path(tmp) / "ranges.json"

        def quantize(exclude: Sequence[str]) -> tuple[onnx.ModelProto, Int8Report]:
            return quantize_int8(named, calib, method=method, activation=activation, exclude_nodes=exclude,
                                 per_channel=per_channel, ranges_cache=cache, batch_size=batch_size)

        step("int8: calibrate and quantize everything")
        q0, rep0 = quantize(user_excl)
        m0 = measure(q0, x, ref)
        base = dict(budget=asdict(budget), evaluation=eval_desc, all_quantized=m0)
        if not budget_failures(m0, budget):
            return q0, rep0, SensitivityReport(**base, passed_without_exclusions=True, chosen=[], final=m0,
                                               graphs_evaluated=evaluated,
                                               seconds=round(time.perf_counter() - t0, 2))

        candidates = [*rep0.quantized_nodes, *[a for a in rep0.residual_adds if a not in rep0.quantized_nodes]]
        effects: list[LayerEffect] = []
        for i, name in enumerate(candidates):
            step(f"int8: sensitivity {i + 1}/{len(candidates)} ({name})")
            others = [c for c in candidates if c != name]
            cos = measure(restore_float_inputs(q0, named, others), xr, ref_r)["cosine"]
            op_type, weight, role = _describe(name, idx)
            effects.append(LayerEffect(name, op_type, weight, role, cos, 1.0 - cos))
        effects.sort(key=lambda e: -e.error_alone)
        ranked = [e.node for e in effects]

        weighted = set(rep0.quantized_nodes)

        def attempt(k: int) -> tuple[bool, onnx.ModelProto, Int8Report, dict[str, Any]] | None:
            """Requantize (cached ranges) with the k most sensitive layers float and measure; None when
            that leaves no weighted op in int8."""
            exclude = [*user_excl, *ranked[:k]]
            if weighted <= set(exclude):
                return None
            step(f"int8: {k} layer(s) in float")
            q, rep = quantize(exclude)
            m = measure(q, x, ref)
            return not budget_failures(m, budget), q, rep, m

        lo, hi, best, k = 0, None, None, 1  # doubling, then bisection: the smallest passing k
        last_fail: dict[str, Any] = m0
        while hi is None:
            k = min(k, len(ranked))
            got = attempt(k)
            if got is None:
                break
            if got[0]:
                hi, best = k, got
            else:
                lo, k, last_fail = k, k * 2, got[3]
                if lo >= len(ranked):
                    break
        if hi is None or best is None:
            fp32_fails = budget_failures(measure(named, x, ref), budget)
            if fp32_fails:
                raise CheckFailedError(
                    "int8 cannot meet the accuracy budget even with every quantizable layer in float",
                    details=fp32_fails, why=f"budget {asdict(budget)} vs fp32 on {eval_desc}",
                    fix="loosen the int8 budget, or deploy fp16/fp32 for this model")
            raise CheckFailedError(
                "int8 meets the accuracy budget only with every quantizable layer in float",
                details=[f"with the {lo} most sensitive of {len(ranked)} layers float: "
                         + "; ".join(budget_failures(last_fail, budget))],
                why=f"nothing would run in int8; budget {asdict(budget)} vs fp32 on {eval_desc}",
                fix="loosen the int8 budget, calibrate on real images (--calib), or deploy fp16/fp32")
        while hi - lo > 1:
            mid = (lo + hi) // 2
            got = attempt(mid)
            if got is not None and got[0]:
                hi, best = mid, got
            else:
                lo = mid
        _, q, rep, final = best
        by_name = {e.node: e for e in effects}
        chosen = [{**asdict(by_name[name]), "reason": "kept float: among the largest int8 errors measured alone"}
                  for name in ranked[:hi]]
        return q, rep, SensitivityReport(**base, passed_without_exclusions=False, chosen=chosen, final=final,
                                         ranked=effects, graphs_evaluated=evaluated,
                                         seconds=round(time.perf_counter() - t0, 2))
