"""A fake of the few `tensorrt` binding names deployconv calls, and a numpy-backed CudaIO.

What this is for: testing OUR thin layer's decisions (which calls it makes, in which order, that it checks the
return values) on a machine without TensorRT or a GPU. What it is not: a check of TensorRT. Nothing a test
proves with it says TensorRT behaves so; the names and return conventions are copied from the bindings' source
(NVIDIA/TensorRT python/src/infer/pyCore.cpp, pyPlugin.cpp, parsers/pyOnnx.cpp; NvInferRuntimeCommon.h for
loadLibrary's "fails ... if any of the plugins are already registered"), and that is all that ties them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import numpy as np

from deployconv.runtime.cuda_io import CudaIO, DeviceBuffer, DeviceFacts, HostBuffer


def _enum(name: str, *members: str) -> type[enum.IntEnum]:
    return enum.IntEnum(name, {m: i for i, m in enumerate(members)})  # type: ignore[return-value]


class FakeParserError:
    """pyOnnx.cpp's ParserError; `legacy=True` is TensorRT 8.5/8.6, which has no node_name / node_operator."""

    def __init__(self, node: int, name: str, op: str, desc: str):
        self._node, self._name, self._op, self._desc = node, name, op, desc

    def code(self) -> Any:
        return FakeTensorRT.ErrorCode.UNSUPPORTED_NODE

    def desc(self) -> str:
        return self._desc

    def node(self) -> int:
        return self._node

    def node_name(self) -> str:
        return self._name

    def node_operator(self) -> str:
        return self._op


class LegacyParserError:
    """TensorRT 8.x's ParserError: code, desc, file, line, func, node; nothing else (pyOnnx.cpp, v8.6.1)."""

    def __init__(self, node: int, desc: str):
        self._node, self._desc = node, desc

    def code(self) -> Any:
        return FakeTensorRT.ErrorCode.UNSUPPORTED_NODE

    def desc(self) -> str:
        return self._desc

    def node(self) -> int:
        return self._node


class Recorded:
    """An object whose attribute writes are logged, in order, into the fake's call list."""

    def __init__(self, fake: FakeTensorRT, kind: str):
        object.__setattr__(self, "_fake", fake)
        object.__setattr__(self, "_kind", kind)

    def __setattr__(self, name: str, value: Any) -> None:
        self._fake.calls.append((f"{self._kind}.{name}", value))
        object.__setattr__(self, name, value)


