"""Model outputs of any structure (tensor, tuple, list, dict, nested) as flat, stably named tensors, and back.

Names: a lone tensor is `output`; sequence items are `p0`, `p1`, ...; dict items are their keys; nesting joins
with dots (`feat.stage3`, `feat.p0`). The order is the exporter's (torch pytree: sequences in order, dicts in
insertion order), so ONNX output i is flat tensor i. The structure is a small JSON tree, recorded in the
manifest, so the PyTorch-side helpers can `restore` runtime outputs to what the module returns.
Pure except for the type checks on leaves (any object with `.shape` is a tensor here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from deployconv.core.errors import BadInputError

_VALID = re.compile(r"[A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class Flat:
    names: list[str]
    tensors: list[Any]
    structure: dict


def _is_tensor(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def flatten(out: Any, where: str = "the model") -> Flat:
    names: list[str] = []
    tensors: list[Any] = []

    def walk(x: Any, path: str) -> dict:
        if _is_tensor(x):
            names.append(path or "output")
            tensors.append(x)
            return {"kind": "tensor", "name": path or "output"}
        if isinstance(x, dict):
            keys = [str(k) for k in x]
            bad = [k for k in keys if not _VALID.fullmatch(k)]
            if bad:
                raise BadInputError(f"{where} returns a dict with key(s) {bad} that cannot name an output",
                                    fix="use keys of letters, digits, '_', '-', '.'")
            return {"kind": "dict", "keys": keys,
                    "items": [walk(v, f"{path}.{k}" if path else k) for k, v in zip(keys, x.values())]}
        if isinstance(x, (list, tuple)):
            return {"kind": type(x).__name__ if type(x) in (list, tuple) else "tuple",
                    "items": [walk(v, f"{path}.p{i}" if path else f"p{i}") for i, v in enumerate(x)]}
        raise BadInputError(f"{where} returns a {type(x).__name__} at {path or 'the top level'!r}",
                            why="only tensors, tuples, lists and dicts of them can be exported",
                            fix="return tensors only (drop None and Python numbers from the outputs)")

    structure = walk(out, "")
    if not tensors:
        raise BadInputError(f"{where} returns no tensor", fix="return at least one tensor")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise BadInputError(f"{where}'s outputs flatten to duplicate names {dup}",
                            fix="rename the dict keys that collide with p0, p1, ...")
    return Flat(names, tensors, structure)


def check_same(a: Flat, b: Flat, where: str) -> None:
    """The same structure and names on two calls, else a clear error: an export fixes one structure."""
    if a.structure != b.structure:
        raise BadInputError(f"{where} returns a different output structure on different calls",
                            why=f"first call: {a.names}; second call: {b.names}",
                            fix="return the same tensors (and dict keys) on every call, whatever the input")


def restore(structure: dict, flat: dict[str, Any]) -> Any:
    """Rebuild the module's output structure from runtime outputs named as `flatten` named them."""
    kind = structure["kind"]
    if kind == "tensor":
        if structure["name"] not in flat:
            raise BadInputError(f"output {structure['name']!r} missing from the runtime's outputs",
                                fix=f"outputs present: {', '.join(flat)}")
        return flat[structure["name"]]
    items = [restore(s, flat) for s in structure["items"]]
    if kind == "dict":
        return dict(zip(structure["keys"], items))
    return items if kind == "list" else tuple(items)
