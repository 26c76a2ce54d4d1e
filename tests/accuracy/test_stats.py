"""The intervals and the paired test against brute-force definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from deployconv.accuracy.stats import bootstrap_interval, mcnemar, wilson_interval


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (81, 263), (599, 600), (74_600, 100_000)])
def test_wilson_is_the_score_test_inversion(k: int, n: int) -> None:
    # Wilson's interval = the p whose score test |p_hat - p| <= z sqrt(p(1-p)/n) accepts; solve it numerically
    z = norm.ppf(0.975)
    p_hat = k / n

    def score(p: float) -> float:
        return abs(p_hat - p) - z * math.sqrt(p * (1 - p) / n)

    lo = 0.0 if k == 0 else brentq(score, 1e-15, p_hat - 1e-12)
    hi = 1.0 if k == n else brentq(score, p_hat + 1e-12, 1 - 1e-15)
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-9)


def test_bootstrap_matches_resampling_the_images() -> None:
    rng = np.random.default_rng(1)
    hits = rng.random(400) < 0.8
    direct = [rng.choice(hits, hits.size).mean() for _ in range(4000)]
    lo, hi = np.quantile(direct, [0.025, 0.975])
    got = bootstrap_interval(int(hits.sum()), hits.size, reps=20_000)
    assert got == pytest.approx((lo, hi), abs=0.01)


def _brute_mcnemar(b: int, c: int) -> float:
    n = b + c
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


@pytest.mark.parametrize(("b", "c"), [(0, 0), (0, 6), (5, 5), (12, 3), (40, 25), (1, 30)])
def test_mcnemar_exact(b: int, c: int) -> None:
    before = np.array([True] * b + [False] * c + [True] * 7 + [False] * 4)
    after = np.array([False] * b + [True] * c + [True] * 7 + [False] * 4)
    m = mcnemar(before, after)
    assert (m.b, m.c) == (b, c)
    assert m.p_value == pytest.approx(_brute_mcnemar(b, c), rel=1e-9)
    assert m.significant(0.05) == (_brute_mcnemar(b, c) < 0.05)
