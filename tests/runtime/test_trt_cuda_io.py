"""CUDA I/O for the TensorRT runner: which binding is chosen (pure), the exit-3 error where none works, and
a round trip through device memory where a GPU is (marker gpu)."""

from __future__ import annotations

import numpy as np
import pytest

from deployconv.core.errors import EXIT_MISSING_ENV, BadInputError, MissingEnvironmentError
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


# --- the thin bindings, driven by fakes of torch.cuda and cuda-python's runtime module --------------------------
# These test OUR calls (which device is made current; that a failed capture is ended and its graph destroyed;
# that an old graph is destroyed); they do not verify CUDA. Names follow torch.cuda and cuda-python 13's
# cuda.bindings.runtime (every call returns (cudaError_t, *results)).

class _FakeTorch:
    def __init__(self):
        self.calls = []
        fake = self

        class Cuda:
            @staticmethod
            def set_device(device):
                fake.calls.append(("set_device", device))

            class Stream:
                def __init__(self, device):
                    fake.calls.append(("Stream", device))
                    self.cuda_stream = 99

        self.cuda = Cuda

    @staticmethod
    def device(kind, index):
        return (kind, index)


def test_torch_io_makes_the_device_current():
    from deployconv.runtime.cuda_io import TorchCudaIO

    torch = _FakeTorch()
    TorchCudaIO(torch, 1)
    assert torch.calls[0] == ("set_device", ("cuda", 1))  # before the stream, and so before TensorRT's context


class _FakeCudart:
    """cuda.bindings.runtime's calling convention: (error, *results)."""

    class cudaError_t:
        cudaSuccess = 0
        cudaErrorStreamCaptureInvalidated = 901

    class cudaStreamCaptureMode:
        cudaStreamCaptureModeGlobal = 0

    def __init__(self):
        self.calls, self.graphs, self.execs = [], set(), set()
        self.end_error = 0

    def cudaSetDevice(self, d):
        self.calls.append(("cudaSetDevice", d))
        return (0,)

    def cudaStreamCreate(self):
        return (0, 5)

    def cudaStreamBeginCapture(self, stream, mode):
        return (0,)

    def cudaStreamEndCapture(self, stream):
        g = f"graph{len(self.calls)}"
        self.calls.append(("cudaStreamEndCapture", g))
        if self.end_error:
            return (self.end_error, None)
        self.graphs.add(g)
        return (0, g)

    def cudaGraphInstantiate(self, graph, flags):
        e = f"exec-{graph}"
        self.execs.add(e)
        return (0, e)

    def cudaGraphDestroy(self, graph):
        self.graphs.discard(graph)
        return (0,)

    def cudaGraphExecDestroy(self, e):
        self.execs.discard(e)
        return (0,)

    def cudaGetErrorName(self, err):
        return (0, b"cudaErrorStreamCaptureInvalidated")


@pytest.mark.parametrize("end_error", [0, 901])
def test_failed_capture_is_ended_and_leaks_nothing(end_error):
    from deployconv.runtime.cuda_io import CudaPythonIO

    rt = _FakeCudart()
    rt.end_error = end_error
    io = CudaPythonIO(rt, 0)

    def enqueue(stream):
        raise RuntimeError("enqueue failed during capture")

    with pytest.raises(RuntimeError, match="enqueue failed during capture"):  # the enqueue's error, not CUDA's
        io.capture(enqueue)
    assert [c[0] for c in rt.calls].count("cudaStreamEndCapture") == 1
    assert rt.graphs == set() and rt.execs == set() and io._graphs == []


def test_old_graph_is_destroyed_when_released():
    from deployconv.runtime.cuda_io import CudaPythonIO

    rt = _FakeCudart()
    io = CudaPythonIO(rt, 0)
    first = io.capture(lambda s: None)
    io.release_graph(first)
    second = io.capture(lambda s: None)
    assert rt.execs == {second} and rt.graphs == set()
    io.release_graph(first)  # twice: a no-op
    assert rt.execs == {second}
