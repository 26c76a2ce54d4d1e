"""CUDA I/O for the TensorRT runner: which binding is chosen (pure), the exit-3 error where none works, and
a round trip through device memory where a GPU is (marker gpu)."""

from __future__ import annotations

import numpy as np
import pytest

from deployconv.errors import EXIT_MISSING_ENV, BadInputError, MissingEnvironmentError
from deployconv.runtime.cuda_io import choose_backend, device_facts, open_cuda_io


@pytest.mark.parametrize("requested, torch_cuda, cuda_python, expected", [
    ("auto", True, True, "torch"),
    ("auto", False, True, "cuda-python"),
    ("auto", True, False, "torch"),
    ("torch", True, True, "torch"),
    ("cuda-python", True, True, "cuda-python"),
    ("cuda-python", False, True, "cuda-python"),
])
def test_choose_backend(requested, torch_cuda, cuda_python, expected):
    assert choose_backend(requested, torch_cuda=torch_cuda, cuda_python=cuda_python) == expected


@pytest.mark.parametrize("requested, torch_cuda, cuda_python, needle", [
    ("auto", False, False, "neither PyTorch with CUDA nor cuda-python"),
    ("torch", False, True, "PyTorch with CUDA is not available"),
    ("cuda-python", True, False, "cuda-python is not installed"),
])
def test_choose_backend_missing(requested, torch_cuda, cuda_python, needle):
    with pytest.raises(MissingEnvironmentError) as e:
        choose_backend(requested, torch_cuda=torch_cuda, cuda_python=cuda_python)
    assert needle in e.value.what and e.value.exit_code == EXIT_MISSING_ENV


def test_unknown_backend_is_bad_input():
    with pytest.raises(BadInputError, match="unknown CUDA I/O backend"):
        choose_backend("opencl", torch_cuda=True, cuda_python=True)


def _cuda_reachable() -> bool:
    return device_facts() is not None


def test_no_binding_here_is_exit_3():
    if _cuda_reachable():
        pytest.skip("a CUDA device is reachable here: this tests the path without one")
    with pytest.raises(MissingEnvironmentError) as e:
        open_cuda_io()
    assert e.value.exit_code == EXIT_MISSING_ENV
    assert device_facts() is None


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["torch", "cuda-python"])
def test_round_trip_through_the_device(backend):
    try:
        io = open_cuda_io(backend)
    except MissingEnvironmentError as e:
        pytest.skip(f"{backend} cannot reach a GPU here: {e.what}")
    try:
        data = np.arange(1000, dtype=np.float32)
        host_in, host_out = io.alloc_host(data.nbytes), io.alloc_host(data.nbytes)
        dev = io.alloc_device(data.nbytes)
        host_in.array[:data.nbytes] = data.view(np.uint8)
        start, end = io.new_event(), io.new_event()
        io.record(start)
        io.h2d(dev, host_in, data.nbytes)
        io.d2h(host_out, dev, data.nbytes)
        io.record(end)
        io.synchronize()
        np.testing.assert_array_equal(host_out.array[:data.nbytes].view(np.float32), data)
        assert io.elapsed_ms(start, end) >= 0
        facts = io.device_facts()
        assert facts.name and facts.sm_major >= 5 and facts.backend == backend
    finally:
        io.close()
