"""TensorRT runner: deserialize an engine.plan, run it with numpy in and out, and time H2D, GPU compute and
D2H separately with CUDA events (what trtexec reports as latency = H2D + GPU compute + D2H).

Torch-free and TensorRT-free at import: tensorrt is imported in `activate()`, device memory comes from
`runtime.cuda_io` (torch CUDA tensors when torch has CUDA, else cuda-python). The pure parts (dtype mapping,
profile checks, deserialization diagnosis, split statistics) are plain functions, tested on any machine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import deployconv.runtime.cuda_io as cuda_io
from deployconv.core.errors import BadInputError, CheckFailedError, MissingEnvironmentError
from deployconv.runtime.base import Runner, TensorMeta
from deployconv.runtime.load_policy import (
    apply_runtime_settings,
    plan_facts_near,
    plugins_to_load,
    runtime_settings,
)
from deployconv.runtime.ort import sha256_of
from deployconv.runtime.plugin_loading import load_plugin_libraries, resolve_library_paths
from deployconv.runtime.tensorrt_api import capturing_logger, import_tensorrt
from deployconv.runtime.trt_timing import (
    GPU_TIMER,
    SplitStats,
    TransferSplit,
    TrtBenchResult,
    benchmark_trt,
    split_stats,
    timed_splits,
)

# TensorRT DataType member name -> numpy dtype name; types without a numpy dtype (BF16, FP8, INT4, FP4) are absent.
TRT_TO_NUMPY = {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32", "INT64": "int64",
                "BOOL": "bool", "UINT8": "uint8"}


def numpy_dtype(trt_dtype: Any) -> np.dtype | None:
    """numpy dtype of a TensorRT DataType (or its member name), None where numpy has none (bf16, fp8...)."""
    name = trt_dtype if isinstance(trt_dtype, str) else getattr(trt_dtype, "name", str(trt_dtype).split(".")[-1])
    return np.dtype(TRT_TO_NUMPY[name]) if name in TRT_TO_NUMPY else None


@dataclass(frozen=True)
class TensorInfo:
    name: str
    is_input: bool
    trt_dtype: str  # TensorRT DataType member name
    shape: tuple[int, ...]  # -1 for dynamic dims
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None  # inputs: (min, opt, max)
    profiles: tuple[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...] = ()  # every profile's, in order

    @property
    def dtype(self) -> np.dtype | None:
        return numpy_dtype(self.trt_dtype)


def choose_profile(shapes: Mapping[str, Sequence[int]], inputs: Sequence[TensorInfo]) -> int | None:
    """The first optimization profile holding every shape in `shapes` (the engine may have several: --profile),
    or None when none does."""
    by_name = {t.name: t for t in inputs}
    count = max((len(t.profiles) for t in inputs), default=0)
    for k in range(count):
        if all(profile_violation(n, s, by_name[n].profiles[k]) is None for n, s in shapes.items()
               if n in by_name and len(by_name[n].profiles) > k):
            return k
    return None


def check_io_types(tensors: Sequence[TensorInfo], engine: str) -> None:
    """BadInputError when an input/output has no numpy dtype (numpy in and out is the Runner interface)."""
    bad = [f"{t.name}: {t.trt_dtype}" for t in tensors if t.dtype is None]
    if bad:
        raise BadInputError(f"{engine} has I/O tensors numpy cannot hold: {', '.join(bad)}",
                            why="the runner takes and gives numpy arrays; numpy has no bf16/fp8/int4",
                            fix="export with fp32 (or fp16) inputs and outputs; keep reduced precision inside the graph")


def profile_violation(name: str, shape: Sequence[int], profile: tuple[Sequence[int], Sequence[int], Sequence[int]]
                      ) -> str | None:
    """Why `shape` is outside the optimization profile `(min, opt, max)` of input `name`, or None if inside."""
    lo, _, hi = profile
    if len(shape) != len(lo):
        return f"input {name!r} has rank {len(shape)}, the engine expects rank {len(lo)}"
    out = [f"dim {i} is {s}, allowed {a}..{b}" for i, (s, a, b) in enumerate(zip(shape, lo, hi)) if not a <= s <= b]
    if not out:
        return None
    return f"input {name!r} has shape {tuple(shape)}: {'; '.join(out)} (engine profile min {tuple(lo)}, max {tuple(hi)})"


def deserialize_failure(path: str | os.PathLike[str], messages: Sequence[str], plugins: Sequence[str],
                        allow_host_code: bool) -> BadInputError | MissingEnvironmentError:
    """The error for an engine TensorRT would not load, classified from TensorRT's own log lines."""
    log = " ".join(messages).lower()
    details = list(messages[-10:])
    if "plugin" in log:
        return MissingEnvironmentError(
            f"TensorRT could not load {path}: a plugin it uses is not registered", details=details,
            why=f"plugin libraries loaded: {', '.join(plugins) or 'none'}",
            fix="pass the plugin library the engine was built with (plugins=[...]), built for this TensorRT")
    if ("host code" in log or "lean runtime" in log) and not allow_host_code:
        return BadInputError(
            f"TensorRT could not load {path}: it is a version-compatible plan with embedded host code", details=details,
            why="loading such a plan runs code from the file; TensorRT refuses unless allowed",
            fix="for a plan you trust, pass --allow-host-code (API: allow_host_code=True)")
    if "version" in log or "incompatible" in log or "device" in log:
        return BadInputError(
            f"TensorRT could not load {path}: it was built by another TensorRT version or for another GPU",
            details=details, why="engines are bound to the TensorRT version and GPU that built them",
            fix="rebuild the engine on this device from the ONNX (the portable artifact)")
    return BadInputError(f"TensorRT could not load {path}", details=details,
                         fix="check the file is a TensorRT engine (compare its sha256 with the manifest) and "
                             "rebuild it on this device")


