"""The type checks the artifact schemas are written in, and the one function that applies a key table to a dict.

A table maps key -> (check, required, what the type is in words). Reading never guesses: an unknown key, a missing
required one, or a value of the wrong type is a problem naming the key, and the caller raises them all at once."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from deployconv.core.artifacts.paths import path_problem

Check = Callable[[Any], bool]
Keys = dict[str, tuple[Check, bool, str]]

_HEX64 = re.compile(r"[0-9a-f]{64}")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def of_type(*types: type) -> Check:
    """isinstance without bool passing for int."""
    return lambda v: isinstance(v, types) and not (isinstance(v, bool) and bool not in types)


def optional(check: Check) -> Check:
    return lambda v: v is None or check(v)


def list_of(check: Check) -> Check:
    return lambda v: isinstance(v, list) and all(check(x) for x in v)


def is_hex64(v: Any) -> bool:
    return isinstance(v, str) and bool(_HEX64.fullmatch(v))


def is_rel_path(v: Any) -> bool:
    return path_problem(v) is None


STR, INT, BOOL, DICT, NUMBER = of_type(str), of_type(int), of_type(bool), of_type(dict), of_type(int, float)


def problems(data: dict[str, Any], keys: Keys, where: str = "") -> list[str]:
    """Every way `data` breaks the table, each naming its key (prefixed by `where`, e.g. "bundle.")."""
    out = [f"{where}{k}: unknown key" for k in sorted(set(data) - set(keys))]
    for key, (check, required, words) in keys.items():
        if key not in data:
            if required:
                out.append(f"{where}{key}: missing")
        elif not check(data[key]):
            out.append(f"{where}{key}: must be {words}, not {show(data[key])}")
    return out


def show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
