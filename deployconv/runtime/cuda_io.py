"""CUDA memory, streams, events and graphs for the TensorRT runner: through torch when it has CUDA, else
through cuda-python (`cuda.bindings.runtime`, or the older `cuda.cudart`). A Jetson may have TensorRT and
cuda-python but no PyTorch, so neither is imported at module import; `choose_backend` is the only decision
here and it is pure. Everything else is a thin binding: allocate, copy on one stream, time with events,
capture and replay a CUDA graph.
"""

from __future__ import annotations

import ctypes
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from deployconv.core.errors import BadInputError, MissingEnvironmentError

BACKENDS = ("auto", "torch", "cuda-python")


@dataclass(frozen=True)
class DeviceFacts:
    name: str
    sm: str  # compute capability "major.minor", e.g. "8.7" for Orin
    total_memory_mib: int | None
    backend: str

    @property
    def sm_major(self) -> int:
        return int(self.sm.split(".")[0])

    @property
    def sm_number(self) -> int:
        """The SM as targets write it: 87 for "8.7"."""
        major, minor = self.sm.split(".")
        return int(major) * 10 + int(minor)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DeviceBuffer:
    ptr: int
    nbytes: int
    owner: Any = None  # what keeps the memory alive (a torch tensor) or None (freed by the backend)


@dataclass
class HostBuffer:
    """Page-locked host memory as a flat uint8 numpy array (`array`), so copies can be asynchronous."""

    array: np.ndarray
    ptr: int
    nbytes: int
    owner: Any = None


def choose_backend(requested: str, *, torch_cuda: bool, cuda_python: bool) -> str:
    """The I/O backend for `requested` ("auto" | "torch" | "cuda-python") given what is present."""
    if requested not in BACKENDS:
        raise BadInputError(f"unknown CUDA I/O backend {requested!r}", fix=f"choose one of {', '.join(BACKENDS)}")
    if requested in ("auto", "torch") and torch_cuda:
        return "torch"
    if requested in ("auto", "cuda-python") and cuda_python:
        return "cuda-python"
    if requested == "torch":
        raise MissingEnvironmentError("PyTorch with CUDA is not available for TensorRT I/O",
                                      fix="install a CUDA build of torch, or use the cuda-python backend")
    if requested == "cuda-python":
        raise MissingEnvironmentError("cuda-python is not installed (cuda.bindings / cuda.cudart)",
                                      fix="pip install cuda-python (matching the CUDA major of TensorRT)")
    raise MissingEnvironmentError(
        "no CUDA binding for TensorRT I/O: neither PyTorch with CUDA nor cuda-python is usable here",
        why="the TensorRT runner needs device memory, a stream and events",
        fix="pip install cuda-python (matching the CUDA major of TensorRT), or a CUDA build of torch; "
            "`deployconv doctor` shows what is found")


def _torch_cuda() -> Any | None:
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return None
    try:
        return torch if torch.cuda.is_available() else None
    except Exception:  # a broken CUDA install shows up here as a runtime error: treat as absent
        return None


def _cudart() -> Any | None:
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


class CudaIO(ABC):
    """One device, one stream. All copies and timing events go on `stream_handle` (an int, what TensorRT's
    `execute_async_v3` takes)."""

    backend: str
    stream_handle: int

    @abstractmethod
    def alloc_device(self, nbytes: int) -> DeviceBuffer: ...
    @abstractmethod
    def alloc_host(self, nbytes: int) -> HostBuffer: ...
    @abstractmethod
    def free(self, buf: DeviceBuffer | HostBuffer) -> None: ...
    @abstractmethod
    def h2d(self, dst: DeviceBuffer, src: HostBuffer, nbytes: int) -> None: ...
    @abstractmethod
    def d2h(self, dst: HostBuffer, src: DeviceBuffer, nbytes: int) -> None: ...
    @abstractmethod
    def new_event(self) -> Any: ...
    @abstractmethod
    def record(self, event: Any) -> None: ...
    @abstractmethod
    def elapsed_ms(self, start: Any, end: Any) -> float: ...
    @abstractmethod
    def synchronize(self) -> None: ...
    @abstractmethod
    def capture(self, enqueue: Callable[[int], None]) -> Any:
        """A CUDA graph of what `enqueue(stream_handle)` puts on the stream."""
    @abstractmethod
    def release_graph(self, graph: Any) -> None:
        """Destroy a graph `capture` returned (a new input shape needs a new graph; the old one goes)."""
    @abstractmethod
    def launch(self, graph: Any) -> None: ...
    @abstractmethod
    def device_facts(self) -> DeviceFacts: ...
    @abstractmethod
    def close(self) -> None: ...


