"""Latency statistics (pure), the benchmark loop (counts and records, never speed), the fingerprint and
`comparable`. No assert here depends on how fast anything runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deployconv.core.errors import BadInputError
from deployconv.runtime import OrtRunner, Runner, TensorMeta
from deployconv.runtime.timing import SCHEMA, BenchResult, LatencyStats, benchmark, summarize
from deployconv.validate.fingerprint import Fingerprint, collect, comparable
from tests.runtime import save, tiny_classifier

# --- summarize ---

def test_summarize_hand_case():
    s = summarize([5.0, 1.0, 4.0, 2.0, 3.0], batch=8)
    assert (s.count, s.median_ms, s.mean_ms, s.min_ms, s.max_ms) == (5, 3.0, 3.0, 1.0, 5.0)
    # linear percentiles: p90 at position 0.9 * 4 = 3.6 -> 4 + 0.6 * (5 - 4); p99 at 3.96
    assert s.p90_ms == pytest.approx(4.6) and s.p95_ms == pytest.approx(4.8) and s.p99_ms == pytest.approx(4.96)
    assert s.std_ms == pytest.approx(math.sqrt(2.5))  # sample std, ddof=1
    assert s.cv == pytest.approx(math.sqrt(2.5) / 3.0)
    assert s.throughput == pytest.approx(8 * 1000 / 3.0)
    assert s.percentile_method == "linear"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.001, 1e4), min_size=2, max_size=200), st.randoms(use_true_random=False))
def test_summarize_matches_numpy_and_ignores_order(xs, rnd):
    s = summarize(xs)
    x = np.asarray(xs)
    for q, v in ((50, s.median_ms), (90, s.p90_ms), (95, s.p95_ms), (99, s.p99_ms)):
        assert v == pytest.approx(np.percentile(x, q), rel=1e-12)
    assert s.std_ms == pytest.approx(np.std(x, ddof=1), rel=1e-9, abs=1e-12)
    assert s.min_ms <= s.median_ms <= s.p90_ms <= s.p95_ms <= s.p99_ms <= s.max_ms
    shuffled = list(xs)
    rnd.shuffle(shuffled)
    assert summarize(shuffled).median_ms == s.median_ms and s.throughput is None


def test_summarize_single_sample_and_errors():
    s = summarize([2.0], batch=1)
    assert s.std_ms == 0.0 and s.cv == 0.0 and s.p99_ms == 2.0 and s.throughput == 500.0
    for bad in ([], [1.0, float("nan")], [1.0, -1.0]):
        with pytest.raises(ValueError):
            summarize(bad)
    with pytest.raises(ValueError):
        summarize([1.0], batch=0)
    assert LatencyStats.from_dict(json.loads(json.dumps(s.to_dict()))) == s


# --- benchmark loop, with a runner that does no real work ---

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


def test_benchmark_iters_records_samples_and_conditions():
    r = CountingRunner()
    res = benchmark(r, FEED, warmup_s=0, iters=25, conditions={"artifact": "m.onnx"})
    assert r.calls == 25 and len(res.samples_ms) == 25 and res.stats.count == 25
    assert all(v >= 0 for v in res.samples_ms)
    assert not r.is_active and r.activations == 1  # activated for the run, handed back inactive
    c = res.conditions
    assert c["artifact"] == "m.onnx" and c["runtime"] == "fake" and c["threads"] == 1
    assert c["batch"] == 3 and c["inputs"] == {"x": {"shape": [3, 4], "dtype": "float32"}} and c["dtype"] == "float32"
    assert c["mode"] == "iters" and c["warmup_iters"] == 0 and c["graph_sha256"] == "ab" * 32
    assert res.stats.batch == 3 and res.throughput is not None
    fp = res.fingerprint
    assert fp.runtime == "fake" and fp.threads == 1 and fp.batch == 3 and fp.graph_sha256 == "ab" * 32
    assert fp.inputs == c["inputs"]


def test_benchmark_duration_takes_at_least_min_iters_and_keeps_active_runners_active():
    r = CountingRunner().activate()
    res = benchmark(r, FEED, warmup_s=0.0, duration_s=1e-9, min_iters=7, batch=16)
    assert res.stats.count >= 7 and res.conditions["mode"] == "duration"
    assert res.stats.batch == 16
    assert r.is_active


def test_benchmark_warmup_is_by_time():
    r = CountingRunner()
    res = benchmark(r, FEED, warmup_s=0.02, iters=1)
    assert res.conditions["warmup_iters"] >= 1 and r.calls == res.conditions["warmup_iters"] + 1
    assert res.conditions["warmup_elapsed_s"] >= 0.02


def test_benchmark_argument_and_feed_errors():
    r = CountingRunner()
    with pytest.raises(BadInputError, match="not both"):
        benchmark(r, FEED, duration_s=1.0, iters=3)
    for kw in ({"iters": 0}, {"duration_s": 0.0}, {"warmup_s": -1.0, "iters": 1}):
        with pytest.raises(BadInputError):
            benchmark(r, FEED, **kw)
    with pytest.raises(BadInputError, match="dtype float64"):
        benchmark(r, {"x": np.zeros((3, 4))}, warmup_s=0, iters=1)
    assert r.calls == 0 and not r.is_active  # checked before the loop, and handed back


def test_bench_result_json_roundtrip():
    res = benchmark(CountingRunner(), FEED, warmup_s=0, iters=5)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["schema"] == SCHEMA and list(d)[-1] == "samples_ms" and len(d["samples_ms"]) == 5
    back = BenchResult.from_dict(d)
    assert back.samples_ms == res.samples_ms and back.stats == res.stats and back.fingerprint == res.fingerprint
    assert comparable(back.fingerprint, res.fingerprint) == []
    with pytest.raises(BadInputError, match="not a deployconv benchmark"):
        BenchResult.from_dict({"schema": "other"})


def test_benchmark_on_onnx_runtime(tmp_path):
    path = save(tiny_classifier(), tmp_path / "m.onnx")
    feed = {"x": np.zeros((2, 3, 8, 8), np.float32)}
    res = benchmark(OrtRunner(path, threads=1), feed, warmup_s=0, iters=10)
    fp, c = res.fingerprint, res.conditions
    assert fp.runtime == "onnxruntime" and fp.runtime_version == fp.onnxruntime and fp.threads == 1
    assert fp.providers == ("CPUExecutionProvider",) and fp.graph_sha256 == c["graph_sha256"]
    assert c["runner"]["inter_op_threads"] == 1 and c["runner"]["execution_mode"] == "sequential"
    assert res.stats.count == 10


# --- fingerprint ---

def test_fingerprint_fields():
    fp = collect(threads=2, graph_sha256="0" * 64, batch=1, inputs={"x": {"shape": [1, 3], "dtype": "float32"}})
    assert fp.cpu_model and fp.cpu_logical_cores >= 1 and 1 <= fp.cpu_affinity <= fp.cpu_logical_cores
    assert fp.python.count(".") == 2 and fp.numpy == np.__version__ and fp.onnxruntime
    assert fp.system and fp.os and fp.machine
    assert fp.load_avg is None or len(fp.load_avg) == 3
    assert fp.cpu_governor is None or isinstance(fp.cpu_governor, str)
    d = json.loads(json.dumps(fp.to_dict()))
    assert Fingerprint.from_dict(d) == fp


def test_comparable_lists_what_differs():
    a = collect(runtime="onnxruntime", runtime_version="1.31.1", providers=("CPUExecutionProvider",), threads=2,
                graph_sha256="a" * 64, batch=1, inputs={"x": {"shape": [1, 3], "dtype": "float32"}})
    assert comparable(a, a) == [] and comparable(a.to_dict(), json.loads(json.dumps(a.to_dict()))) == []
    # noise indicators are recorded, never make runs incomparable
    noisy = Fingerprint.from_dict({**a.to_dict(), "load_avg": [9.0, 9.0, 9.0], "cpu_freq_mhz": 1.0})
    assert comparable(a, noisy) == []
    # an unreadable governor on one side is not a difference; two different known ones are
    assert comparable(Fingerprint.from_dict({**a.to_dict(), "cpu_governor": None}),
                      Fingerprint.from_dict({**a.to_dict(), "cpu_governor": "performance"})) == []
    b = Fingerprint.from_dict({**a.to_dict(), "cpu_governor": "powersave", "threads": 1, "graph_sha256": "b" * 64,
                               "inputs": {"x": {"shape": [8, 3], "dtype": "float32"}}})
    a2 = Fingerprint.from_dict({**a.to_dict(), "cpu_governor": "performance"})
    diffs = comparable(a2, b)
    assert {d.split(":")[0] for d in diffs} == {"threads", "graph_sha256", "inputs", "cpu_governor"}
    assert "threads: 2 vs 1" in diffs
    assert comparable(a, {**a.to_dict(), "schema": "x"}) == ["schema: 'deployconv.fingerprint/1' vs 'x'"]


def test_runtime_front_doors_resolve():
    import deployconv.runtime as runtime

    for name in runtime.__all__:
        assert getattr(runtime, name) is not None, name
