"""The latency gate, pure: statistics on synthetic runs (seeded), the decision rule, comparability, the
markdown report, and the bench blocks it resamples. No assert depends on how fast anything runs."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from deployconv.core.errors import BadInputError
from deployconv.runtime import Runner, TensorMeta
from deployconv.runtime.timing import BenchResult, benchmark, summarize
from deployconv.validate.fingerprint import Fingerprint, comparable
from deployconv.validate.gate import EXIT_PASS, EXIT_REGRESSION, EXIT_UNDECIDED, decide, gate
from deployconv.validate.gate_markdown import pct, to_markdown
from deployconv.validate.gate_stats import (
    _replicates,
    bootstrap_log_ratio,
    percentile_interval,
    resampling_units,
)

FP = Fingerprint(cpu_model="Test CPU", cpu_logical_cores=2, cpu_affinity=2, machine="x86_64", system="Linux",
                 os="Linux-test", load_avg=(0.1, 0.1, 0.1), python="3.11.7", numpy="2.0", onnxruntime="1.31.1",
                 runtime="onnxruntime", runtime_version="1.31.1", providers=("CPUExecutionProvider",), threads=1,
                 graph_sha256="a" * 64, batch=1, inputs={"x": {"shape": [1, 3, 8, 8], "dtype": "float32"}})


def make_run(samples, blocks=(), **fingerprint) -> BenchResult:
    xs = [float(v) for v in samples]
    return BenchResult(samples_ms=xs, stats=summarize(xs, batch=1), fingerprint=replace(FP, **fingerprint),
                       conditions={"started_at": "2025-01-01T00:00:00+00:00"}, block_sizes=tuple(blocks))


def lognormal(n: int, median: float, sigma: float, seed: int) -> np.ndarray:
    return median * np.exp(np.random.default_rng(seed).normal(0.0, sigma, n))


# --- the verdicts the issue asks for ---

def test_identical_samples_pass():
    x = lognormal(400, 1.0, 0.05, seed=0)
    g = gate(make_run(x), make_run(x))
    assert g.verdict == "pass" and g.exit_code == EXIT_PASS == 0 and not g.borderline
    assert g.ratio == 1.0 and g.ci_low < 1.0 < g.ci_high <= 1.05
    assert g.differences == [] and g.changed == []
    assert "same graph and engine on both sides: any difference is the runner's noise" in g.notes


def test_clear_30_percent_slowdown_fails():
    g = gate(make_run(lognormal(400, 1.0, 0.05, seed=0)), make_run(lognormal(400, 1.3, 0.05, seed=1)))
    assert g.verdict == "regression" and g.exit_code == EXIT_REGRESSION == 1 and not g.borderline
    assert g.ratio == pytest.approx(1.3, rel=0.02) and 1.05 < g.ci_low < g.ratio < g.ci_high


def test_straddling_noisy_data_is_too_noisy_to_decide():
    g = gate(make_run(lognormal(60, 1.0, 0.3, seed=2)), make_run(lognormal(60, 1.05, 0.3, seed=3)))
    assert g.ci_low <= 1.05 < g.ci_high and g.ci_high - g.ci_low > g.noise_threshold == 0.05
    assert g.verdict == "noisy" and g.exit_code == EXIT_UNDECIDED == 3
    assert "straddles the limit" in g.reason


def test_p99_metric_sees_the_tail_the_median_does_not():
    body = lognormal(980, 1.0, 0.02, seed=4)
    base = np.concatenate([body, lognormal(20, 2.0, 0.01, seed=5)])  # 2% slow tail
    cur = np.concatenate([body, lognormal(20, 3.0, 0.01, seed=6)])  # the same tail, 50% slower
    rng = np.random.default_rng(7)
    base, cur = rng.permutation(base), rng.permutation(cur)
    assert gate(make_run(base), make_run(cur)).verdict == "pass"
    assert gate(make_run(base), make_run(cur), metric="p10").verdict == "pass"
    g = gate(make_run(base), make_run(cur), metric="p99")
    assert g.verdict == "regression" and g.metric == "p99" and g.ratio == pytest.approx(1.5, rel=0.05)
    assert g.baseline.metric_ms == g.baseline.p99_ms == pytest.approx(np.percentile(base, 99))


def test_incomparable_fingerprints_exit_3_naming_the_fields():
    x = lognormal(100, 1.0, 0.05, seed=0)
    g = gate(make_run(x), make_run(x, threads=2))
    assert g.verdict == "incomparable" and g.exit_code == 3 and g.ratio is None and g.baseline is None
    assert g.differences == ["threads: 1 vs 2"] and "threads" in g.reason
    g = gate(make_run(x), make_run(x, cpu_model="Other CPU", inputs={"x": {"shape": [8, 3, 8, 8], "dtype": "float32"}}))
    assert [d.split(":")[0] for d in g.differences] == ["cpu_model", "inputs"]
    md = to_markdown(g)
    assert "INCOMPARABLE" in md and "`threads" not in md and "`cpu_model: 'Test CPU' vs 'Other CPU'`" in md


def test_graph_and_engine_changes_are_what_the_gate_measures():
    x = lognormal(100, 1.0, 0.05, seed=0)
    g = gate(make_run(x), make_run(x, graph_sha256="b" * 64))
    assert g.verdict == "pass" and g.differences == []
    assert len(g.changed) == 1 and g.changed[0].startswith("graph_sha256: aaaa")
    assert not any("same graph" in n for n in g.notes)


def test_allow_diff_accepts_a_named_difference_on_purpose():
    x = lognormal(100, 1.0, 0.05, seed=0)
    base, cur = make_run(x), make_run(x, runtime_version="1.32.0", onnxruntime="1.32.0")
    assert gate(base, cur).verdict == "incomparable"
    g = gate(base, cur, allow_diff=["runtime_version"])
    assert g.verdict == "pass" and g.allowed == ["runtime_version: '1.31.1' vs '1.32.0'"]
    with pytest.raises(BadInputError, match="unknown fingerprint field"):
        gate(base, cur, allow_diff=["colour"])


# --- the decision rule, as a table ---

@pytest.mark.parametrize(("ratio", "lo", "hi", "verdict", "borderline"), [
    (1.10, 1.07, 1.13, "regression", False),  # the whole interval over the limit
    (1.00, 0.98, 1.02, "pass", False),  # the whole interval within it
    (1.02, 0.95, 1.05, "pass", False),  # hi exactly at the limit is within it
    (1.05, 1.00, 1.10, "noisy", False),  # straddles, 10 points wide > 5
    (1.06, 1.04, 1.08, "regression", True),  # straddles, 4 points: the estimate decides
    (1.04, 1.02, 1.06, "pass", True),
    (1.06, 1.05, 1.07, "regression", True),  # lo exactly at the limit still straddles
])
def test_decide(ratio, lo, hi, verdict, borderline):
    got, is_borderline, reason = decide(ratio, lo, hi, 1.05, 0.05)
    assert (got, is_borderline) == (verdict, borderline) and "+5.0%" in reason


def test_noise_threshold_defaults_to_the_tolerance_and_can_be_set():
    base, cur = make_run(lognormal(60, 1.0, 0.3, seed=2)), make_run(lognormal(60, 1.05, 0.3, seed=3))
    g = gate(base, cur, max_regression=0.05)
    assert g.noise_threshold == 0.05 and g.verdict == "noisy"
    wide = gate(base, cur, max_regression=0.05, noise_threshold=1.0)
    assert wide.borderline and wide.verdict in ("pass", "regression") and wide.exit_code in (0, 1)
    assert (wide.verdict == "regression") == (wide.ratio > 1.05)


# --- the statistics ---

def test_bootstrap_is_seeded_and_run_noise_widens_the_interval():
    base, cur = make_run(lognormal(300, 1.0, 0.1, seed=0)), make_run(lognormal(300, 1.0, 0.1, seed=1))
    a, b = gate(base, cur, seed=3), gate(base, cur, seed=3)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    c = gate(base, cur, seed=4)
    assert (c.ci_low, c.ci_high) != (a.ci_low, a.ci_high) and c.ratio == a.ratio
    quiet, noisy = gate(base, cur, run_noise=0.0), gate(base, cur, run_noise=0.03)
    assert noisy.ci_high - noisy.ci_low > quiet.ci_high - quiet.ci_low + 0.05


def test_resampling_units_are_contiguous_and_stay_inside_blocks():
    x = np.arange(100.0)
    units = resampling_units(x, ())
    assert len(units) == 10 and np.array_equal(np.concatenate(units), x)
    units = resampling_units(x, (40, 35, 25))  # 3 blocks -> 4 chunks each
    assert len(units) == 12 and np.array_equal(np.concatenate(units), x)
    edges = np.cumsum([u.size for u in units])
    assert {40, 75}.issubset(set(edges.tolist()))  # no unit crosses a block boundary
    assert len(resampling_units(x, [5] * 20)) == 20  # enough blocks: the blocks themselves
    assert [u.size for u in resampling_units(np.arange(3.0), ())] == [1, 1, 1]
    with pytest.raises(ValueError, match="add up"):
        resampling_units(x, (50, 49))


@pytest.mark.parametrize(("n", "k"), [(37, 10), (800, 10), (1000, 20), (5, 10), (301, 3)])
def test_vectorized_replicates_equal_numpy_on_the_concatenation(n, k):
    rng = np.random.default_rng(n)
    x = rng.lognormal(0, 0.5, n).round(2)  # ties on purpose
    units = resampling_units(x, (), k)
    picks = rng.integers(0, len(units), size=(200, len(units)))
    for metric, q in (("median", 50), ("p10", 10), ("p99", 99)):
        want = [np.percentile(np.concatenate([units[j] for j in row]), q) for row in picks]
        np.testing.assert_allclose(_replicates(units, metric, picks), want, rtol=0, atol=1e-12)


def test_chunks_keep_a_slow_stretch_together():
    """A run whose latency drifts up by 10% as a neighbour's job ramps up: a per-sample bootstrap treats
    the samples as independent and gives a far narrower (overconfident) interval than the chunk bootstrap,
    which keeps each stretch of the drift together."""
    rng = np.random.default_rng(0)
    drifting = np.linspace(1.0, 1.1, 600) + 0.01 * rng.standard_normal(600)
    steady = 1.05 + 0.01 * rng.standard_normal(600)

    def width(min_units: int) -> float:
        lr = bootstrap_log_ratio(resampling_units(steady, (), min_units), resampling_units(drifting, (), min_units),
                                 "median", resamples=2000, seed=0, run_noise=0.0)
        lo, hi = percentile_interval(lr, 0.95)
        return hi - lo

    assert width(10) > 3 * width(600)


def test_bad_inputs():
    ok = make_run(lognormal(100, 1.0, 0.05, seed=0))
    with pytest.raises(BadInputError, match="too few"):
        gate(ok, make_run(lognormal(10, 1.0, 0.05, seed=1)))
    with pytest.raises(BadInputError, match="unknown metric"):
        gate(ok, ok, metric="p50")
    with pytest.raises(BadInputError, match="max regression"):
        gate(ok, ok, max_regression=-0.1)
    with pytest.raises(BadInputError, match="run noise"):
        gate(ok, ok, run_noise=-0.01)


# --- the report ---

def test_markdown_and_json_carry_the_interval():
    g = gate(make_run(lognormal(400, 1.0, 0.05, seed=0)), make_run(lognormal(400, 1.3, 0.05, seed=1)),
             baseline_file="base.json", current_file="run.json")
    md = to_markdown(g)
    assert md.startswith("### deployconv latency gate: REGRESSION")
    assert f"95% CI {pct(g.ci_low)} to {pct(g.ci_high)}" in md and "**median latency" in md
    assert "limit +5.0%, exit 1" in md and "| **median (ms)** |" in md and "`base.json`" in md
    assert "| samples (blocks, resampling units) | 400 (1, 10) | 400 (1, 10) |" in md
    assert "Method:" in md and "Conditions: Test CPU" in md
    d = json.loads(json.dumps(g.to_dict()))
    assert d["schema"] == "deployconv.gate/1" and d["verdict"] == "regression" and d["exit_code"] == 1
    assert d["ci_low"] == g.ci_low and d["limit_ratio"] == pytest.approx(1.05)
    assert d["baseline"]["count"] == 400 and d["method"]["units"] == [10, 10]


def test_notes_flag_a_busy_runner_and_a_load_change():
    x = lognormal(100, 1.0, 0.05, seed=0)
    g = gate(make_run(x, load_avg=(0.2, 0.2, 0.2)), make_run(x, load_avg=(6.0, 3.0, 1.0)))
    assert any("busy runner during the current run" in n for n in g.notes)
    assert any("load average differed" in n for n in g.notes)
    assert any("one block" in n for n in g.notes)
    assert not any("one block" in n for n in gate(make_run(x, [50, 50]), make_run(x, [50, 50])).notes)


# --- what bench records for the gate: blocks, fresh sessions, the fingerprint's identity ---

class CountingRunner(Runner):
    runtime = "fake"

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.activations = 0

    def activate_impl(self):
        self.activations += 1

    def input_metadata_impl(self):
        return {"x": TensorMeta(np.dtype(np.float32), ("N", 4))}

    def infer_impl(self, feed):
        self.calls += 1
        return {"y": feed["x"]}

    def info_impl(self):
        return {"version": "0", "threads": 1, "graph_sha256": "ab" * 32}


FEED = {"x": np.zeros((3, 4), np.float32)}


def test_benchmark_repeat_splits_the_budget_into_fresh_sessions():
    r = CountingRunner()
    res = benchmark(r, FEED, warmup_s=0, iters=25, repeat=4)
    assert res.block_sizes == (7, 6, 6, 6) and len(res.samples_ms) == 25 == r.calls
    assert r.activations == 4 and not r.is_active  # one session per block, handed back inactive
    c = res.conditions
    assert c["repeat"] == 4 and [b["count"] for b in c["blocks"]] == [7, 6, 6, 6]
    back = BenchResult.from_dict(json.loads(json.dumps(res.to_dict())))
    assert back.block_sizes == res.block_sizes and list(res.to_dict())[-1] == "samples_ms"
    res = benchmark(CountingRunner(), FEED, warmup_s=0, duration_s=1e-9, min_iters=10, repeat=4)
    assert len(res.block_sizes) == 4 and min(res.block_sizes) >= 3  # ceil(10 / 4) per block
    with pytest.raises(BadInputError, match="cannot fill"):
        benchmark(CountingRunner(), FEED, iters=3, repeat=4)
    with pytest.raises(BadInputError, match="repeat"):
        benchmark(CountingRunner(), FEED, iters=3, repeat=0)


def test_bench_result_block_sizes_are_checked_and_old_files_read():
    with pytest.raises(BadInputError, match="do not add up"):
        make_run([1.0] * 30, blocks=(10, 10))
    d = make_run([1.0] * 30).to_dict()
    assert d["block_sizes"] == [30]
    del d["block_sizes"]  # a file written before blocks existed
    assert BenchResult.from_dict(d).block_sizes == ()


def test_fingerprint_device_driver_and_ignore():
    a = FP.to_dict()
    assert comparable(a, {**a, "device": "NVIDIA H100"}) == ["device: None vs 'NVIDIA H100'"]
    gpu = {**a, "device": "NVIDIA H100", "driver": "550.54.15"}
    assert comparable(gpu, {**gpu, "driver": None}) == []  # unreadable on one side: not a difference
    assert comparable(gpu, {**gpu, "driver": "560.1"}) == ["driver: '550.54.15' vs '560.1'"]
    assert comparable(a, {**a, "threads": 2, "graph_sha256": "b" * 64}, ignore=("graph_sha256",)) == ["threads: 1 vs 2"]
    assert Fingerprint.from_dict(json.loads(json.dumps(Fingerprint.from_dict(gpu).to_dict()))).driver == "550.54.15"
