"""ONNX Runtime runner. Torch-free; onnxruntime itself is imported only when a runner is made.

Session settings are fixed so latency numbers mean the same thing every time: `threads` intra-op threads
(default: the CPUs this process may run on), 1 inter-op thread, sequential execution, graph optimisation
level ALL. CPU by default; the CUDA execution provider only when asked for and present (onnxruntime-gpu).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deployconv.core.env import available_cpus
from deployconv.core.errors import BadInputError, MissingEnvironmentError
from deployconv.core.fsio import sha256_file
from deployconv.runtime.base import Runner, TensorMeta

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"

# ONNX Runtime type strings -> numpy. bfloat16 and the 4/8-bit float types have no numpy dtype: None means the
# dtype is not checked on input.
_ORT_DTYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int8)": np.int8, "tensor(int16)": np.int16, "tensor(int32)": np.int32, "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8, "tensor(uint16)": np.uint16, "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_,
}


def sha256_of(path_or_bytes: str | os.PathLike[str] | bytes) -> str:
    if isinstance(path_or_bytes, bytes | bytearray | memoryview):
        return hashlib.sha256(path_or_bytes).hexdigest()
    return sha256_file(Path(path_or_bytes))


def external_data_sha256(path: str | os.PathLike[str]) -> str | None:
    """One sha256 over the external data files of an ONNX model (weights saved beside the graph, e.g.
    `model.onnx.data`), so a weight change shows in the fingerprint; None when it has none. Each file is
    hashed as its location, a NUL, its bytes, in sorted location order. Needs the `onnx` package to read
    the locations; without it, or when the graph cannot be parsed, None (ORT reports the file's problems)."""
    try:
        import onnx
        from onnx.external_data_helper import _get_all_tensors, uses_external_data
    except ImportError:
        return None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not parseable: ONNX Runtime gives the user the clear error on activate()
        return None
    locations = sorted({e.value for t in _get_all_tensors(model) if uses_external_data(t)
                        for e in t.external_data if e.key == "location"})
    if not locations:
        return None
    h = hashlib.sha256()
    base = Path(path).parent
    for loc in locations:
        h.update(loc.encode() + b"\0")
        try:
            with open(base / loc, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        except OSError:
            raise BadInputError(f"{path}: its external data file {loc} is missing or unreadable",
                                fix="copy the .onnx file together with its data file(s)") from None
    return h.hexdigest()


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as e:
        raise MissingEnvironmentError("ONNX Runtime is not installed", why=str(e),
                                      fix="pip install onnxruntime (or onnxruntime-gpu for CUDA)") from None
    return onnxruntime


def resolve_providers(providers: Sequence[str] | None) -> list[str]:
    """CPU by default. Asking for CUDA when onnxruntime-gpu is absent is a missing environment (exit 3)."""
    ort = _import_ort()
    wanted = list(providers or [CPU])
    available = ort.get_available_providers()
    missing = [p for p in wanted if p not in available]
    if missing:
        raise MissingEnvironmentError(
            f"ONNX Runtime here has no {', '.join(missing)}",
            why=f"onnxruntime {ort.__version__} offers {', '.join(available)}",
            fix="for CUDA install onnxruntime-gpu in place of onnxruntime and check `deployconv doctor` sees a GPU"
            if CUDA in missing else "choose a provider from the list above")
    if CPU not in wanted:
        wanted.append(CPU)  # the fallback for nodes a GPU provider does not take
    return wanted


GRAPH_OPTIMIZATION = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED", "basic": "ORT_ENABLE_BASIC",
                      "disabled": "ORT_DISABLE_ALL"}


def ort_session(model: str | os.PathLike[str] | bytes, *, providers: Sequence[str] | None = None,
                threads: int | None = None, optimization: str = "all") -> Any:
    """The one way deployconv opens an ONNX Runtime session (runners, the fp16/int8 sensitivity scans, the
    precision search, bisection), so every measurement runs under the same settings: `threads` intra-op threads
    (default: the CPUs this process may run on, not ORT's own default of every physical core, which
    oversubscribes a pinned or containerised process), 1 inter-op thread, sequential execution, the graph
    optimisation `optimization` (default "all", ORT's own default), warnings off. Providers as
    `resolve_providers` (CPU by default; a missing CUDA provider is exit 3, and a CUDA provider ORT silently
    drops is refused). A model ORT cannot load is a BadInputError that says why."""
    if threads is not None and threads < 1:
        raise BadInputError(f"threads must be >= 1, got {threads}")
    if optimization not in GRAPH_OPTIMIZATION:
        raise BadInputError(f"unknown graph optimization {optimization!r}", fix=f"one of {', '.join(GRAPH_OPTIMIZATION)}")
    ort = _import_ort()
    wanted = resolve_providers(providers)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or available_cpus()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_OPTIMIZATION[optimization])
    so.log_severity_level = 3  # errors only: ORT's warnings are not the user's business
    source = bytes(model) if isinstance(model, bytes | bytearray | memoryview) else str(model)
    try:
        session = ort.InferenceSession(source, so, providers=wanted)
    except Exception as e:  # ORT raises its own pybind exception types; classify them for the user
        raise _load_error(source, e) from None
    used = session.get_providers()
    silent_fallback = [p for p in wanted if p != CPU and p not in used]
    if silent_fallback:
        raise MissingEnvironmentError(
            f"ONNX Runtime could not start {', '.join(silent_fallback)} (it would silently run on CPU)",
            fix="check the CUDA/cuDNN libraries onnxruntime-gpu needs (`deployconv doctor`)")
    return session