@dataclass
class FakeTensorRT:
    """Knobs: `profile_index` (what add_optimization_profile returns), `address_ok` (set_tensor_address),
    `parse_errors` (None: the parse succeeds), `inspector_json`, `engine_io` (name -> (is_input, shape)),
    `profile_bounds` (the engine's optimization profiles: (min, opt, max) of each dynamic dim, one per profile)."""

    __version__: str = "10.3.0"
    profile_index: int = 0
    address_ok: bool = True
    parse_errors: list[Any] | None = None
    inspector_json: str = '{"Layers": [], "Bindings": []}'
    engine_io: dict[str, tuple[bool, tuple[int, ...]]] = field(
        default_factory=lambda: {"x": (True, (-1, 4)), "y": (False, (-1, 4))})
    num_dla_cores: int = 2
    profile_bounds: list[tuple[int, int, int]] = field(default_factory=lambda: [(1, 4, 8)])
    calls: list[tuple[str, Any]] = field(default_factory=list)
    registered: dict[str, str] = field(default_factory=dict)  # plugin name -> library path
    plugins_of: dict[str, tuple[str, ...]] = field(default_factory=dict)  # library path -> plugin names

    ErrorCode = _enum("ErrorCode", "SUCCESS", "UNSUPPORTED_NODE")
    NetworkDefinitionCreationFlag = _enum("NetworkDefinitionCreationFlag", "EXPLICIT_BATCH", "STRONGLY_TYPED")
    BuilderFlag = _enum("BuilderFlag", "FP16", "INT8", "BF16", "GPU_FALLBACK", "VERSION_COMPATIBLE",
                        "EXCLUDE_LEAN_RUNTIME", "STRICT_TYPES")
    MemoryPoolType = _enum("MemoryPoolType", "WORKSPACE", "DLA_MANAGED_SRAM", "DLA_LOCAL_DRAM", "DLA_GLOBAL_DRAM")
    ProfilingVerbosity = _enum("ProfilingVerbosity", "LAYER_NAMES_ONLY", "NONE", "DETAILED")
    LayerInformationFormat = _enum("LayerInformationFormat", "ONELINE", "JSON")
    OnnxParserFlag = _enum("OnnxParserFlag", "NATIVE_INSTANCENORM", "ENABLE_UINT8_AND_ASYMMETRIC_QUANTIZATION_DLA",
                           "REPORT_CAPABILITY_DLA", "ENABLE_PLUGIN_OVERRIDE", "ADJUST_FOR_DLA")
    DeviceType = _enum("DeviceType", "GPU", "DLA")
    TensorIOMode = _enum("TensorIOMode", "NONE", "INPUT", "OUTPUT")
    DataType = _enum("DataType", "FLOAT", "HALF", "INT8", "INT32", "BOOL")

    class ILogger:
        Severity = _enum("Severity", "INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE")

        def __init__(self) -> None:
            pass

    # --- plugin registry (pyPlugin.cpp: load_library returns None on failure) ---
    def get_plugin_registry(self) -> Any:
        fake = self

        class Registry:
            def load_library(self, path: str) -> Any:
                fake.calls.append(("load_library", path))
                names = fake.plugins_of.get(path, ("DeployconvSKA",))
                if any(n in fake.registered for n in names):  # NvInferRuntimeCommon.h: already registered
                    return None
                for n in names:
                    fake.registered[n] = path
                return object()

        return Registry()

    # --- builder ---
    def Builder(self, logger: Any) -> Any:
        fake = self

        class Config(Recorded):
            def set_flag(self, flag: Any) -> None:
                fake.calls.append(("config.set_flag", flag.name))

            def set_memory_pool_limit(self, pool: Any, size: int) -> None:
                fake.calls.append(("config.set_memory_pool_limit", (pool.name, size)))

            def add_optimization_profile(self, profile: Any) -> int:
                fake.calls.append(("config.add_optimization_profile", profile.shapes))
                return fake.profile_index

            def create_timing_cache(self, data: bytes) -> Any:
                return object()

            def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
                return True

            def get_timing_cache(self) -> Any:
                class Cache:
                    def serialize(self) -> bytes:
                        return b"cache"

                return Cache()

        class Profile:
            def __init__(self) -> None:
                self.shapes: dict[str, Any] = {}

            def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
                self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))

        class Builder:
            num_DLA_cores = fake.num_dla_cores

            def create_network(self, flags: int) -> Any:
                fake.calls.append(("create_network", flags))
                return object()

            def create_builder_config(self) -> Any:
                return Config(fake, "config")

            def create_optimization_profile(self) -> Any:
                return Profile()

            def build_serialized_network(self, network: Any, config: Any) -> bytes:
                fake.calls.append(("build_serialized_network", None))
                return b"fake plan bytes"

        return Builder()

    def OnnxParser(self, network: Any, logger: Any) -> Any:
        fake = self

        class Parser:
            def set_flag(self, flag: Any) -> None:
                fake.calls.append(("parser.set_flag", flag.name))

            def parse_from_file(self, path: str) -> bool:
                fake.calls.append(("parse_from_file", path))
                return fake.parse_errors is None

            @property
            def num_errors(self) -> int:
                return len(fake.parse_errors or ())

            def get_error(self, k: int) -> Any:
                return (fake.parse_errors or [])[k]

        return Parser()

    # --- runtime ---
    def Runtime(self, logger: Any) -> Any:
        fake = self

        class Runtime(Recorded):
            def deserialize_cuda_engine(self, data: bytes) -> Any:
                fake.calls.append(("deserialize_cuda_engine", len(data)))
                return FakeEngine(fake)

        return Runtime(fake, "runtime")


class FakeEngine:
    """An engine computing y = x (an identity), with the tensor API the runner calls (pyCore.cpp)."""

    def __init__(self, fake: FakeTensorRT):
        self.fake = fake
        self.names = list(fake.engine_io)

    @property
    def num_io_tensors(self) -> int:
        return len(self.names)

    def get_tensor_name(self, k: int) -> str:
        return self.names[k]

    def get_tensor_mode(self, name: str) -> Any:
        return self.fake.TensorIOMode.INPUT if self.fake.engine_io[name][0] else self.fake.TensorIOMode.OUTPUT

    def is_shape_inference_io(self, name: str) -> bool:
        return False

    def get_tensor_dtype(self, name: str) -> Any:
        return self.fake.DataType.FLOAT

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.fake.engine_io[name][1]

    @property
    def num_optimization_profiles(self) -> int:
        return len(self.fake.profile_bounds)

    def get_tensor_profile_shape(self, name: str, profile: int) -> tuple[tuple[int, ...], ...]:
        shape = self.fake.engine_io[name][1]
        bounds = self.fake.profile_bounds[profile]
        return tuple(tuple(b if d < 0 else d for d in shape) for b in bounds)  # type: ignore[return-value]

    def create_execution_context(self) -> Any:
        return FakeContext(self)

    def create_engine_inspector(self) -> Any:
        fake = self.fake

        class Inspector:
            def get_engine_information(self, fmt: Any) -> str:
                fake.calls.append(("get_engine_information", fmt.name))
                return fake.inspector_json

        return Inspector()


