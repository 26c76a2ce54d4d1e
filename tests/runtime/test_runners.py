"""Runners: one interface (activate / infer / deactivate, input checks, timing) over ONNX Runtime and PyTorch;
load_runner's routing; seeded random feeds; clear errors for corrupt or unsupported models."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from deployconv.core.errors import EXIT_BAD_INPUT, EXIT_MISSING_ENV, BadInputError, MissingEnvironmentError
from deployconv.runtime import (
    OrtRunner,
    Runner,
    TensorMeta,
    TorchRunner,
    load_runner,
    random_feed,
    resolve_artifact,
)
from tests.runtime import (
    CLASSES,
    classifier_reference,
    plugin_node_graph,
    save,
    tiny_classifier,
    two_inputs,
)

HAS_CUDA_EP = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.fixture
def tiny(tmp_path):
    return save(tiny_classifier(), tmp_path / "tiny.onnx")


def x_of(batch: int, dtype=np.float32, hw=(8, 8)) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((batch, 3, *hw)).astype(dtype)


# --- ONNX Runtime runner ---

def test_ort_runner_runs_and_matches_numpy(tiny):
    with OrtRunner(tiny, threads=1) as r:
        assert r.is_active
        meta = r.input_metadata()
        assert list(meta) == ["x"]
        assert meta["x"].dtype == np.float32 and meta["x"].shape == ("N", 3, 8, 8)
        assert r.output_names() == ["logits"]
        for batch in (1, 5):  # dynamic batch
            x = x_of(batch)
            out = r.infer({"x": x})
            assert set(out) == {"logits"} and out["logits"].shape == (batch, CLASSES)
            np.testing.assert_allclose(out["logits"], classifier_reference(x), rtol=1e-5, atol=1e-5)
        assert r.last_inference_ns is not None and r.last_inference_ns >= 0
        assert r.last_inference_time == pytest.approx(r.last_inference_ns * 1e-9)
        assert r.inference_count == 2
    assert not r.is_active and r.session is None


def test_ort_session_settings(tiny):
    with OrtRunner(tiny, threads=1) as r:
        so = r.session.get_session_options()
        assert so.intra_op_num_threads == 1 and so.inter_op_num_threads == 1
        assert so.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
        assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        assert r.session.get_providers() == ["CPUExecutionProvider"]
        info = r.info()
    assert info["runtime"] == "onnxruntime" and info["version"] == ort.__version__
    assert info["threads"] == 1 and info["providers"] == ["CPUExecutionProvider"]
    assert info["graph_sha256"] == hashlib.sha256(tiny.read_bytes()).hexdigest()


def test_ort_runner_from_bytes_and_default_threads(tiny):
    data = tiny.read_bytes()
    r = OrtRunner(data)
    assert r.threads >= 1  # resolved to the CPUs this process may use, so it is recorded as a number
    assert r.graph_sha256 == hashlib.sha256(data).hexdigest()
    with r:
        x = x_of(2)
        np.testing.assert_allclose(r.infer({"x": x})["logits"], classifier_reference(x), rtol=1e-5, atol=1e-5)


def test_infer_needs_an_active_runner(tiny):
    r = OrtRunner(tiny)
    with pytest.raises(RuntimeError, match="active"):
        r.infer({"x": x_of(1)})
    r.activate()
    r.activate()  # idempotent
    r.deactivate()
    r.deactivate()
    assert not r.is_active


@pytest.mark.parametrize(("feed", "match"), [
    ({}, "missing input"),
    ({"x": x_of(1), "y": x_of(1)}, "unknown input"),
    ({"x": x_of(1, np.float64)}, "dtype float64, the model expects float32"),
    ({"x": np.zeros((1, 3, 8), np.float32)}, "rank 3"),
    ({"x": np.zeros((1, 4, 8, 8), np.float32)}, "dim 1 is 4, expected 3"),
    ({"x": x_of(1, hw=(8, 9))}, "dim 3 is 9, expected 8"),
    ({"x": [[1.0]]}, "not a numpy array"),
])
def test_input_checks(tiny, feed, match):
    with OrtRunner(tiny, threads=1) as r, pytest.raises(BadInputError, match=match) as e:
        r.infer(feed)
    assert e.value.exit_code == EXIT_BAD_INPUT


def test_corrupt_and_truncated_models_are_bad_input(tmp_path, tiny):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf")
    for src in (junk, tiny.read_bytes()[:40]):
        with pytest.raises(BadInputError, match="not a readable ONNX model") as e:
            OrtRunner(src).activate()
        assert "fix:" in e.value.render()
    with pytest.raises(BadInputError, match="no such ONNX file"):
        OrtRunner(tmp_path / "missing.onnx")


def test_plugin_nodes_and_too_new_ir_are_explained(tmp_path):
    with pytest.raises(BadInputError, match="cannot run an op") as e:
        OrtRunner(save(plugin_node_graph(), tmp_path / "plugin.onnx")).activate()
    assert "TensorRT" in e.value.render()
    with pytest.raises(BadInputError, match="newer than this ONNX Runtime"):
        OrtRunner(tiny_classifier(ir_version=99).SerializeToString()).activate()


@pytest.mark.skipif(HAS_CUDA_EP, reason="onnxruntime-gpu is installed here: the CUDA provider exists")
def test_cuda_provider_absent_is_missing_environment(tiny):
    with pytest.raises(MissingEnvironmentError, match="CUDAExecutionProvider") as e:
        OrtRunner(tiny, providers=["CUDAExecutionProvider"]).activate()
    assert e.value.exit_code == EXIT_MISSING_ENV
    with pytest.raises(MissingEnvironmentError):
        load_runner(tiny, runtime="ort-cuda")


# --- load_runner routing ---

def test_load_runner_routes(tmp_path, tiny):
    r = load_runner(tiny, threads=1)
    assert isinstance(r, OrtRunner) and not r.is_active and r.threads == 1
    out_dir = tmp_path / "export"
    save(tiny_classifier(), out_dir / "model.onnx")
    r = load_runner(out_dir)
    assert isinstance(r, OrtRunner) and r.source == str(out_dir / "model.onnx")
    assert resolve_artifact(out_dir, "trt") == out_dir / "model.onnx"  # no engine yet: built from the ONNX


@pytest.mark.parametrize("name", ["engine.plan", "model.engine"])
def test_engines_need_tensorrt(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"\0" * 16)
    with pytest.raises(MissingEnvironmentError, match="TensorRT is not installed") as e:
        load_runner(p)
    assert e.value.exit_code == EXIT_MISSING_ENV


def test_trt_runtime_and_bad_artifacts(tmp_path, tiny):
    with pytest.raises(MissingEnvironmentError, match="TensorRT"):
        load_runner(tiny, runtime="trt")
    with pytest.raises(BadInputError, match="unknown runtime"):
        load_runner(tiny, runtime="tvm")
    with pytest.raises(BadInputError, match="no such file"):
        load_runner(tmp_path / "nope.onnx")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match=r"has no model\.onnx"):
        load_runner(tmp_path / "empty")
    txt = tmp_path / "weights.txt"
    txt.write_text("x")
    with pytest.raises(BadInputError, match="not a model file"):
        load_runner(txt)


# --- random feeds from metadata ---

def test_random_feed_is_seeded_and_follows_metadata():
    meta = {"x": TensorMeta(np.dtype(np.float32), ("N", 3, 8, 8)), "idx": TensorMeta(np.dtype(np.int64), ("N",)),
            "m": TensorMeta(np.dtype(np.bool_), (2,))}
    a = random_feed(meta, batch=4, seed=3)
    b = random_feed(meta, batch=4, seed=3)
    assert a["x"].shape == (4, 3, 8, 8) and a["x"].dtype == np.float32
    assert a["idx"].shape == (4,) and a["idx"].dtype == np.int64 and a["m"].dtype == np.bool_
    for n in meta:
        np.testing.assert_array_equal(a[n], b[n])
    assert not np.array_equal(a["x"], random_feed(meta, batch=4, seed=4)["x"])
    assert random_feed(meta)["x"].shape == (1, 3, 8, 8)  # dynamic batch defaults to 1


def test_random_feed_errors_ask_for_what_is_missing():
    dyn_hw = {"x": TensorMeta(np.dtype(np.float32), ("N", 3, "H", None))}
    with pytest.raises(BadInputError, match="dynamic dim 2") as e:
        random_feed(dyn_hw, batch=2)
    assert "--shape x=?x3x?x?" in e.value.render()
    assert random_feed(dyn_hw, shapes={"x": (2, 3, 16, 12)})["x"].shape == (2, 3, 16, 12)
    static = {"x": TensorMeta(np.dtype(np.float32), (2, 3))}
    assert random_feed(static)["x"].shape == (2, 3)
    with pytest.raises(BadInputError, match="static batch of 2"):
        random_feed(static, batch=8)
    with pytest.raises(BadInputError, match="unknown input"):
        random_feed(static, shapes={"y": (1,)})
    with pytest.raises(BadInputError, match="numpy cannot make"):
        random_feed({"x": TensorMeta(None, (1,))})


def test_random_feed_for_an_ort_model(tmp_path):
    with OrtRunner(save(two_inputs(), tmp_path / "two.onnx"), threads=1) as r:
        feed = random_feed(r.input_metadata(), batch=3)
        out = r.infer(feed)
    np.testing.assert_array_equal(out["y"], feed["a"] * 2)
    np.testing.assert_array_equal(out["idx_out"], feed["idx"] + 1)


# --- PyTorch runner ---

class TwoHeads(nn.Module):
    def __init__(self, as_dict: bool = False):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.drop = nn.Dropout(0.9)  # in eval mode: identity, so outputs are deterministic
        self.as_dict = as_dict

    def forward(self, a, b):
        y = self.drop(self.fc(a))
        return {"sum": y + b, "y": y} if self.as_dict else (y, y + b)


def test_torch_runner_names_outputs_and_evaluates():
    m = TwoHeads().train()
    feed = {"a": np.ones((2, 4), np.float32), "b": np.full((2, 3), 2, np.float32)}
    with torch.no_grad():
        expected = m.fc(torch.from_numpy(feed["a"])).numpy()
    with TorchRunner(m, ["a", "b"], ["y", "sum"]) as r:
        assert not m.training
        out = r.infer(feed)
        assert r.info()["runtime"] == "torch" and r.info()["device"] == "cpu"
    assert m.training  # restored
    np.testing.assert_allclose(out["y"], expected, rtol=1e-6)
    np.testing.assert_allclose(out["sum"], expected + 2, rtol=1e-6)
    with TorchRunner(TwoHeads(as_dict=True), ["a", "b"], ["y", "sum"]) as r:
        assert set(r.infer(feed)) == {"y", "sum"}


def test_torch_runner_checks():
    meta = {"a": TensorMeta(np.dtype(np.float32), ("N", 4)), "b": TensorMeta(np.dtype(np.float32), ("N", 3))}
    with TorchRunner(TwoHeads(), ["a", "b"], ["y", "sum"], input_metadata=meta) as r:
        with pytest.raises(BadInputError, match="dim 1 is 5"):
            r.infer({"a": np.ones((2, 5), np.float32), "b": np.ones((2, 3), np.float32)})
        with pytest.raises(BadInputError, match="missing input"):
            r.infer({"a": np.ones((2, 4), np.float32)})
    with TorchRunner(TwoHeads(), ["a", "b"], ["only_one"]) as r, pytest.raises(BadInputError, match="2 output"):
        r.infer({"a": np.ones((1, 4), np.float32), "b": np.ones((1, 3), np.float32)})


def test_torch_and_ort_runners_agree(tiny):
    """The same interface on both sides: a parity stage is two runners and one feed."""
    class Tiny(nn.Module):
        def forward(self, x):
            return torch.from_numpy(np.ascontiguousarray(classifier_reference(x.numpy())))

    feed = {"x": x_of(3)}
    with OrtRunner(tiny, threads=1) as o, TorchRunner(Tiny(), ["x"], ["logits"]) as t:
        assert isinstance(o, Runner) and isinstance(t, Runner)
        np.testing.assert_allclose(o.infer(feed)["logits"], t.infer(feed)["logits"], rtol=1e-5, atol=1e-5)


def test_external_data_is_fingerprinted(tmp_path):
    """Weights saved beside the graph (model.onnx.data) change the external-data hash, not the graph hash."""

    def save_external(model, d):
        d.mkdir()
        onnx.save(model, str(d / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                  location="model.onnx.data", size_threshold=0)
        return d / "model.onnx"

    m1 = tiny_classifier()
    m2 = tiny_classifier()
    m2.graph.initializer[0].raw_data = (np.frombuffer(m2.graph.initializer[0].raw_data, np.float32) + 1).tobytes()
    a, b = OrtRunner(save_external(m1, tmp_path / "a")), OrtRunner(save_external(m2, tmp_path / "b"))
    assert a.graph_sha256 == b.graph_sha256
    assert a.external_data_sha256 and b.external_data_sha256 and a.external_data_sha256 != b.external_data_sha256
    with a:
        x = x_of(2)
        np.testing.assert_allclose(a.infer({"x": x})["logits"], classifier_reference(x), rtol=1e-5, atol=1e-5)
        assert a.info()["external_data_sha256"] == a.external_data_sha256
    assert OrtRunner(tmp_path / "a" / "model.onnx").external_data_sha256 == a.external_data_sha256  # stable
    assert OrtRunner(save(tiny_classifier(), tmp_path / "inline.onnx")).external_data_sha256 is None
    (tmp_path / "b" / "model.onnx.data").unlink()
    with pytest.raises(BadInputError, match=r"external data file model\.onnx\.data"):
        OrtRunner(tmp_path / "b" / "model.onnx")
