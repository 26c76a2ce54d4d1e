"""The tensorrt module and its one logger, shared by the runner (runtime.trt) and the builder (engine.builder).
tensorrt is imported only when asked for, so this module imports anywhere."""

from __future__ import annotations

from typing import Any

from deployconv.core.errors import MissingEnvironmentError


def import_tensorrt() -> Any:
    """The tensorrt module, or MissingEnvironmentError (without the per-model trtexec line)."""
    try:
        import tensorrt
    except ImportError as e:
        raise MissingEnvironmentError("TensorRT is not installed", why=str(e),
                                      fix="pip install 'tensorrt>=10' (x86/SBSA); on Jetson it comes with JetPack "
                                          "(system python3)") from None
    return tensorrt


_LOGGERS: dict[int, Any] = {}


def capturing_logger(trt: Any) -> Any:
    """One TensorRT logger per tensorrt module (TensorRT wants the same logger for every builder/runtime),
    keeping warnings and errors so failures can be shown to the user."""
    key = id(trt)
    if key not in _LOGGERS:
        class CapturingLogger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.messages: list[tuple[str, str]] = []

            def log(self, severity: Any, msg: str) -> None:
                if int(severity) <= int(trt.ILogger.Severity.WARNING):
                    self.messages.append((getattr(severity, "name", str(severity)), msg))

            def take(self) -> list[tuple[str, str]]:
                out, self.messages = self.messages, []
                return out

        _LOGGERS[key] = CapturingLogger()
    return _LOGGERS[key]
