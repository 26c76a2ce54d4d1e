"""The manifest's schema, read strictly: every key known, every required key present, every value of its type.

A manifest crosses the trust boundary, so reading it never guesses: an unknown key, a missing one or a wrong type is
a BadInputError (exit 2) naming the key, before any value is used. Pure (plain data in, errors out)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from deployconv.core.errors import BadInputError
from deployconv.trust.paths import path_problem

EXPORT_FORMAT = "deployconv.export/1"
BUNDLE_FORMAT = "deployconv.bundle/1"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")

Check = Callable[[Any], bool]


def _t(*types: type) -> Check:
    """isinstance without bool passing for int."""
    return lambda v: isinstance(v, types) and not (isinstance(v, bool) and bool not in types)


def _opt(check: Check) -> Check:
    return lambda v: v is None or check(v)


def _list_of(check: Check) -> Check:
    return lambda v: isinstance(v, list) and all(check(x) for x in v)


def _hex(v: Any) -> bool:
    return isinstance(v, str) and bool(_HEX64.fullmatch(v))


def _rel(v: Any) -> bool:
    return path_problem(v) is None


def _io_row(v: Any) -> bool:
    return (isinstance(v, dict) and isinstance(v.get("name"), str) and isinstance(v.get("dtype"), str)
            and _list_of(lambda d: d is None or (isinstance(d, (int, str)) and not isinstance(d, bool)))(v.get("shape")))


def _io(v: Any) -> bool:
    return isinstance(v, dict) and set(v) == {"inputs", "outputs"} and all(_list_of(_io_row)(v[k]) for k in v)


def _plugin(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(v.get(k), str) for k in ("name", "version", "namespace"))


def _files(v: Any) -> bool:  # the paths themselves are judged by deployconv.trust.closed, which names each one
    return isinstance(v, dict) and all(isinstance(k, str) and _hex(h) for k, h in v.items())


_STR, _INT, _BOOL, _DICT = _t(str), _t(int), _t(bool), _t(dict)

# key -> (check, required, what the type is in words)
EXPORT_KEYS: dict[str, tuple[Check, bool, str]] = {
    "format": (lambda v: v == EXPORT_FORMAT, True, f"the string {EXPORT_FORMAT!r}"),
    "model": (_STR, True, "a string"),
    "model_source_sha256": (_opt(_hex), False, "a sha256 (64 hex digits) or null"),
    "weights": (_opt(_STR), True, "a string or null"),
    "weights_sha256": (_opt(_hex), True, "a sha256 or null"),
    "allow_missing": (_list_of(_STR), True, "a list of strings"),
    "reproducible": (_BOOL, True, "true or false"),
    "init_seed": (_INT, True, "an integer"),
    "target": (lambda v: isinstance(v, str) and bool(_NAME.fullmatch(v)) and not v.endswith(".toml"), True,
               "a target name (letters, digits, _ . + -)"),
    "target_spec": (_opt(_DICT), True, "a table or null"),
    "runtime": (lambda v: v in ("onnxruntime", "tensorrt"), True, "onnxruntime or tensorrt"),
    "precision": (_STR, True, "a string"),
    "io_dtype": (_STR, True, "a string"),
    "opset": (_INT, True, "an integer"),
    "batch": (_opt(_INT), True, "an integer or null"),
    "exporter": (_STR, True, "a string"),
    "exporter_fallback_reason": (_opt(_STR), True, "a string or null"),
    "lowering": (_DICT, True, "a table"),
    "plugins": (_list_of(_plugin), True, "a list of {name, version, namespace}"),
    "ort_model": (_rel, True, "a relative path inside the folder"),
    "precision_report": (_opt(_DICT), True, "a table or null"),
    "dla": (_opt(_DICT), True, "a table or null"),
    "engine": (_opt(_DICT), True, "a table or null"),
    "io": (_io, True, "{inputs: [...], outputs: [...]} of {name, dtype, shape}"),
    # Declared inputs (symbols, ranges, profiles) and flattened output names/structure; shapes only, no paths.
    "io_spec": (_opt(_DICT), False, "a table or null"),
    "input_preprocessing": (_DICT, True, "a table"),
    "parity_passed": (_BOOL, True, "true or false"),
    "files": (_files, True, "a table of path -> sha256"),
    "tools": (lambda v: isinstance(v, dict) and all(x is None or isinstance(x, str) for x in v.values()), True,
              "a table of tool -> version"),
    "bundle": (_DICT, False, "a table"),
}

BUNDLE_KEYS: dict[str, tuple[Check, bool, str]] = {
    "format": (lambda v: v == BUNDLE_FORMAT, True, f"the string {BUNDLE_FORMAT!r}"),
    "export_manifest_sha256": (_hex, True, "a sha256"),
    "plugin_sources": (lambda v: _INT(v) and v >= 0, True, "a count"),
    "python_sources": (lambda v: _INT(v) and v >= 0, True, "a count"),
    "plugin_library": (_opt(_STR), True, "a string or null"),
    "plugin_archs": (_list_of(_INT), True, "a list of integers"),
    "dla": (_opt(_DICT), True, "a table or null"),
    "trtexec": (_opt(_STR), True, "a string or null"),
    "trtexec_run": (_opt(_STR), True, "a string or null"),
}


def _problems(data: dict[str, Any], keys: dict[str, tuple[Check, bool, str]], where: str) -> list[str]:
    out = [f"{where}{k}: unknown key" for k in sorted(set(data) - set(keys))]
    for key, (check, required, words) in keys.items():
        if key not in data:
            if required:
                out.append(f"{where}{key}: missing")
        elif not check(data[key]):
            out.append(f"{where}{key}: must be {words}, not {_show(data[key])}")
    return out


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_manifest(data: Any, path: str) -> dict[str, Any]:
    """`data` (parsed manifest.json) when it fits the schema; else a BadInputError listing every problem."""
    if not isinstance(data, dict):
        raise BadInputError(f"{path} is not a manifest (a JSON object)", fix="re-export; never edit manifest.json")
    fmt = data.get("format")
    if isinstance(fmt, str) and fmt.startswith("deployconv.export/") and fmt != EXPORT_FORMAT:
        raise BadInputError(f"{path} has format {fmt!r}; this deployconv reads {EXPORT_FORMAT}",
                            fix="re-export (and re-bundle) with this deployconv version")
    problems = _problems(data, EXPORT_KEYS, "")
    if isinstance(data.get("bundle"), dict):
        problems += _problems(data["bundle"], BUNDLE_KEYS, "bundle.")
    if problems:
        raise BadInputError(f"{path} does not match the manifest schema ({len(problems)} problem(s))",
                            details=problems[:20],
                            why="a manifest is read strictly: it decides what a device trusts",
                            fix="re-export (or re-bundle) with this deployconv version; never edit manifest.json")
    return data