class TorchCudaIO(CudaIO):
    backend = "torch"

    def __init__(self, torch: Any, device: int = 0):
        self.torch = torch
        self.device = torch.device("cuda", device)
        # TensorRT deserializes and enqueues on the *current* device: make it `device` (cudaSetDevice in the
        # cuda-python backend), or a runner for GPU 1 builds its context on GPU 0.
        torch.cuda.set_device(self.device)
        self.stream = torch.cuda.Stream(device=self.device)
        self.stream_handle = int(self.stream.cuda_stream)

    def alloc_device(self, nbytes: int) -> DeviceBuffer:
        t = self.torch.empty(max(nbytes, 1), dtype=self.torch.uint8, device=self.device)
        return DeviceBuffer(int(t.data_ptr()), nbytes, t)

    def alloc_host(self, nbytes: int) -> HostBuffer:
        t = self.torch.empty(max(nbytes, 1), dtype=self.torch.uint8, pin_memory=True)
        return HostBuffer(t.numpy(), int(t.data_ptr()), nbytes, t)

    def free(self, buf: DeviceBuffer | HostBuffer) -> None:
        buf.owner = None  # the caching allocator takes it back

    def h2d(self, dst: DeviceBuffer, src: HostBuffer, nbytes: int) -> None:
        with self.torch.cuda.stream(self.stream):
            dst.owner[:nbytes].copy_(src.owner[:nbytes], non_blocking=True)

    def d2h(self, dst: HostBuffer, src: DeviceBuffer, nbytes: int) -> None:
        with self.torch.cuda.stream(self.stream):
            dst.owner[:nbytes].copy_(src.owner[:nbytes], non_blocking=True)

    def new_event(self) -> Any:
        return self.torch.cuda.Event(enable_timing=True)

    def record(self, event: Any) -> None:
        event.record(self.stream)

    def elapsed_ms(self, start: Any, end: Any) -> float:
        return float(start.elapsed_time(end))

    def synchronize(self) -> None:
        self.stream.synchronize()

    def capture(self, enqueue: Callable[[int], None]) -> Any:
        graph = self.torch.cuda.CUDAGraph()
        with self.torch.cuda.graph(graph, stream=self.stream):
            enqueue(self.stream_handle)
        return graph

    def release_graph(self, graph: Any) -> None:
        graph.reset()

    def launch(self, graph: Any) -> None:
        with self.torch.cuda.stream(self.stream):
            graph.replay()

    def device_facts(self) -> DeviceFacts:
        p = self.torch.cuda.get_device_properties(self.device)
        return DeviceFacts(p.name, f"{p.major}.{p.minor}", int(p.total_memory) >> 20, self.backend)

    def close(self) -> None:
        self.stream.synchronize()


