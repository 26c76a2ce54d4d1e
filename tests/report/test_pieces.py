"""The pure pieces behind the page: number formats, JSON pointers, budget colouring, stage conditions, the gate
reader, DLA counts, latency notes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deployconv.report import conditions, numbers
from deployconv.report.gate_section import read_gate
from deployconv.report.latency_section import Run, run_notes, stats_mismatch
from deployconv.report.markup import pointer
from deployconv.report.parity_section import metric_status
from deployconv.report.placement_section import device_counts
from tests.artifact_samples import manifest
from tests.report.dom import resolve, shown_matches

finite_floats = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e30, max_value=1e30)


@given(finite_floats)
def test_every_format_shows_the_value_to_its_last_digit(x):
    for fmt in (numbers.sci, numbers.fixed(3), numbers.fixed(8), numbers.ms, numbers.rate, numbers.general):
        assert shown_matches(fmt(x), x), (fmt, x, fmt(x))


def test_non_finite_values_are_spelled_out():
    for fmt in (numbers.sci, numbers.fixed(3), numbers.ms, numbers.rate, numbers.general):
        assert fmt(math.nan) == "NaN" and fmt(math.inf) == "inf" and fmt(-math.inf) == "-inf"


def test_shown_matches_rejects_a_wrong_digit():
    assert shown_matches("1.65e-06", 1.6483e-06) and not shown_matches("1.64e-06", 1.6483e-06)
    assert shown_matches("123.83", 123.826) and not shown_matches("123.82", 123.826)


def test_pointer_escapes_slash_and_tilde():
    doc = {"runs": {"a/b ~c": {"x": [10, 20]}}}
    src = pointer("r.json", "runs", "a/b ~c", "x", 1)
    assert src == "r.json#/runs/a~1b ~0c/x/1"
    assert resolve(src, {"r.json": doc}) == 20


BUDGET = {"max_abs_rel_scale": 1e-4, "min_cosine": 0.99999, "min_top1_agreement": None}


@pytest.mark.parametrize("key, value, budget, expected", [
    ("max_abs_rel_scale", 1e-4, BUDGET, "pass"),  # at the limit passes, as budget_failures does
    ("max_abs_rel_scale", 1.01e-4, BUDGET, "fail"),
    ("max_abs_rel_scale", math.nan, BUDGET, "fail"),
    ("cosine", 0.99999, BUDGET, "pass"),
    ("cosine", 0.99998, BUDGET, "fail"),
    ("top1_agreement", 0.5, BUDGET, None),  # reported, not gated
    ("top1_agreement", 0.5, {**BUDGET, "min_top1_agreement": 0.99}, "fail"),
    ("max_abs", 1.0, BUDGET, None),
    ("nonfinite_out", 0, BUDGET, "pass"),
    ("nonfinite_out", 3, BUDGET, "fail"),
])
def test_metric_status_follows_the_budget(key, value, budget, expected):
    assert metric_status(key, value, budget) == expected


def test_metric_status_agrees_with_budget_failures():
    from deployconv.core.target import Budget
    from deployconv.validate.parity import budget_failures

    rng = np.random.default_rng(0)
    b = Budget(1e-4, 0.99999, 0.9)
    for _ in range(200):
        m = {"max_abs_rel_scale": float(10 ** rng.uniform(-6, -2)), "cosine": float(1 - 10 ** rng.uniform(-7, -3)),
             "top1_agreement": float(rng.uniform(0.8, 1.0)), "nonfinite": False}
        ours = any(metric_status(k, m[k], b.__dict__) == "fail" for k in ("max_abs_rel_scale", "cosine",
                                                                            "top1_agreement"))
        assert ours == bool(budget_failures(m, b)), m


MANIFEST = manifest(tools={"torch": "2.13.0+cpu", "onnxruntime": "1.31.1", "tensorrt": "10.13.0"})


@pytest.mark.parametrize("stage, runtime, precision", [
    ("train-fp64", "PyTorch 2.13.0+cpu, CPU", "fp64"),
    ("deploy-fp32", "PyTorch 2.13.0+cpu, CPU", "fp32"),
    ("onnx-raw (ort-cpu)", "ONNX Runtime 1.31.1, CPU", "fp16"),
    ("onnx-fp16 (ort-cuda)", "ONNX Runtime 1.31.1, CUDA", "fp16"),
    ("trt-int8", "TensorRT 10.13.0, GPU", "int8"),
    ("reference (train-fp32, recorded)", "recorded outputs (reference.npz)", "fp32"),
    ("mystery", "not recorded", "fp16"),
])
def test_stage_conditions_from_the_name(stage, runtime, precision):
    assert conditions.stage_runtime(stage, MANIFEST) == runtime
    assert conditions.stage_precision(stage, "fp16") == precision


def test_missing_versions_are_said():
    assert conditions.stage_runtime("onnx (ort-cpu)", manifest(tools={"onnxruntime": None})) == "ONNX Runtime (version not recorded), CPU"
    assert conditions.host(None) == "not recorded"


def test_read_gate_variants():
    g = read_gate({"decision": "regression", "ratio": 1.2, "ci": [1.1, 1.3], "limit": 1.05, "n": 40})
    assert g.passed is False and g.numbers == {"ratio": 1.2, "ci_low": 1.1, "ci_high": 1.3, "limit": 1.05}
    assert g.paths["ci_high"] == ("ci", 1) and g.other == [("n", 40)]
    g = read_gate({"passed": True, "decision": "weird", "threshold": 1.1})
    assert g.passed is True and g.decision == "weird" and g.numbers == {"limit": 1.1}
    g = read_gate({"decision": "maybe"})
    assert g.passed is None
    g = read_gate({"ok": "yes", "ratio": "n/a"})  # not a bool, not a number: kept as they are
    assert g.passed is None and g.numbers == {} and dict(g.other) == {"ok": "yes", "ratio": "n/a"}


def test_device_counts():
    layers = [{"device": "DLA"}, {"device": "gpu"}, {"device": "DLA"}, {}, {"device": "CPU"}]
    assert device_counts(layers) == {"DLA": 2, "GPU": 1, "CPU": 1, "UNKNOWN": 1}
    assert device_counts([]) == {"DLA": 0, "GPU": 0}


def _run(samples, **stats):
    x = np.asarray(samples)
    base = {"count": x.size, "median_ms": float(np.median(x)), "p99_ms": float(np.percentile(x, 99)),
            "cv": float(x.std(ddof=1) / x.mean())}
    return Run("r", "report.json", ("latency", "runs", "r"),
               {"stats": {**base, **stats}, "samples_ms": list(samples),
                "fingerprint": {"load_avg": [0.1, 0.1, 0.1], "cpu_affinity": 2}})


def test_run_notes():
    quiet = _run(np.linspace(10, 10.2, 50))
    assert run_notes(quiet) == []
    few = run_notes(_run([10.0, 10.1, 10.2]))
    assert any("only 3 samples" in n for n in few)
    assert any("noisy" in n for n in run_notes(_run(np.r_[np.full(40, 10.0), np.full(10, 30.0)])))
    r = _run(np.linspace(10, 10.2, 50))
    r.data["fingerprint"]["load_avg"] = [3.0, 1, 1]
    assert any("busy machine" in n for n in run_notes(r))
    r.data.pop("samples_ms")
    assert any("raw samples are absent" in n for n in run_notes(r))


def test_stats_mismatch():
    x = list(np.linspace(1, 2, 11))
    good = {"count": 11, "median_ms": 1.5, "p99_ms": float(np.percentile(x, 99))}
    assert stats_mismatch(x, good) == []
    assert len(stats_mismatch(x, {**good, "count": 12, "p99_ms": 3.0})) == 2


def test_host_names_the_accelerator_first():
    fp = {"device": "NVIDIA H100 80GB HBM3", "driver": "570.86.15", "cpu_model": "AMD EPYC", "machine": "x86_64",
          "cpu_logical_cores": 16, "cpu_affinity": 16, "os": "Linux-6.8"}
    assert conditions.host(fp) == ("NVIDIA H100 80GB HBM3 (NVIDIA driver 570.86.15); host AMD EPYC, x86_64, "
                                   "16 logical cores (16 usable); Linux-6.8")
    assert conditions.host({"cpu_model": "Cortex-A78AE"}) == "Cortex-A78AE"
