"""Intervals and paired tests for a proportion (accuracy), numpy + scipy only.

- Wilson score interval: the default; well behaved near 0 and 1 and for small n (unlike the normal one).
- Bootstrap: resampling n Bernoulli outcomes with replacement gives a count distributed Binomial(n, p_hat),
  so the percentile bootstrap is drawn from that binomial directly (exact, O(reps) memory, any n).
- McNemar's exact test for two stages scored on the same images: under "no difference" the discordant
  images (right in one stage, wrong in the other) split 50/50, so b ~ Binomial(b + c, 1/2); two-sided p.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

INTERVALS = ("wilson", "bootstrap")


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of k successes in n trials."""
    if n <= 0:
        return (0.0, 1.0)
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_interval(k: int, n: int, confidence: float = 0.95, reps: int = 10_000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of a proportion (resampled counts are Binomial(n, k/n))."""
    if n <= 0:
        return (0.0, 1.0)
    draws = np.random.default_rng(seed).binomial(n, k / n, size=reps) / n
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(draws, [alpha, 1 - alpha])
    return (float(lo), float(hi))


def interval(k: int, n: int, method: str, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    if method == "wilson":
        return wilson_interval(k, n, confidence)
    if method == "bootstrap":
        return bootstrap_interval(k, n, confidence, seed=seed)
    raise ValueError(f"unknown interval method {method!r}")


@dataclass(frozen=True)
class McNemar:
    """Paired comparison of correctness: b = right before / wrong after, c = wrong before / right after."""

    b: int
    c: int
    p_value: float

    def significant(self, alpha: float) -> bool:
        return self.p_value < alpha


def mcnemar(before: np.ndarray, after: np.ndarray) -> McNemar:
    """Exact McNemar test on two boolean arrays of per-image correctness (same images, same order)."""
    before, after = np.asarray(before, bool), np.asarray(after, bool)
    if before.shape != after.shape:
        raise ValueError(f"paired arrays differ in shape: {before.shape} vs {after.shape}")
    b = int(np.count_nonzero(before & ~after))
    c = int(np.count_nonzero(~before & after))
    if b + c == 0:
        return McNemar(0, 0, 1.0)
    from scipy.stats import binomtest

    return McNemar(b, c, float(binomtest(b, b + c, 0.5, alternative="two-sided").pvalue))
