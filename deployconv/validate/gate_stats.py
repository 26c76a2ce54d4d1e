"""The latency gate's statistics, pure numpy (no scipy, no torch): resampling units and a block bootstrap of
the ratio current/baseline of a latency percentile.

Why blocks and not single samples: consecutive latency samples are not independent. A neighbour's job, a
clock change or a cache-hungry process slows a stretch of samples together, so resampling single samples
treats one slow stretch as hundreds of independent observations and gives intervals several times too
narrow (5 times for the drifting run in tests/validate/test_gate.py). Resampling contiguous chunks keeps
each stretch together. What the chunks of one run cannot show, the difference between two runs minutes or
days apart, is the gate's `run_noise` term (deployconv.validate.gate).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# median: what people read. p10, the fast end: the least moved by a busy runner, whose slow samples are
# other jobs' time slices (between-run noise 0.5% against 1.4% for the median on a shared 2-core runner), so
# the sharpest for a change in compute, blind to a change that only adds stalls. p99: the tail.
METRIC_PERCENTILES = {"median": 50.0, "p10": 10.0, "p99": 99.0}
MIN_UNITS = 10  # resampling units per run: fewer and the bootstrap distribution is too coarse to have tails
PERCENTILE_METHOD = "linear"  # the same as deployconv.runtime.timing.summarize


def metric_value(samples: np.ndarray, metric: str) -> float:
    return float(np.percentile(samples, METRIC_PERCENTILES[metric], method=PERCENTILE_METHOD))


def resampling_units(samples: Sequence[float] | np.ndarray, block_sizes: Sequence[int] = (),
                     min_units: int = MIN_UNITS) -> list[np.ndarray]:
    """A run cut into contiguous chunks that never cross a block boundary: each of the K recorded blocks
    (one block when none are recorded) is cut into ceil(min_units / K) near-equal chunks, or into single
    samples when it has fewer. K >= min_units keeps the blocks themselves as the units."""
    x = np.asarray(samples, dtype=np.float64).ravel()
    sizes = list(block_sizes) or [x.size]
    if sum(sizes) != x.size:
        raise ValueError(f"block sizes add up to {sum(sizes)}, not the {x.size} samples")
    per_block = math.ceil(min_units / len(sizes))
    units: list[np.ndarray] = []
    start = 0
    for n in sizes:
        block = x[start:start + n]
        start += n
        units.extend(np.array_split(block, min(per_block, n)))
    return [u for u in units if u.size]


def _replicates(units: list[np.ndarray], metric: str, picks: np.ndarray) -> np.ndarray:
    """The metric of each run rebuilt from the units in a row of `picks` (unit indices, drawn with
    replacement): exactly np.percentile(np.concatenate([units[j] for j in row]), q, method='linear'), for all
    rows at once. A row's resample holds counts[j] copies of unit j, so the number of its samples <= v is
    counts @ at_most[:, v] (a matrix product), and its order statistics follow from that."""
    q = METRIC_PERCENTILES[metric]
    k = len(units)
    xs = np.sort(np.concatenate(units))
    at_most = np.stack([np.searchsorted(np.sort(u), xs, side="right") for u in units]).astype(np.float64)
    out = np.empty(picks.shape[0])
    batch = max(1, 2_000_000 // xs.size)  # rows per step: bounds the (rows x samples) matrix
    for start in range(0, picks.shape[0], batch):
        rows = picks[start:start + batch]
        r = rows.shape[0]
        counts = np.bincount((rows + k * np.arange(r)[:, None]).ravel(), minlength=r * k).reshape(r, k)
        cum = counts.astype(np.float64) @ at_most  # (r, samples): resampled samples <= each pooled value
        h = (cum[:, -1] - 1) * (q / 100.0)  # numpy 'linear': position (n - 1) q of the sorted resample
        lo = np.floor(h)
        below = (cum <= lo[:, None]).sum(axis=1)  # first pooled value whose count passes position lo
        above = np.minimum((cum <= lo[:, None] + 1).sum(axis=1), xs.size - 1)
        out[start:start + r] = xs[below] + (h - lo) * (xs[above] - xs[below])
    return out


def bootstrap_log_ratio(baseline_units: list[np.ndarray], current_units: list[np.ndarray], metric: str, *,
                        resamples: int, seed: int, run_noise: float) -> np.ndarray:
    """Bootstrap distribution of log(metric(current) / metric(baseline)).

    Each replicate resamples the units of each run independently, then adds a draw of N(0, 2 run_noise^2):
    the between-run noise of two runs that the samples of one run cannot show (see deployconv.validate.gate).
    Seeded: the same inputs and seed give the same distribution."""
    rng = np.random.default_rng(seed)
    base_picks = rng.integers(0, len(baseline_units), size=(resamples, len(baseline_units)))
    cur_picks = rng.integers(0, len(current_units), size=(resamples, len(current_units)))
    base = _replicates(baseline_units, metric, base_picks)
    cur = _replicates(current_units, metric, cur_picks)
    if np.any(base <= 0) or np.any(cur <= 0):
        raise ValueError("latency metric of a resampled run is not positive")
    log_ratio = np.log(cur) - np.log(base)
    if run_noise > 0:
        log_ratio = log_ratio + rng.normal(0.0, math.sqrt(2.0) * run_noise, size=resamples)
    return log_ratio


def percentile_interval(log_ratio: np.ndarray, confidence: float) -> tuple[float, float]:
    """The equal-tailed percentile interval of a bootstrap distribution of log ratios, as ratios."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(log_ratio, [tail, 100.0 - tail], method=PERCENTILE_METHOD)
    return float(np.exp(lo)), float(np.exp(hi))
