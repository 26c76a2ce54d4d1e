"""The manifest's (and report.json's) engine entry, one shape whoever writes it.

Before this type, `export` wrote {"status", "engine": {...}} and `build-engine` wrote the inner table alone, so a
reader had to guess which it held. Now every writer builds an EngineEntry and writes `to_dict()`: the same keys,
always. Files written before (schema /1) in the flat build-engine form still load, as a built entry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from deployconv.core.artifacts.checks import (
    DICT,
    INT,
    NUMBER,
    STR,
    Keys,
    is_hex64,
    list_of,
    optional,
    problems,
)
from deployconv.core.errors import BadInputError

BUILT = "built"
_SCALAR = optional(lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool))

BUILT_KEYS: Keys = {
    "file": (STR, True, "a file name"),
    "sha256": (is_hex64, True, "a sha256"),
    "bytes": (optional(INT), False, "an integer or null"),
    "onnx": (optional(STR), False, "a file name or null"),
    "onnx_sha256": (optional(is_hex64), False, "a sha256 or null"),
    "tensorrt": (optional(STR), False, "a version or null"),
    "gpu": (optional(STR), False, "a string or null"),
    "sm": (_SCALAR, False, "a compute capability or null"),
    "plugins": (list_of(DICT), False, "a list of {path, sha256}"),
    "timing_cache": (optional(DICT), False, "a table or null"),
    "build_seconds": (optional(NUMBER), False, "a number or null"),
    "messages": (list_of(STR), False, "a list of strings"),
    "messages_total": (INT, False, "an integer"),
    "plan": (optional(DICT), False, "a table or null"),
    "trtexec": (optional(STR), False, "a string or null"),
    "layers": (optional(DICT), False, "a table or null"),
}

ENTRY_KEYS: Keys = {
    "status": (STR, True, "'built' or 'skipped: ...'"),
    "engine": (optional(DICT), False, "a table or null"),
    "what": (optional(STR), False, "a string or null"),
    "why": (optional(STR), False, "a string or null"),
    "how": (optional(STR), False, "a string or null"),
    "trtexec": (list_of(STR), False, "a list of strings"),
    "build_later": (optional(STR), False, "a string or null"),
}


@dataclass(frozen=True)
class BuiltEngine:
    """What was built, with what, on what, and how (deployconv.engine.builder.engine_entries)."""

    file: str
    sha256: str
    bytes: int | None = None
    onnx: str | None = None
    onnx_sha256: str | None = None
    tensorrt: str | None = None
    gpu: str | None = None
    sm: Any = None
    plugins: tuple[dict[str, Any], ...] = ()
    timing_cache: dict[str, Any] | None = None
    build_seconds: float | None = None
    messages: tuple[str, ...] = ()
    messages_total: int = 0
    plan: dict[str, Any] | None = None
    trtexec: str | None = None
    layers: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str = "engine.engine") -> BuiltEngine:
        _require(data, BUILT_KEYS, where)
        return cls(**{**data, "plugins": tuple(data.get("plugins", ())), "messages": tuple(data.get("messages", ()))})

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["plugins"], out["messages"] = list(self.plugins), list(self.messages)
        return out


@dataclass(frozen=True)
class EngineEntry:
    """`status` is "built" (then `engine` says what) or "skipped: <why>" (then what/why/how say how to build it
    later, with the trtexec line per TensorRT major)."""

    status: str
    engine: BuiltEngine | None = None
    what: str | None = None
    why: str | None = None
    how: str | None = None
    trtexec: tuple[str, ...] = ()
    build_later: str | None = None

    @property
    def built(self) -> bool:
        return self.status == BUILT and self.engine is not None

    @property
    def file(self) -> str | None:
        """The engine file's name inside the folder, when one was built."""
        return self.engine.file if self.engine is not None else None

    @classmethod
    def from_build(cls, entries: Mapping[str, Any]) -> EngineEntry:
        """From what deployconv.engine.builder.build_engine returns ({"engine": {...}})."""
        return cls(BUILT, BuiltEngine.from_dict(dict(entries["engine"])))

    @classmethod
    def from_dict(cls, data: Any, where: str = "engine") -> EngineEntry:
        if isinstance(data, dict) and "status" not in data and "file" in data:  # /1 as build-engine wrote it
            return cls(BUILT, BuiltEngine.from_dict(data, where))
        _require(data, ENTRY_KEYS, where)
        built = data.get("engine")
        if data["status"] == BUILT and built is None:
            raise BadInputError(f"{where}: status is 'built' but there is no engine table",
                                fix="rebuild the engine (`deployconv build-engine DIR --force`)")
        return cls(data["status"], None if built is None else BuiltEngine.from_dict(built, f"{where}.engine"),
                   data.get("what"), data.get("why"), data.get("how"), tuple(data.get("trtexec", ())),
                   data.get("build_later"))

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "engine": None if self.engine is None else self.engine.to_dict(),
                "what": self.what, "why": self.why, "how": self.how, "trtexec": list(self.trtexec),
                "build_later": self.build_later}


def _require(data: Any, keys: Keys, where: str) -> None:
    if not isinstance(data, dict):
        raise BadInputError(f"{where}: must be a table, not {type(data).__name__}",
                            fix="re-export (or rebuild the engine) with this deployconv version")
    found = problems(data, keys, f"{where}.")
    if found:
        raise BadInputError(f"the engine entry does not match its schema ({len(found)} problem(s))", details=found[:20],
                            fix="re-export (or rebuild the engine) with this deployconv version")


__all__ = ["BUILT", "BuiltEngine", "EngineEntry"]