class FakeContext:
    """Binds addresses to FakeIO buffers; `execute_async_v3` copies each input into the output of its row."""

    def __init__(self, engine: FakeEngine):
        self.engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: Any) -> bool:
        self.shapes[name] = tuple(shape)
        return True

    def set_optimization_profile_async(self, index: int, stream: int) -> bool:
        self.engine.fake.calls.append(("context.set_optimization_profile_async", index))
        return 0 <= index < len(self.engine.fake.profile_bounds)

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.shapes.get(name) or next(iter(self.shapes.values()))

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.engine.fake.calls.append(("set_tensor_address", name))
        self.addresses[name] = ptr
        return self.engine.fake.address_ok

    def execute_async_v3(self, stream: int) -> bool:
        io = FakeIO.current
        assert io is not None
        ins = [n for n in self.engine.names if self.engine.fake.engine_io[n][0]]
        outs = [n for n in self.engine.names if not self.engine.fake.engine_io[n][0]]
        for i, o in zip(ins, outs):
            src, dst = io.memory[self.addresses[i]], io.memory[self.addresses[o]]
            dst[:src.size] = src
        return True


class FakeIO(CudaIO):
    """A CudaIO on host memory: device buffers are numpy arrays keyed by a fake pointer. Counts live graphs."""

    backend = "fake"
    stream_handle = 7
    current: FakeIO | None = None

    def __init__(self) -> None:
        self._ptr = count(4096, 4096)
        self.memory: dict[int, np.ndarray] = {}
        self.live_graphs: set[int] = set()
        self._captured: dict[int, Any] = {}
        self._graph_ids = count(1)
        self.capture_fails = False
        self.closed = False
        FakeIO.current = self

    def alloc_device(self, nbytes: int) -> DeviceBuffer:
        ptr = next(self._ptr)
        self.memory[ptr] = np.zeros(max(nbytes, 1), np.uint8)
        return DeviceBuffer(ptr, nbytes)

    def alloc_host(self, nbytes: int) -> HostBuffer:
        ptr = next(self._ptr)
        arr = np.zeros(max(nbytes, 1), np.uint8)
        self.memory[ptr] = arr
        return HostBuffer(arr, ptr, nbytes)

    def free(self, buf: DeviceBuffer | HostBuffer) -> None:
        self.memory.pop(buf.ptr, None)

    def h2d(self, dst: DeviceBuffer, src: HostBuffer, nbytes: int) -> None:
        self.memory[dst.ptr][:nbytes] = src.array[:nbytes]

    def d2h(self, dst: HostBuffer, src: DeviceBuffer, nbytes: int) -> None:
        dst.array[:nbytes] = self.memory[src.ptr][:nbytes]

    def new_event(self) -> Any:
        return object()

    def record(self, event: Any) -> None:
        pass

    def elapsed_ms(self, start: Any, end: Any) -> float:
        return 0.25

    def synchronize(self) -> None:
        pass

    def capture(self, enqueue: Any) -> Any:
        if self.capture_fails:
            raise RuntimeError("capture not supported here")
        enqueue(self.stream_handle)
        g = next(self._graph_ids)
        self.live_graphs.add(g)
        self._captured[g] = enqueue
        return g

    def release_graph(self, graph: Any) -> None:
        self.live_graphs.discard(graph)

    def launch(self, graph: Any) -> None:
        assert graph in self.live_graphs, "launching a destroyed graph"
        FakeIO.current = self
        self._captured[graph](self.stream_handle)  # replay what was captured

    def device_facts(self) -> DeviceFacts:
        return DeviceFacts("Fake GPU", "8.7", 1024, self.backend)

    def close(self) -> None:
        self.closed = True


def install(monkeypatch: Any) -> FakeTensorRT:
    """Put a FakeTensorRT in sys.modules as `tensorrt` and make open_cuda_io hand out FakeIOs (listed in
    `fake.ios`). Call `deployconv.runtime.plugin_loading.forget_loaded(fake)` when done."""
    import importlib.machinery
    import sys

    fake = FakeTensorRT()
    fake.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    ios: list[FakeIO] = []

    def open_io(backend: str = "auto", device: int = 0) -> FakeIO:
        ios.append(FakeIO())
        return ios[-1]

    monkeypatch.setattr("deployconv.runtime.cuda_io.open_cuda_io", open_io)
    fake.ios = ios  # type: ignore[attr-defined]
    return fake