@dataclass
class _Slot:
    """Device and pinned host memory for one I/O tensor, grown on demand."""

    info: TensorInfo
    device: Any = None
    host: Any = None
    capacity: int = 0
    shape: tuple[int, ...] = ()
    nbytes: int = 0


def check_tensor_address(ok: bool, name: str, runner: str) -> None:
    """`set_tensor_address` returns False when the name is not an I/O tensor of the engine (NvInferRuntime.h):
    running on would read or write unbound memory, so stop here."""
    if not ok:
        raise CheckFailedError(f"{runner}: TensorRT refused the device address for tensor {name!r}",
                               why="set_tensor_address returned False: the name is not an I/O tensor of this engine",
                               fix="rebuild the engine; if it persists, report it with the engine's I/O names")


class TrtRunner(Runner):
    """Runs a serialized TensorRT engine. `plugins`: plugin libraries to load first (the ones it was built
    with; ones the plan carries itself are skipped). `cuda_graph`: capture the enqueue for the current input
    shape and replay it. `allow_host_code`: allow plans with embedded host code (version-compatible plans);
    only for plans you trust: without it such a plan (as its manifest records) is refused. `dla_core`: the DLA
    core to run a DLA plan on (default: the one it was built for, from the manifest beside it)."""

    runtime = "tensorrt"

    def __init__(self, engine_path: str | os.PathLike[str], plugins: Sequence[str | os.PathLike[str]] | None = None,
                 *, cuda_graph: bool = False, io_backend: str = "auto", device: int = 0,
                 allow_host_code: bool = False, dla_core: int | None = None, name: str | None = None):
        self.engine_path = Path(engine_path)
        super().__init__(name or f"tensorrt({self.engine_path.name})")
        if not self.engine_path.is_file():
            raise BadInputError(f"{self.engine_path}: no such engine file",
                                fix="build one with deployconv's engine build (or trtexec --saveEngine)")
        self.plugins = resolve_library_paths(plugins or ())  # absolute: load_library would search LD paths
        self.source = str(self.engine_path)

        self.engine_sha256 = sha256_of(self.engine_path)
        self.cuda_graph = cuda_graph
        self.io_backend = io_backend
        self.device = device
        self.allow_host_code = allow_host_code
        self.dla_core = dla_core
        self.plugins_carried: tuple[str, ...] = ()
        self.record_splits = False
        self.splits: list[TransferSplit] = []
        self.last_split: TransferSplit | None = None
        self.graph_note: str | None = None
        self._reset()

    def _reset(self) -> None:
        self.trt: Any = None
        self.io: Any = None
        self._runtime: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._slots: dict[str, _Slot] = {}
        self._shapes: dict[str, tuple[int, ...]] | None = None
        self._graph: Any = None
        self._events: list[Any] = []
        self._profile_index = 0

    # --- activation ---
    def activate_impl(self) -> None:
        facts = plan_facts_near(self.engine_path)  # decided before TensorRT: a refusal needs no GPU
        settings = runtime_settings(facts, allow_host_code=self.allow_host_code, dla_core=self.dla_core,
                                    engine=str(self.engine_path))
        trt = import_tensorrt()
        logger = capturing_logger(trt)
        logger.take()
        wanted = plugins_to_load(self.plugins, facts)
        self.plugins_carried = tuple(p for p in self.plugins if p not in wanted)  # the plan registers these itself
        load_plugin_libraries(trt, wanted)  # once per process
        self.io = cuda_io.open_cuda_io(self.io_backend, self.device)
        try:
            self.trt = trt
            self._runtime = trt.Runtime(logger)
            apply_runtime_settings(self._runtime, settings)  # DLA core and host code, before deserializing
            self._engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
            if self._engine is None:
                raise deserialize_failure(self.engine_path, [m for _, m in logger.take()], self.plugins,
                                          self.allow_host_code)
            self._context = self._engine.create_execution_context()
            tensors = self._describe_io()
            check_io_types(tensors, str(self.engine_path))
            self._slots = {t.name: _Slot(t) for t in tensors}
            self._events = [self.io.new_event() for _ in range(4)]
        except BaseException:
            self.deactivate_impl()
            raise

    def _describe_io(self) -> list[TensorInfo]:
        trt, engine = self.trt, self._engine
        out = []
        for k in range(engine.num_io_tensors):
            name = engine.get_tensor_name(k)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            if is_input and engine.is_shape_inference_io(name):
                raise BadInputError(f"{self.engine_path}: input {name!r} is a shape tensor",
                                    why="shape-tensor inputs live in host memory; this runner feeds device memory",
                                    fix="export with the shape folded into the graph (static or symbolic dims)")
            dt = engine.get_tensor_dtype(name)
            shape = tuple(engine.get_tensor_shape(name))
            profiles: tuple[Any, ...] = ()
            if is_input and any(d < 0 for d in shape):  # dynamic: the range of each optimization profile
                profiles = tuple(tuple(tuple(s) for s in engine.get_tensor_profile_shape(name, k))
                                 for k in range(int(getattr(engine, "num_optimization_profiles", 1))))
            elif is_input:
                profiles = ((shape, shape, shape),)
            out.append(TensorInfo(name, is_input, getattr(dt, "name", str(dt)), shape,
                                  profiles[0] if profiles else None, profiles))
        return out

    def deactivate_impl(self) -> None:
        self._drop_graph()
        self._context = None  # destroy in dependency order: context, engine, runtime, then the memory
        self._engine = None
        self._runtime = None
        if self.io is not None:
            for slot in self._slots.values():
                for buf in (slot.device, slot.host):
                    if buf is not None:
                        self.io.free(buf)
            self.io.close()
        self._reset()

    # --- Runner interface ---
    def input_metadata_impl(self) -> dict[str, TensorMeta]:
        return {s.info.name: TensorMeta(s.info.dtype, tuple(None if d < 0 else d for d in s.info.shape))
                for s in self._slots.values() if s.info.is_input}

    def output_names(self) -> list[str]:
        self._require_active("output_names")
        return [s.info.name for s in self._slots.values() if not s.info.is_input]

    def _set_shapes(self, shapes: dict[str, tuple[int, ...]]) -> None:
        """Set input shapes, size every buffer, bind addresses; (re)capture the CUDA graph for these shapes."""
        ctx = self._context
        self._shapes = None  # until every step below succeeds, the next infer starts over
        inputs = [s.info for s in self._slots.values() if s.info.is_input]
        chosen = choose_profile(shapes, inputs) if any(len(t.profiles) > 1 for t in inputs) else None
        if chosen is not None and chosen != self._profile_index:  # before set_input_shape (NvInferRuntime.h)
            if not ctx.set_optimization_profile_async(chosen, self.io.stream_handle):
                raise CheckFailedError(f"{self.name}: TensorRT refused to switch to optimization profile {chosen}")
            self.io.synchronize()
            self._profile_index = chosen
        for name, shape in shapes.items():
            info = self._slots[name].info
            profile = info.profiles[self._profile_index] if len(info.profiles) > self._profile_index else info.profile
            problem = profile_violation(name, shape, profile) if profile else None
            if problem:
                raise BadInputError(f"{self.name}: {problem}",
                                    fix="feed a shape inside the engine's profile, or rebuild with a wider one")
        for name, shape in shapes.items():
            if not ctx.set_input_shape(name, shape):
                raise BadInputError(f"{self.name}: TensorRT rejected shape {shape} for input {name!r}")
        for slot in self._slots.values():
            shape = tuple(ctx.get_tensor_shape(slot.info.name))
            if any(d < 0 for d in shape):
                raise BadInputError(f"{self.name}: output {slot.info.name!r} has a data-dependent shape {shape}",
                                    why="this runner sizes outputs before running",
                                    fix="export the model with static output shapes")
            nbytes = int(np.prod(shape, dtype=np.int64)) * slot.info.dtype.itemsize  # type: ignore[union-attr]
            if nbytes > slot.capacity or slot.device is None:
                for buf in (slot.device, slot.host):
                    if buf is not None:
                        self.io.free(buf)
                slot.device, slot.host = self.io.alloc_device(nbytes), self.io.alloc_host(nbytes)
                slot.capacity = nbytes
            slot.shape, slot.nbytes = shape, nbytes
            check_tensor_address(ctx.set_tensor_address(slot.info.name, slot.device.ptr), slot.info.name, self.name)
        self._drop_graph()  # one graph at a time: the old shape's is destroyed, not piled up
        self._shapes = dict(shapes)
        if self.cuda_graph:
            self._enqueue(self.io.stream_handle)  # TensorRT: run once after a shape change before capturing
            self.io.synchronize()
            try:
                self._graph = self.io.capture(self._enqueue)
                self.graph_note = None
            except Exception as e:  # as trtexec does: a graph that cannot be captured means plain enqueues
                self._graph = None
                self.graph_note = f"CUDA graph capture failed, running without: {e}"

    def _drop_graph(self) -> None:
        if self._graph is not None and self.io is not None:
            self.io.release_graph(self._graph)
        self._graph = None

    def _enqueue(self, stream_handle: int) -> None:
        if not self._context.execute_async_v3(stream_handle):
            raise CheckFailedError(f"{self.name}: TensorRT failed to enqueue the inference",
                                   fix="run with TensorRT's verbose log (trtexec --loadEngine ... --verbose)")

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        shapes = {n: tuple(int(d) for d in a.shape) for n, a in feed.items()}
        if shapes != self._shapes:
            self._set_shapes(shapes)
        io = self.io
        e0, e1, e2, e3 = self._events
        inputs = [s for s in self._slots.values() if s.info.is_input]
        outputs = [s for s in self._slots.values() if not s.info.is_input]
        for s in inputs:
            np.copyto(s.host.array[:s.nbytes].view(s.info.dtype).reshape(s.shape), feed[s.info.name], casting="no")
        io.record(e0)
        for s in inputs:
            io.h2d(s.device, s.host, s.nbytes)
        io.record(e1)
        if self._graph is not None:
            io.launch(self._graph)
        else:
            self._enqueue(io.stream_handle)
        io.record(e2)
        for s in outputs:
            io.d2h(s.host, s.device, s.nbytes)
        io.record(e3)
        io.synchronize()
        split = TransferSplit(io.elapsed_ms(e0, e1), io.elapsed_ms(e1, e2), io.elapsed_ms(e2, e3))
        self.last_split = split
        if self.record_splits:
            self.splits.append(split)
        return {s.info.name: s.host.array[:s.nbytes].view(s.info.dtype).reshape(s.shape).copy() for s in outputs}

    def info_impl(self) -> dict[str, Any]:
        facts = self.io.device_facts() if self.io is not None else None
        return {
            "version": None if self.trt is None else self.trt.__version__,
            "providers": [],
            "threads": None,
            "engine_sha256": self.engine_sha256,
            "io": None if self.io is None else self.io.backend,
            "cuda_graph": self.cuda_graph,
            "cuda_graph_captured": self._graph is not None,
            "cuda_graph_note": self.graph_note,
            "gpu": None if facts is None else facts.name,
            "sm": None if facts is None else facts.sm,
            "plugins": list(self.plugins),
            "plugins_carried_by_plan": list(self.plugins_carried),
            "dla_core": self.dla_core,
            "host_code_allowed": self.allow_host_code,
            "gpu_timer": GPU_TIMER,
        }


__all__ = ["GPU_TIMER", "TRT_TO_NUMPY", "SplitStats", "TensorInfo", "TransferSplit", "TrtBenchResult", "TrtRunner",
           "benchmark_trt", "check_io_types", "check_tensor_address", "choose_profile", "deserialize_failure",
           "numpy_dtype", "profile_violation", "split_stats", "timed_splits"]
