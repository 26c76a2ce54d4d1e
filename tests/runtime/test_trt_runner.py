"""TensorRT runner: its pure parts everywhere (dtype mapping, profile checks, load-failure diagnosis, the
H2D / compute / D2H split statistics and their JSON), its refusals without TensorRT (exit 3), and a real
build-and-run only where TensorRT and a GPU are (marker trt)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from deployconv.core.errors import EXIT_MISSING_ENV, BadInputError, MissingEnvironmentError
from deployconv.runtime.timing import BenchResult, summarize
from deployconv.runtime.trt import (
    TensorInfo,
    TransferSplit,
    TrtBenchResult,
    TrtRunner,
    check_io_types,
    deserialize_failure,
    numpy_dtype,
    profile_violation,
    split_stats,
)
from tests.runtime import save, tiny_classifier

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.mark.parametrize("trt_name, np_name", [("FLOAT", "float32"), ("HALF", "float16"), ("INT8", "int8"),
                                               ("INT32", "int32"), ("INT64", "int64"), ("BOOL", "bool"),
                                               ("UINT8", "uint8")])
def test_numpy_dtype(trt_name, np_name):
    assert numpy_dtype(trt_name) == np.dtype(np_name)

    class FakeEnumMember:  # how pybind11 enums present themselves: a .name
        name = trt_name

    assert numpy_dtype(FakeEnumMember()) == np.dtype(np_name)


@pytest.mark.parametrize("trt_name", ["BF16", "FP8", "INT4", "FP4"])
def test_types_without_numpy_dtype(trt_name):
    assert numpy_dtype(trt_name) is None
    with pytest.raises(BadInputError, match=f"y: {trt_name}"):
        check_io_types([TensorInfo("x", True, "FLOAT", (1,)), TensorInfo("y", False, trt_name, (1,))], "e.plan")


def test_profile_violation():
    prof = ((1, 3, 8, 8), (4, 3, 8, 8), (16, 3, 8, 8))
    assert profile_violation("x", (1, 3, 8, 8), prof) is None and profile_violation("x", (16, 3, 8, 8), prof) is None
    msg = profile_violation("x", (32, 3, 8, 8), prof)
    assert msg == "input 'x' has shape (32, 3, 8, 8): dim 0 is 32, allowed 1..16 (engine profile min (1, 3, 8, 8), max (16, 3, 8, 8))"
    assert "rank 3" in profile_violation("x", (1, 3, 8), prof)


@pytest.mark.parametrize("log, kind, needle", [
    (["IRuntime::deserializeCudaEngine: Cannot find plugin DeployconvSKA version 1"], MissingEnvironmentError,
     "plugin it uses is not registered"),
    (["The engine plan file is not compatible with this version of TensorRT, expecting library version 10.3"],
     BadInputError, "another TensorRT version or for another GPU"),
    (["Engine contains host code; engine host code is not allowed"], BadInputError, "embedded host code"),
    (["Serialization assertion magicTagRead == kMAGIC_TAG failed"], BadInputError, "could not load"),
])
def test_deserialize_failure_is_classified(log, kind, needle):
    err = deserialize_failure("e.plan", log, [], allow_host_code=False)
    assert isinstance(err, kind) and needle in err.what and err.details == log


def test_split_stats_summarize_each_part():
    splits = [TransferSplit(0.1, 1.0, 0.05), TransferSplit(0.3, 2.0, 0.15), TransferSplit(0.2, 3.0, 0.10)]
    s = split_stats(splits, batch=2)
    assert s.h2d.mean_ms == pytest.approx(0.2) and s.compute.median_ms == 2.0 and s.d2h.max_ms == 0.15
    assert s.gpu_total.mean_ms == pytest.approx((1.15 + 2.45 + 3.3) / 3)
    assert s.compute.throughput == pytest.approx(2 * 1000 / 2.0)
    assert s.compute == summarize([1.0, 2.0, 3.0], batch=2)
    with pytest.raises(ValueError):
        split_stats([])


def test_trt_bench_result_json_keeps_the_bench_schema():
    from deployconv.validate.fingerprint import collect

    samples = [1.5, 1.6, 1.7]
    bench = BenchResult(samples, summarize(samples, 1), collect(runtime="tensorrt", engine_sha256="ab"), {"x": 1})
    split = split_stats([TransferSplit(0.1, 1.2, 0.1)] * 3, 1)
    d = TrtBenchResult(bench, split).to_dict()
    assert list(d)[-1] == "samples_ms" and d["split"]["compute"]["median_ms"] == pytest.approx(1.2)
    assert "CUDA events" in d["split"]["timer"]
    again = BenchResult.from_dict(json.loads(json.dumps(d)))  # a gate reads it like any bench result
    assert again.samples_ms == samples and again.fingerprint.engine_sha256 == "ab"


def test_runner_refuses_missing_files(tmp_path):
    with pytest.raises(BadInputError, match="no such engine file"):
        TrtRunner(tmp_path / "absent.plan")
    engine = tmp_path / "e.plan"
    engine.write_bytes(b"not really an engine")
    with pytest.raises(BadInputError, match="plugin library not found"):
        TrtRunner(engine, plugins=[tmp_path / "absent.so"])


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here: this tests the path without it")
def test_runner_without_tensorrt_is_exit_3(tmp_path):
    engine = tmp_path / "e.plan"
    engine.write_bytes(b"\x00" * 16)
    runner = TrtRunner(engine)
    with pytest.raises(MissingEnvironmentError) as e:
        runner.activate()
    assert e.value.exit_code == EXIT_MISSING_ENV and "TensorRT is not installed" in e.value.what
    assert not runner.is_active and runner.engine_sha256 == __import__("hashlib").sha256(b"\x00" * 16).hexdigest()


@pytest.mark.trt
def test_build_and_run_matches_the_reference(tmp_path):
    if not HAS_TRT:
        pytest.skip("TensorRT not installed")
    from deployconv.engine import EngineSpec, build_engine
    from deployconv.runtime.cuda_io import device_facts
    from deployconv.runtime.trt import benchmark_trt
    from tests.runtime import classifier_reference

    if device_facts() is None:
        pytest.skip("no CUDA device (or no torch/cuda-python to reach it)")
    onnx_path = save(tiny_classifier(), tmp_path / "model.onnx")
    build_engine(onnx_path, EngineSpec("trt-fp32", max_batch=8), tmp_path)
    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)
    for graph in (False, True):
        with TrtRunner(tmp_path / "engine.plan", cuda_graph=graph) as r:
            assert r.input_metadata()["x"].shape == (None, 3, 8, 8)
            y = r.infer({"x": x})["logits"]
            np.testing.assert_allclose(y, classifier_reference(x), rtol=1e-3, atol=1e-3)
            assert r.last_split is not None and r.last_split.compute_ms >= 0
            with pytest.raises(BadInputError, match=r"allowed 1\.\.8"):
                r.infer({"x": np.zeros((9, 3, 8, 8), np.float32)})
            np.testing.assert_allclose(r.infer({"x": x[:1]})["logits"], classifier_reference(x[:1]), rtol=1e-3, atol=1e-3)
    result = benchmark_trt(TrtRunner(tmp_path / "engine.plan"), {"x": x}, iters=20, warmup_s=0.1)
    assert len(result.bench.samples_ms) == 20 and result.split.compute.count == 20
