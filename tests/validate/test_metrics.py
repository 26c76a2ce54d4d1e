"""Parity metrics: property tests (identity, scaling, brute-force cosine), hand-computed cases, NaN/Inf."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from deployconv.core.errors import CheckFailedError
from deployconv.validate.metrics import CompareResult, compare, compare_outputs

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=64)
# no subnormals: scaling them by 2^k is not exact
normal = st.one_of(st.just(0.0), st.floats(1e-100, 1e6), st.floats(-1e6, -1e-100))
shapes = array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=6)


@st.composite
def pairs(draw, shape=shapes, elements=finite):
    s = draw(shape)
    return draw(arrays(np.float64, s, elements=elements)), draw(arrays(np.float64, s, elements=elements))


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, shapes, elements=finite))
def test_identical_arrays_are_perfect(a):
    r = compare(a, a.copy())
    assert r.max_abs == r.p99_abs == r.mean_abs == r.max_abs_rel_scale == 0.0
    assert r.cosine == 1.0 and r.cosine_min == 1.0
    assert not r.nonfinite and r.nonfinite_ref == r.nonfinite_out == 0
    if a.ndim == 2 and a.shape[1] >= 2:
        assert r.top1_agreement == r.top5_agreement == r.top5_overlap == 1.0
    else:
        assert r.top1_agreement is None and r.top5_agreement is None and r.top5_overlap is None


@settings(max_examples=60, deadline=None)
@given(pairs(elements=normal), st.integers(-30, 30), st.sampled_from([1.0, -1.0]))
def test_power_of_two_scaling(pair, k, sign):
    """Scaling both arrays by s = ±2^k is exact in fp64: absolute errors scale by |s|, relative ones, cosine
    and the classification agreements do not change."""
    a, b = pair
    s = sign * 2.0**k
    r0, r1 = compare(a, b), compare(a * s, b * s)
    assert r1.max_abs == r0.max_abs * abs(s) and r1.ref_scale == r0.ref_scale * abs(s)
    assert r1.mean_abs == pytest.approx(r0.mean_abs * abs(s), rel=1e-12)
    assert r1.p99_abs == pytest.approx(r0.p99_abs * abs(s), rel=1e-12)
    assert r1.max_abs_rel_scale == r0.max_abs_rel_scale
    assert r1.cosine == pytest.approx(r0.cosine, abs=1e-12)
    assert r1.cosine_min == pytest.approx(r0.cosine_min, abs=1e-12)
    if sign > 0:  # a negative scale reverses the ranking, a positive one keeps it
        assert (r1.top1_agreement, r1.top5_agreement, r1.top5_overlap) == (
            r0.top1_agreement, r0.top5_agreement, r0.top5_overlap)


@settings(max_examples=60, deadline=None)
@given(pairs(array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=5)))
def test_cosine_against_brute_force(pair):
    a, b = pair

    def cos(u, v):  # exact rational arithmetic: no overflow or underflow in the squares
        u, v = [Fraction(float(x)) for x in u.ravel()], [Fraction(float(x)) for x in v.ravel()]
        nu2, nv2 = sum(x * x for x in u), sum(x * x for x in v)
        if nu2 == 0 and nv2 == 0:
            return 1.0
        if nu2 == 0 or nv2 == 0:
            return 0.0
        dot = sum(x * y for x, y in zip(u, v))
        return math.copysign(math.sqrt(float(dot * dot / (nu2 * nv2))), dot)

    r = compare(a, b)
    assert r.cosine == pytest.approx(cos(a, b), abs=1e-9)
    assert r.cosine_min == pytest.approx(min(cos(a[i], b[i]) for i in range(a.shape[0])), abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(pairs())
def test_error_metrics_against_brute_force(pair):
    a, b = pair
    d = sorted(abs(float(x) - float(y)) for x, y in zip(a.ravel(), b.ravel()))
    r = compare(a, b)
    assert r.max_abs == d[-1]
    assert r.mean_abs == pytest.approx(math.fsum(d) / len(d), rel=1e-9, abs=1e-300)
    # p99, linear interpolation between order statistics (numpy's default)
    pos = 0.99 * (len(d) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(d) - 1)
    assert r.p99_abs == pytest.approx(d[lo] + (pos - lo) * (d[hi] - d[lo]), rel=1e-9, abs=1e-300)
    assert d[0] <= r.p99_abs <= d[-1]


def test_hand_computed_case():
    ref = np.array([[1.0, 2.0], [3.0, 4.0]])
    out = np.array([[1.0, 2.5], [3.0, 3.0]])
    r = compare(ref, out)
    # |d| = [0, 0.5, 0, 1] -> sorted [0, 0, 0.5, 1]; p99 at position 0.99*3 = 2.97: 0.5 + 0.97 * 0.5
    assert (r.max_abs, r.mean_abs, r.ref_scale, r.max_abs_rel_scale) == (1.0, 0.375, 4.0, 0.25)
    assert r.p99_abs == pytest.approx(0.985)
    cos0 = 6.0 / (math.sqrt(5.0) * math.sqrt(7.25))
    cos1 = 21.0 / (5.0 * math.sqrt(18.0))
    assert r.cosine_min == pytest.approx(min(cos0, cos1))
    assert r.cosine == pytest.approx(27.0 / (math.sqrt(30.0) * math.sqrt(25.25)))
    # row 1 of `out` ties (3, 3): the lower class index ranks first, so its top-1 is class 0, ref's is 1
    assert r.top1_agreement == 0.5
    assert r.top5_agreement == 1.0 and r.top5_overlap == 1.0  # k = min(5, 2 classes) = 2


def test_top5_definitions():
    ref = np.array([[9, 8, 7, 6, 5, 4, 3, 2, 1, 0],  # top-5 {0..4}, top-1 0
                    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]], dtype=np.float64)
    out = np.array([[0, 9, 8, 7, 6, 5, 1, 1, 1, 1],  # top-1 1 (ref's #2); top-5 {1..5}, lacks ref's top-1 0
                    [9, 0, 0, 0, 0, 8, 7, 6, 5, 1]],  # top-1 0 agrees; top-5 {0, 5, 6, 7, 8}
                   dtype=np.float64)
    r = compare(ref, out)
    assert r.top1_agreement == 0.5
    # top5_agreement: is ref's top-1 among out's top-5? sample 0: 0 not in {1..5}; sample 1: 0 is.
    assert r.top5_agreement == 0.5
    # top5_overlap: |{0..4} & {1..5}| / 5 = 4/5 and |{0..4} & {0,5,6,7,8}| / 5 = 1/5
    assert r.top5_overlap == pytest.approx((0.8 + 0.2) / 2)


def test_nonfinite_is_flagged_and_the_rest_still_measured():
    ref = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    out = ref.copy()
    out[0, 0] = np.nan
    out[1, 2] = np.inf
    out[1, 0] = 4.5
    r = compare(ref, out)
    assert r.nonfinite and r.nonfinite_out == 2 and r.nonfinite_ref == 0
    assert r.max_abs == 0.5  # over positions finite in both
    r = compare(np.array([-np.inf, 1.0]), np.array([0.0, 1.0]))
    assert r.nonfinite and r.nonfinite_ref == 1 and r.nonfinite_out == 0
    json.dumps(r.to_dict())


def test_edge_conventions():
    z = np.zeros((2, 3))
    r = compare(z, z)
    assert r.cosine == 1.0 and r.max_abs_rel_scale == 0.0
    r = compare(z, np.ones((2, 3)))
    assert r.cosine == 0.0 and r.max_abs_rel_scale == math.inf
    r = compare(np.ones((2, 3)), -np.ones((2, 3)))
    assert r.cosine == -1.0 and r.top1_agreement == 1.0  # all ties: class 0 on both sides
    r = compare(np.float32(2.0), np.float16(2.0))  # 0-d, mixed dtypes: fp64 inside
    assert r.shape == () and r.numel == 1 and r.max_abs == 0.0
    r = compare(np.zeros((0, 10)), np.zeros((0, 10)))
    assert r.numel == 0 and r.max_abs == 0.0 and r.cosine_min == 1.0


def test_classification_switch_and_shape_errors():
    a = np.random.default_rng(0).standard_normal((4, 10))
    assert compare(a, a, classification=False).top1_agreement is None
    assert compare(a[:, :1], a[:, :1]).top1_agreement is None  # one class is not a classification
    with pytest.raises(CheckFailedError, match="shapes differ"):
        compare(a, a[:2])
    with pytest.raises(CheckFailedError, match=r"\(N, classes\)"):
        compare(a.reshape(2, 2, 10), a.reshape(2, 2, 10), classification=True)


def test_compare_outputs_and_json():
    a = np.random.default_rng(0).standard_normal((2, 10)).astype(np.float32)
    res = compare_outputs({"logits": a, "feat": a[:, :3]}, {"logits": a + 1e-3, "feat": a[:, :3]})
    assert isinstance(res["logits"], CompareResult)
    assert res["logits"].max_abs == pytest.approx(1e-3, rel=1e-3) and res["feat"].max_abs == 0.0
    d = json.loads(json.dumps({k: v.to_dict() for k, v in res.items()}))
    assert d["logits"]["shape"] == [2, 10] and d["logits"]["top1_agreement"] == 1.0
    with pytest.raises(CheckFailedError, match="output names differ"):
        compare_outputs({"a": a}, {"b": a})