class OrtRunner(Runner):
    """Runs an ONNX model (a path or its bytes) on ONNX Runtime."""

    runtime = "onnxruntime"

    def __init__(self, path_or_bytes: str | os.PathLike[str] | bytes, threads: int | None = None,
                 providers: Sequence[str] | None = None, name: str | None = None):
        self.source: str | bytes = path_or_bytes if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
        src_name = "<bytes>" if isinstance(self.source, bytes) else self.source
        super().__init__(name or f"onnxruntime({Path(src_name).name})")
        if isinstance(self.source, str) and not Path(self.source).is_file():
            raise BadInputError(f"{self.source}: no such ONNX file", fix="check the path")
        if threads is not None and threads < 1:
            raise BadInputError(f"threads must be >= 1, got {threads}")
        self.threads = threads or available_cpus()
        self.requested_providers = list(providers or [CPU])
        self.graph_sha256 = sha256_of(self.source)
        self.external_data_sha256 = None if isinstance(self.source, bytes) else external_data_sha256(self.source)
        self.session: Any = None

    def activate_impl(self) -> None:
        self.session = ort_session(self.source, providers=self.requested_providers, threads=self.threads)

    def deactivate_impl(self) -> None:
        self.session = None

    def input_metadata_impl(self) -> dict[str, TensorMeta]:
        return {i.name: TensorMeta(None if i.type not in _ORT_DTYPES else np.dtype(_ORT_DTYPES[i.type]),
                                   tuple(i.shape)) for i in self.session.get_inputs()}

    def output_names(self) -> list[str]:
        self._require_active("output_names")
        return [o.name for o in self.session.get_outputs()]

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, dict(feed))))

    def info_impl(self) -> dict[str, Any]:
        ort = _import_ort()
        return {
            "version": ort.__version__,
            "providers": list(self.session.get_providers()) if self.session is not None else self.requested_providers,
            "threads": self.threads,
            "inter_op_threads": 1,
            "execution_mode": "sequential",
            "graph_optimization": "all",
            "graph_sha256": self.graph_sha256,
            "external_data_sha256": self.external_data_sha256,
        }


def _load_error(source: str | bytes, e: Exception) -> BadInputError | MissingEnvironmentError:
    where = "the ONNX bytes" if isinstance(source, bytes) else source
    msg = str(e)
    short = msg.split(" : ", 3)[-1].strip() if msg.startswith("[ONNXRuntimeError]") else msg
    kind = type(e).__name__
    if kind == "InvalidProtobuf" or "protobuf parsing failed" in msg.lower():
        return BadInputError(f"{where} is not a readable ONNX model (corrupt or truncated?)", why=short,
                             fix="re-export it, or check the file was copied completely (compare its sha256)")
    if kind == "NoSuchFile":
        return BadInputError(f"{where}: no such file", why=short, fix="check the path")
    if "is not a registered function/op" in msg:
        return BadInputError(f"ONNX Runtime cannot run an op in {where}", why=short,
                             fix="graphs with deployconv plugin nodes run on TensorRT; export with a target whose "
                                 "lowering is `standard` (e.g. --target onnx) for ONNX Runtime")
    if "Unsupported model IR version" in msg or ("opset" in msg.lower() and "support" in msg.lower()):
        return BadInputError(f"{where} is newer than this ONNX Runtime supports", why=short,
                             fix="upgrade onnxruntime, or re-export with a lower --opset / IR version")
    return BadInputError(f"ONNX Runtime could not load {where}", why=f"{kind}: {short}",
                         fix="check the model with `python -m onnx.checker` or re-export it")
