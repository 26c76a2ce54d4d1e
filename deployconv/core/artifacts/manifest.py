"""manifest.json as a type: `Manifest` (an export's; a bundle's adds `bundle`, a BundleInfo), read strictly.

A manifest crosses the trust boundary, so `from_dict` never guesses: an unknown key, a missing one or a wrong type
is a BadInputError (exit 2) naming the key, before any value is used; a manifest of a newer major schema is refused
("upgrade deployconv"). `to_dict` writes the same keys back. Pure: reading the file is deployconv.trust.manifest's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from deployconv.core.artifacts import version
from deployconv.core.artifacts.checks import (
    BOOL,
    DICT,
    INT,
    NAME,
    STR,
    Keys,
    is_hex64,
    is_rel_path,
    list_of,
    optional,
    problems,
)
from deployconv.core.artifacts.engine import EngineEntry
from deployconv.core.artifacts.names import MODEL_ONNX
from deployconv.core.errors import BadInputError

EXPORT_FORMAT = str(version.EXPORT)
BUNDLE_FORMAT = str(version.BUNDLE)


def _io_row(v: Any) -> bool:
    return (isinstance(v, dict) and isinstance(v.get("name"), str) and isinstance(v.get("dtype"), str)
            and list_of(lambda d: d is None or (isinstance(d, (int, str)) and not isinstance(d, bool)))(v.get("shape")))


def _io(v: Any) -> bool:
    return isinstance(v, dict) and set(v) == {"inputs", "outputs"} and all(list_of(_io_row)(v[k]) for k in v)


def _plugin(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(v.get(k), str) for k in ("name", "version", "namespace"))


def _files(v: Any) -> bool:  # the paths themselves are judged by deployconv.trust.closed, which names each one
    return isinstance(v, dict) and all(isinstance(k, str) and is_hex64(h) for k, h in v.items())


EXPORT_KEYS: Keys = {
    "format": (lambda v: v == EXPORT_FORMAT, True, f"the string {EXPORT_FORMAT!r}"),
    "model": (STR, True, "a string"),
    "model_source_sha256": (optional(is_hex64), False, "a sha256 (64 hex digits) or null"),
    "weights": (optional(STR), True, "a string or null"),
    "weights_sha256": (optional(is_hex64), True, "a sha256 or null"),
    "allow_missing": (list_of(STR), True, "a list of strings"),
    "reproducible": (BOOL, True, "true or false"),
    "init_seed": (INT, True, "an integer"),
    "target": (lambda v: isinstance(v, str) and bool(NAME.fullmatch(v)) and not v.endswith(".toml"), True,
               "a target name (letters, digits, _ . + -)"),
    "target_spec": (optional(DICT), True, "a table or null"),
    "runtime": (lambda v: v in ("onnxruntime", "tensorrt"), True, "onnxruntime or tensorrt"),
    "precision": (STR, True, "a string"),
    "io_dtype": (STR, True, "a string"),
    "opset": (INT, True, "an integer"),
    "batch": (optional(INT), True, "an integer or null"),
    "exporter": (STR, True, "a string"),
    "exporter_fallback_reason": (optional(STR), True, "a string or null"),
    "lowering": (DICT, True, "a table"),
    "plugins": (list_of(_plugin), True, "a list of {name, version, namespace}"),
    "ort_model": (is_rel_path, True, "a relative path inside the folder"),
    "precision_report": (optional(DICT), True, "a table or null"),
    "dla": (optional(DICT), True, "a table or null"),
    "engine": (optional(DICT), True, "a table or null"),
    "io": (_io, True, "{inputs: [...], outputs: [...]} of {name, dtype, shape}"),
    # Declared inputs (symbols, ranges, profiles) and flattened output names/structure; shapes only, no paths.
    "io_spec": (optional(DICT), False, "a table or null"),
    "input_preprocessing": (DICT, True, "a table"),
    "parity_passed": (BOOL, True, "true or false"),
    "files": (_files, True, "a table of path -> sha256"),
    "tools": (lambda v: isinstance(v, dict) and all(x is None or isinstance(x, str) for x in v.values()), True,
              "a table of tool -> version"),
    "bundle": (DICT, False, "a table"),
}

BUNDLE_KEYS: Keys = {
    "format": (lambda v: v == BUNDLE_FORMAT, True, f"the string {BUNDLE_FORMAT!r}"),
    "export_manifest_sha256": (is_hex64, True, "a sha256"),
    "plugin_sources": (lambda v: INT(v) and v >= 0, True, "a count"),
    "python_sources": (lambda v: INT(v) and v >= 0, True, "a count"),
    "plugin_library": (optional(STR), True, "a string or null"),
    "plugin_archs": (list_of(INT), True, "a list of integers"),
    "dla": (optional(DICT), True, "a table or null"),
    "trtexec": (optional(STR), True, "a string or null"),
    "trtexec_run": (optional(STR), True, "a string or null"),
}


@dataclass(frozen=True)
class PluginRef:
    """A TensorRT plugin the graph uses (name, version, namespace), as the plugin library registers it."""

    name: str
    version: str
    namespace: str


@dataclass(frozen=True)
class BundleInfo:
    """What `deployconv bundle` adds: where it came from and what the device builds."""

    format: str
    export_manifest_sha256: str
    plugin_sources: int
    python_sources: int
    plugin_library: str | None
    plugin_archs: tuple[int, ...]
    dla: dict[str, Any] | None
    trtexec: str | None
    trtexec_run: str | None

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["plugin_archs"] = list(self.plugin_archs)
        return out


@dataclass(frozen=True)
class Manifest:
    """An export's manifest.json; a bundle's when `bundle` is set. `files`: path -> sha256 of every other file."""

    format: str
    model: str
    weights: str | None
    weights_sha256: str | None
    allow_missing: tuple[str, ...]
    reproducible: bool
    init_seed: int
    target: str
    target_spec: dict[str, Any] | None
    runtime: str
    precision: str
    io_dtype: str
    opset: int
    batch: int | None
    exporter: str
    exporter_fallback_reason: str | None
    lowering: dict[str, Any]
    plugins: tuple[PluginRef, ...]
    ort_model: str
    precision_report: dict[str, Any] | None
    dla: dict[str, Any] | None
    engine: EngineEntry | None
    io: dict[str, Any]
    input_preprocessing: dict[str, Any]
    parity_passed: bool
    files: dict[str, str] = field(default_factory=dict)
    tools: dict[str, str | None] = field(default_factory=dict)
    model_source_sha256: str | None = None
    io_spec: dict[str, Any] | None = None
    bundle: BundleInfo | None = None

    @property
    def is_bundle(self) -> bool:
        return self.bundle is not None

    @property
    def plugin_names(self) -> list[str]:
        return [p.name for p in self.plugins]

    @property
    def has_ort_twin(self) -> bool:
        """Whether ONNX Runtime runs a twin graph (ort/model.onnx) because model.onnx has plugin nodes."""
        return self.ort_model != MODEL_ONNX

    @classmethod
    def from_dict(cls, data: Any, where: str = "manifest.json") -> Manifest:
        """Strict: BadInputError (exit 2) listing every unknown, missing or mistyped key; a newer major schema is
        refused with 'upgrade deployconv'."""
        if not isinstance(data, dict):
            raise BadInputError(f"{where} is not a manifest (a JSON object)", fix="re-export; never edit manifest.json")
        version.require_readable(data.get("format"), version.EXPORT, where)
        if isinstance(data.get("bundle"), dict):
            version.require_readable(data["bundle"].get("format"), version.BUNDLE, where)
        found = problems(data, EXPORT_KEYS)
        if isinstance(data.get("bundle"), dict):
            found += problems(data["bundle"], BUNDLE_KEYS, "bundle.")
        if found:
            raise BadInputError(f"{where} does not match the manifest schema ({len(found)} problem(s))",
                                details=found[:20],
                                why="a manifest is read strictly: it decides what a device trusts",
                                fix="re-export (or re-bundle) with this deployconv version; never edit manifest.json")
        engine = data["engine"]
        bundle = data.get("bundle")
        return cls(**{**data,
                      "allow_missing": tuple(data["allow_missing"]),
                      "plugins": tuple(PluginRef(p["name"], p["version"], p["namespace"]) for p in data["plugins"]),
                      "engine": None if engine is None else EngineEntry.from_dict(engine),
                      "bundle": None if bundle is None else BundleInfo(**{**bundle,
                                                                          "plugin_archs": tuple(bundle["plugin_archs"])})})

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, keys in the order the export has always written them; `bundle` only for a bundle."""
        out: dict[str, Any] = {"format": self.format, "model": self.model,
                               "model_source_sha256": self.model_source_sha256}
        for f in fields(self):
            if f.name not in out and f.name not in ("files", "tools", "bundle"):
                out[f.name] = getattr(self, f.name)
        out["allow_missing"] = list(self.allow_missing)
        out["plugins"] = [{"name": p.name, "version": p.version, "namespace": p.namespace} for p in self.plugins]
        out["engine"] = None if self.engine is None else self.engine.to_dict()
        out["files"], out["tools"] = dict(self.files), dict(self.tools)
        if self.bundle is not None:
            out["bundle"] = self.bundle.to_dict()
        return out

    def body(self) -> dict[str, Any]:
        """to_dict() without `files`: what a writer hands deployconv.trust.manifest.write_manifest, which hashes
        the folder's files now."""
        out = self.to_dict()
        del out["files"]
        return out


def as_manifest(value: Manifest | Mapping[str, Any], where: str = "manifest.json") -> Manifest:
    """A Manifest from either form (API callers may still hold the parsed JSON)."""
    return value if isinstance(value, Manifest) else Manifest.from_dict(dict(value), where)
