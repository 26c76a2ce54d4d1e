"""ONNX Runtime on CUDA: exit 3 (never a silent CPU run) where onnxruntime-gpu's CUDA provider is absent;
a real run against the numpy reference where it is (marker gpu)."""

from __future__ import annotations

import numpy as np
import pytest

from deployconv.core.errors import EXIT_MISSING_ENV, MissingEnvironmentError
from deployconv.runtime.ort_cuda import OrtCudaRunner, cuda_provider_available
from tests.runtime import classifier_reference, save, tiny_classifier


@pytest.fixture
def tiny(tmp_path):
    return save(tiny_classifier(), tmp_path / "tiny.onnx")


def test_without_cuda_provider_is_exit_3(tiny):
    if cuda_provider_available():
        pytest.skip("onnxruntime-gpu's CUDA provider is available here: this tests the path without it")
    with pytest.raises(MissingEnvironmentError) as e:
        OrtCudaRunner(tiny)
    assert e.value.exit_code == EXIT_MISSING_ENV
    assert "CUDAExecutionProvider" in e.value.what and "onnxruntime-gpu" in e.value.fix


@pytest.mark.gpu
def test_runs_on_cuda(tiny):
    if not cuda_provider_available():
        pytest.skip("onnxruntime-gpu's CUDA provider is not available")
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with OrtCudaRunner(tiny, threads=1) as r:
        assert r.info()["providers"][0] == "CUDAExecutionProvider"
        np.testing.assert_allclose(r.infer({"x": x})["logits"], classifier_reference(x), rtol=1e-4, atol=1e-4)