class CudaPythonIO(CudaIO):
    backend = "cuda-python"

    def __init__(self, cudart: Any, device: int = 0):
        self.rt = cudart
        self.device = device
        self._check(cudart.cudaSetDevice(device))
        self.stream = self._check(cudart.cudaStreamCreate())
        self.stream_handle = int(self.stream)
        self._device: dict[int, int] = {}
        self._host: dict[int, int] = {}
        self._events: list[Any] = []
        self._graphs: list[Any] = []

    def _check(self, result: Any) -> Any:
        err, *rest = result if isinstance(result, tuple) else (result,)
        if err != self.rt.cudaError_t.cudaSuccess:
            _, name = self.rt.cudaGetErrorName(err)
            raise RuntimeError(f"CUDA error {name.decode() if isinstance(name, bytes) else name}")
        return rest[0] if len(rest) == 1 else (tuple(rest) or None)

    def alloc_device(self, nbytes: int) -> DeviceBuffer:
        ptr = int(self._check(self.rt.cudaMalloc(max(nbytes, 1))))
        self._device[ptr] = nbytes
        return DeviceBuffer(ptr, nbytes)

    def alloc_host(self, nbytes: int) -> HostBuffer:
        n = max(nbytes, 1)
        ptr = int(self._check(self.rt.cudaMallocHost(n)))
        self._host[ptr] = n
        array = np.ctypeslib.as_array(ctypes.cast(ctypes.c_void_p(ptr), ctypes.POINTER(ctypes.c_ubyte)), (n,))
        return HostBuffer(array, ptr, nbytes)

    def free(self, buf: DeviceBuffer | HostBuffer) -> None:
        if isinstance(buf, DeviceBuffer) and self._device.pop(buf.ptr, None) is not None:
            self._check(self.rt.cudaFree(buf.ptr))
        elif isinstance(buf, HostBuffer) and self._host.pop(buf.ptr, None) is not None:
            self._check(self.rt.cudaFreeHost(buf.ptr))

    def h2d(self, dst: DeviceBuffer, src: HostBuffer, nbytes: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, kind, self.stream))

    def d2h(self, dst: HostBuffer, src: DeviceBuffer, nbytes: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.rt.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, kind, self.stream))

    def new_event(self) -> Any:
        event = self._check(self.rt.cudaEventCreate())
        self._events.append(event)
        return event

    def record(self, event: Any) -> None:
        self._check(self.rt.cudaEventRecord(event, self.stream))

    def elapsed_ms(self, start: Any, end: Any) -> float:
        return float(self._check(self.rt.cudaEventElapsedTime(start, end)))

    def synchronize(self) -> None:
        self._check(self.rt.cudaStreamSynchronize(self.stream))

    def capture(self, enqueue: Callable[[int], None]) -> Any:
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal
        self._check(self.rt.cudaStreamBeginCapture(self.stream, mode))
        try:
            enqueue(self.stream_handle)
        except BaseException:
            # always end the capture, or the stream stays unusable; destroy what it captured; and raise the
            # enqueue's error, not the (invalidated) capture's
            err, *rest = self.rt.cudaStreamEndCapture(self.stream)
            if err == self.rt.cudaError_t.cudaSuccess and rest and not _is_null(rest[0]):
                self.rt.cudaGraphDestroy(rest[0])  # an invalidated capture returns a NULL graph: nothing to free
            raise
        graph = self._check(self.rt.cudaStreamEndCapture(self.stream))
        try:
            exec_graph = self._check(self.rt.cudaGraphInstantiate(graph, 0))
        finally:
            self._check(self.rt.cudaGraphDestroy(graph))
        self._graphs.append(exec_graph)
        return exec_graph

    def release_graph(self, graph: Any) -> None:
        kept = [g for g in self._graphs if g is not graph]
        if len(kept) != len(self._graphs):
            self._graphs = kept
            self._check(self.rt.cudaGraphExecDestroy(graph))

    def launch(self, graph: Any) -> None:
        self._check(self.rt.cudaGraphLaunch(graph, self.stream))

    def device_facts(self) -> DeviceFacts:
        p = self._check(self.rt.cudaGetDeviceProperties(self.device))
        name = p.name.split(b"\0", 1)[0].decode() if isinstance(p.name, bytes) else str(p.name)
        return DeviceFacts(name, f"{p.major}.{p.minor}", int(p.totalGlobalMem) >> 20, self.backend)

    def close(self) -> None:
        self.synchronize()
        for g in self._graphs:
            self.rt.cudaGraphExecDestroy(g)
        for e in self._events:
            self.rt.cudaEventDestroy(e)
        for ptr in self._device:
            self.rt.cudaFree(ptr)
        for ptr in self._host:
            self.rt.cudaFreeHost(ptr)
        self._graphs, self._events, self._device, self._host = [], [], {}, {}
        self.rt.cudaStreamDestroy(self.stream)


def _is_null(handle: Any) -> bool:
    """A cuda-python handle (cudaGraph_t, ...) that wraps NULL, or None."""
    if handle is None:
        return True
    try:
        return int(handle) == 0
    except (TypeError, ValueError):
        return False


def open_cuda_io(backend: str = "auto", device: int = 0) -> CudaIO:
    """A CudaIO on `device`: torch when it has CUDA (and backend allows), else cuda-python.
    MissingEnvironmentError (exit 3) when neither works."""
    torch = _torch_cuda() if backend in ("auto", "torch") else None
    cudart = _cudart() if backend in ("auto", "cuda-python") and torch is None else None
    chosen = choose_backend(backend, torch_cuda=torch is not None, cuda_python=cudart is not None)
    if chosen == "torch":
        return TorchCudaIO(torch, device)
    try:
        return CudaPythonIO(cudart, device)
    except RuntimeError as e:  # no device, driver too old: the environment, not a bug
        raise MissingEnvironmentError(f"cuda-python cannot open CUDA device {device}", why=str(e),
                                      fix="check the GPU and driver with `nvidia-smi` / `deployconv doctor`") from None


def device_facts(device: int = 0) -> DeviceFacts | None:
    """Name and compute capability of `device` for a manifest, or None when no CUDA binding can tell."""
    try:
        io = open_cuda_io("auto", device)
    except (MissingEnvironmentError, RuntimeError):
        return None
    try:
        return io.device_facts()
    finally:
        io.close()
