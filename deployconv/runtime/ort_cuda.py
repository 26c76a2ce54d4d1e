"""ONNX Runtime on the GPU: OrtRunner with the CUDA execution provider, failing early and clearly (exit 3)
when onnxruntime-gpu's CUDAExecutionProvider is not available, instead of silently running on the CPU.
Torch-free; onnxruntime is imported when a runner is made.
"""

from __future__ import annotations

import os

from deployconv.core.errors import MissingEnvironmentError
from deployconv.runtime.ort import CPU, CUDA, OrtRunner, _import_ort


def cuda_provider_available() -> bool:
    """Whether this onnxruntime offers the CUDA execution provider (onnxruntime-gpu); False without onnxruntime."""
    try:
        ort = _import_ort()
    except MissingEnvironmentError:
        return False
    return CUDA in ort.get_available_providers()


def require_cuda_provider() -> None:
    """MissingEnvironmentError (exit 3) unless onnxruntime's CUDA execution provider is available."""
    ort = _import_ort()
    available = ort.get_available_providers()
    if CUDA not in available:
        raise MissingEnvironmentError(
            "ONNX Runtime here has no CUDAExecutionProvider",
            why=f"onnxruntime {ort.__version__} offers {', '.join(available)}",
            fix="install onnxruntime-gpu in place of onnxruntime (matching your CUDA major), and check "
                "`deployconv doctor` sees a GPU; or use --runtime ort-cpu")


class OrtCudaRunner(OrtRunner):
    """OrtRunner on CUDA (CPU fallback only for nodes the CUDA provider does not take). Raises at construction
    when the CUDA provider is absent; OrtRunner.activate() raises if it cannot start (no silent CPU run)."""

    def __init__(self, path_or_bytes: str | os.PathLike[str] | bytes, threads: int | None = None,
                 name: str | None = None):
        require_cuda_provider()
        super().__init__(path_or_bytes, threads=threads, providers=[CUDA, CPU], name=name)
