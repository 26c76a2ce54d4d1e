"""`deployconv debug precision`: the smallest set of layers to keep out of int8 such that the task metric on a
labelled split stays within --max-drop points of fp32, at the lowest measured latency.

No TensorRT precision API is involved (TensorRT 11 removed the per-layer ones): a candidate is the Q/DQ graph
with the chosen layers' Q/DQ left out (ONNX Runtime's quantizer with those nodes excluded, reusing one set of
calibrated ranges), which TensorRT 10 and 11 build alike (strongly typed: the graph's types decide).

Candidates (any subset, not a prefix or suffix of the graph):
- the existing per-layer sensitivity: each layer alone in int8 (every other float), its error 1 - cosine vs
  fp32 on the first images; layers ranked by it;
- prefixes of that ranking (the k most sensitive kept float), each ranked layer alone, and a greedy forward
  selection by the task metric itself (add the ranked layer that recovers the most top-1, until within
  --max-drop).
Each candidate is scored by top-1 on the split (with a Wilson interval and McNemar vs fp32) and by latency on
the runtime here (ONNX Runtime CPU, median of timed batches); the Pareto front over (drop, latency, layers
kept) is reported, and the chosen set is the feasible one with the fewest layers kept, then the lowest
latency.
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

from deployconv.accuracy.stats import mcnemar, wilson_interval
from deployconv.export.precision.int8 import quantize_int8
from deployconv.export.precision.int8_graph import GraphIndex, name_nodes, restore_float_inputs
from deployconv.export.precision.sensitivity import _describe
from deployconv.runtime.ort import ort_session
from deployconv.validate.metrics import compare


@dataclass
class Candidate:
    keep: list[str]
    how: str
    top1: float
    top1_low: float
    top1_high: float
    drop_pts: float  # fp32 top-1 minus this, in points (positive = worse)
    p_value: float  # exact McNemar vs fp32
    significant: bool
    latency_ms: float  # median per batch on the runtime here
    layers_kept: int
    feasible: bool = False
    pareto: bool = False


@dataclass
class RankedLayer:
    node: str
    op_type: str
    weight: str | None
    role: str | None
    error_alone: float  # 1 - cosine vs fp32 with only this layer int8


@dataclass
class PrecisionSearch:
    precision: str
    max_drop: float
    images: int
    fp32_top1: float
    int8_layers: int
    ranking: list[RankedLayer]
    candidates: list[Candidate]
    chosen: Candidate | None
    latency_conditions: str
    calibration: dict[str, Any]
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pareto_front(cands: Sequence[Candidate]) -> list[bool]:
    """Whether each candidate is on the front of (drop, latency, layers kept), all minimised."""
    keys = [(c.drop_pts, c.latency_ms, c.layers_kept) for c in cands]
    return [not any(all(o <= m for o, m in zip(other, mine)) and other != mine for other in keys)
            for mine in keys]


def choose(cands: Sequence[Candidate]) -> Candidate | None:
    feasible = [c for c in cands if c.feasible]
    return min(feasible, key=lambda c: (c.layers_kept, c.latency_ms, c.drop_pts)) if feasible else None


def _latency(runner: Any, x: np.ndarray, reps: int) -> float:
    name = runner.get_inputs()[0].name
    for _ in range(2):
        runner.run(None, {name: x})
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        runner.run(None, {name: x})
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def _session(proto: onnx.ModelProto, threads: int | None) -> Any:
    return ort_session(proto.SerializeToString(), threads=threads)


def _logits(sess: Any, x: np.ndarray, batch: int) -> np.ndarray:
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)])


def search(fp32: onnx.ModelProto, calib: Any, x: np.ndarray, y: np.ndarray, *, max_drop: float,
           prefixes: int = 6, singles: int = 4, greedy_pool: int = 6, batch: int = 32,
           latency_reps: int = 10, threads: int | None = None, rank_samples: int = 64,
           progress: Callable[[str], None] | None = None) -> PrecisionSearch:
    """Search keep-sets for the int8 graph of `fp32` (calibrated on `calib`) on images `x` with labels `y`."""

    t0 = time.perf_counter()
    step = progress or (lambda _s: None)
    named = name_nodes(fp32)
    idx = GraphIndex.of(named)
    ref_logits = _logits(_session(named, threads), x, batch)
    ref_ok = ref_logits.argmax(1) == y
    n = len(y)
    lat_x = x[:batch]
    results: dict[tuple[str, ...], Candidate] = {}
    with tempfile.TemporaryDirectory(prefix="deployconv-debug-precision-") as tmp:
        cache = Path(tmp) / "ranges.json"

        def quantize(keep: Sequence[str]) -> tuple[onnx.ModelProto, Any]:
            return quantize_int8(named, calib, exclude_nodes=list(keep), ranges_cache=cache)

        def score(keep: Sequence[str], how: str) -> Candidate:
            key = tuple(sorted(keep))
            if key in results:
                return results[key]
            step(f"candidate {len(results) + 1}: {len(key)} layer(s) kept float ({how})")
            q, _ = quantize(key)
            sess = _session(q, threads)
            ok = _logits(sess, x, batch).argmax(1) == y
            m = mcnemar(ref_ok, ok)
            lo, hi = wilson_interval(int(ok.sum()), n)
            drop = 100.0 * (int(ref_ok.sum()) - int(ok.sum())) / n
            c = Candidate(list(key), how, 100.0 * ok.mean(), 100 * lo, 100 * hi, drop, m.p_value,
                          m.significant(0.05), _latency(sess, lat_x, latency_reps), len(key),
                          feasible=drop <= max_drop)
            results[key] = c
            return c

        step("calibrate and quantize every layer")
        q0, rep0 = quantize([])
        layers = [*rep0.quantized_nodes, *[a for a in rep0.residual_adds if a not in rep0.quantized_nodes]]
        ranking = []
        xr = x[:rank_samples]
        ref_r = ref_logits[:rank_samples]
        for i, name in enumerate(layers):
            step(f"sensitivity {i + 1}/{len(layers)} ({name})")
            alone = restore_float_inputs(q0, named, [c for c in layers if c != name])
            cos = compare(ref_r, _logits(_session(alone, threads), xr, batch)).cosine
            op_type, weight, role = _describe(name, idx)
            ranking.append(RankedLayer(name, op_type, weight, role, float(1.0 - cos)))
        ranking.sort(key=lambda r: -r.error_alone)
        ranked = [r.node for r in ranking]
        weighted = set(rep0.quantized_nodes)

        def allowed(keep: Sequence[str]) -> bool:  # at least one weighted layer stays int8
            return not weighted <= set(keep)

        for k in range(min(prefixes, len(ranked)) + 1):
            if allowed(ranked[:k]):
                score(ranked[:k], f"ranked prefix {k}")
        for name in ranked[:singles]:
            if allowed([name]):
                score([name], "single ranked layer")
        keep: list[str] = []
        pool = ranked[:greedy_pool]
        while not score(keep, "greedy by top-1").feasible and len(keep) < len(pool):
            options = [[*keep, c] for c in pool if c not in keep and allowed([*keep, c])]
            if not options:
                break
            best = min((score(o, "greedy by top-1") for o in options), key=lambda c: (c.drop_pts, c.latency_ms))
            keep = best.keep
    cands = sorted(results.values(), key=lambda c: (c.layers_kept, c.drop_pts))
    for c, front in zip(cands, pareto_front(cands)):
        c.pareto = front
    notes = [] if choose(cands) else [f"no candidate stays within {max_drop} points of fp32: keep more layers "
                                      "(raise --prefixes) or deploy fp16"]
    return PrecisionSearch("int8", max_drop, n, 100.0 * ref_ok.mean(), len(rep0.quantized_nodes), ranking, cands,
                           choose(cands), f"ONNX Runtime CPU, batch {len(lat_x)}, median of {latency_reps} runs "
                           f"after 2 warm-up, {threads or 'default'} threads", calib.describe(),
                           round(time.perf_counter() - t0, 2), notes)


def to_markdown(res: dict[str, Any]) -> str:
    lines = [f"### debug precision: {res['precision']} keep-set search (max drop {res['max_drop']} pts)", "",
             f"fp32 top-1 {res['fp32_top1']:.2f}% on {res['images']} images; {res['int8_layers']} int8 layers; "
             f"latency: {res['latency_conditions']}.", "",
             "| layers kept float | how | top-1 % [95% CI] | drop vs fp32 (pts) | McNemar p | latency ms | "
             "within max drop | Pareto |", "|---|---|---|---|---|---|---|---|"]
    for c in res["candidates"]:
        kept = ", ".join(c["keep"]) or "(none)"
        lines.append(f"| {kept} | {c['how']} | {c['top1']:.2f} [{c['top1_low']:.2f}, {c['top1_high']:.2f}] | "
                     f"{c['drop_pts']:+.2f} | {c['p_value']:.3g} | {c['latency_ms']:.3f} | "
                     f"{'yes' if c['feasible'] else 'no'} | {'yes' if c['pareto'] else ''} |")
    ch = res["chosen"]
    lines.append("")
    lines.append(f"**chosen**: keep {', '.join(ch['keep']) or 'nothing'} float ({ch['drop_pts']:+.2f} pts, "
                 f"{ch['latency_ms']:.3f} ms)" if ch else "**chosen**: none feasible")
    lines += [f"- note: {n}" for n in res.get("notes", [])]
    return "\n".join(lines) + "\n"
