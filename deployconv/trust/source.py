"""Which file a model source (`file.py:factory`, `pkg.module:factory`) would execute, and its sha256, found
without importing anything: what `export` records and `validate --trust-source` compares."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from deployconv.core.errors import BadInputError


def source_file(source: str) -> Path | None:
    """The Python file `source` names (None for a zoo name, or a module that cannot be found without running
    its parent packages)."""
    target, sep, _ = source.rpartition(":")
    if not sep or not target:
        return None
    if target.endswith(".py") or "/" in target or "\\" in target:
        return Path(target)
    if "." in target:  # a submodule's spec would import its parents; refuse rather than run them
        parent = target.split(".")[0]
        spec = importlib.util.find_spec(parent)
        if spec is None or not spec.submodule_search_locations:
            return None
        rel = Path(*target.split(".")[1:])
        for base in spec.submodule_search_locations:
            for cand in (Path(base) / rel.with_suffix(".py"), Path(base) / rel / "__init__.py"):
                if cand.is_file():
                    return cand
        return None
    try:
        spec = importlib.util.find_spec(target)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin and spec.origin.endswith(".py") else None


def source_sha256(source: str) -> str | None:
    import hashlib

    path = source_file(source)
    if path is None:
        return None
    if not path.is_file():
        raise BadInputError(f"model source file not found: {path}", fix="check the path before the ':'")
    return hashlib.sha256(path.read_bytes()).hexdigest()
