"""How far an output is from its reference: the parity chain's metrics. Numpy only, fp64 internally.

Definitions (`ref` is the reference, `out` the output under test, d = |out - ref| elementwise):
- max_abs, mean_abs: max and mean of d.
- p99_abs: the 99th percentile of d (numpy's default 'linear' interpolation, Hyndman-Fan type 7).
- ref_scale = max |ref|; max_abs_rel_scale = max_abs / ref_scale (0 when both are 0, inf when only the
  scale is 0). Scale-free: multiplying ref and out by the same factor leaves it unchanged.
- cosine: the cosine similarity of the flattened arrays; cosine_min: flatten each sample (axis 0 is the
  batch when ndim >= 2; a 0-d/1-d array is one sample) and take the smallest over the batch. Two all-zero
  vectors have cosine 1, one all-zero vector against a non-zero one has cosine 0.
- Classification outputs, i.e. shape (N, classes) with classes >= 2 (or forced with classification=True):
  - top1_agreement: fraction of samples whose argmax agrees.
  - top5_agreement: fraction of samples whose reference top-1 class is among `out`'s top-5, i.e. top-5
    accuracy of `out` when the reference's prediction is taken as the label.
  - top5_overlap: mean over samples of |top5(ref) ∩ top5(out)| / 5 (1.0 = same five classes, any order).
  - k is min(5, classes). Ties rank the lower class index first (stable sort), so identical arrays agree.
- NaN/Inf: counted in each array (nonfinite_ref, nonfinite_out); `nonfinite` is True when either count is
  non-zero and callers treat it as a failure. The other metrics are then computed over the positions where
  both arrays are finite, so they still show how far the rest is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from deployconv.core.errors import CheckFailedError

TOPK = 5


@dataclass(frozen=True)
class CompareResult:
    shape: tuple[int, ...]
    numel: int
    max_abs: float
    p99_abs: float
    mean_abs: float
    ref_scale: float
    max_abs_rel_scale: float
    cosine: float
    cosine_min: float
    nonfinite_ref: int
    nonfinite_out: int
    nonfinite: bool
    top1_agreement: float | None = None
    top5_agreement: float | None = None
    top5_overlap: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of a against the same row of b (2-D fp64 inputs). Each row is first divided by its
    own max |x| (cosine is scale-free), so squares cannot overflow or underflow; the three dot products use
    one summation, so identical rows give exactly 1."""
    def unit(x: np.ndarray) -> np.ndarray:
        m = np.abs(x).max(axis=1, keepdims=True) if x.shape[1] else np.zeros((x.shape[0], 1))
        return x / np.where(m > 0, m, 1.0)

    a, b = unit(a), unit(b)
    saa, sbb, sab = (np.einsum("ij,ij->i", x, y) for x, y in ((a, a), (b, b), (a, b)))
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = sab / np.sqrt(saa * sbb)
    cos = np.where((saa == 0) & (sbb == 0), 1.0, np.where((saa == 0) | (sbb == 0), 0.0, cos))
    return np.clip(cos, -1.0, 1.0)


def _topk(x: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-x, axis=1, kind="stable")[:, :k]


def compare(ref: Any, out: Any, *, classification: bool | None = None) -> CompareResult:
    """Compare `out` with its reference `ref` (same shape). See the module docstring for each metric."""
    r = np.asarray(ref, dtype=np.float64)
    o = np.asarray(out, dtype=np.float64)
    if r.shape != o.shape:
        raise CheckFailedError(f"output shapes differ: reference {tuple(r.shape)}, output {tuple(o.shape)}")
    fin_r, fin_o = np.isfinite(r), np.isfinite(o)
    nonfinite_ref = int(r.size - np.count_nonzero(fin_r))
    nonfinite_out = int(o.size - np.count_nonzero(fin_o))
    both = fin_r & fin_o
    rz, oz = np.where(both, r, 0.0), np.where(both, o, 0.0)  # metrics over positions finite in both

    d = np.abs(oz - rz)[both]
    max_abs = float(d.max()) if d.size else 0.0
    mean_abs = float(d.mean()) if d.size else 0.0
    p99_abs = float(np.percentile(d, 99)) if d.size else 0.0
    ref_scale = float(np.abs(rz).max()) if rz.size else 0.0
    rel = max_abs / ref_scale if ref_scale > 0 else (0.0 if max_abs == 0 else float("inf"))

    cosine = float(_cosine_rows(rz.reshape(1, -1), oz.reshape(1, -1))[0])
    batch = 1 if r.ndim <= 1 else r.shape[0]
    cosine_min = float(_cosine_rows(rz.reshape(batch, -1), oz.reshape(batch, -1)).min()) if r.size else 1.0

    top1 = top5 = overlap = None
    is_cls = (r.ndim == 2 and r.shape[1] >= 2) if classification is None else classification
    if is_cls and r.size:
        if r.ndim != 2:
            raise CheckFailedError(f"classification metrics need (N, classes) outputs, got {tuple(r.shape)}")
        k = min(TOPK, r.shape[1])
        tr, to = _topk(r, k), _topk(o, k)
        top1 = float(np.mean(tr[:, 0] == to[:, 0]))
        top5 = float(np.mean((to == tr[:, :1]).any(axis=1)))
        overlap = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(tr.tolist(), to.tolist())]))

    return CompareResult(
        shape=tuple(int(s) for s in r.shape), numel=int(r.size), max_abs=max_abs, p99_abs=p99_abs,
        mean_abs=mean_abs, ref_scale=ref_scale, max_abs_rel_scale=rel, cosine=cosine, cosine_min=cosine_min,
        nonfinite_ref=nonfinite_ref, nonfinite_out=nonfinite_out, nonfinite=bool(nonfinite_ref or nonfinite_out),
        top1_agreement=top1, top5_agreement=top5, top5_overlap=overlap)


def compare_outputs(ref: Mapping[str, Any], out: Mapping[str, Any], *,
                    classification: bool | None = None) -> dict[str, CompareResult]:
    """`compare` for every named output; the two must have the same output names."""
    if set(ref) != set(out):
        raise CheckFailedError("output names differ",
                               details=[f"reference: {sorted(ref)}", f"output: {sorted(out)}"])
    return {name: compare(ref[name], out[name], classification=classification) for name in ref}
