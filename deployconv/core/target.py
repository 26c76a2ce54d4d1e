"""Targets are data: runtime, precision, lowering per custom op, shape policy, parity budget, TensorRT and device
constraints.

Built-in targets are TOML files in `deployconv/core/target_files/`; a user passes their own with
`--target path/to/target.toml`. Adding a target means adding a file, never a branch in the pipeline. Unknown keys
are errors (a typo must not silently fall back to a default). Torch-free: a Jetson without PyTorch reads these.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

from deployconv.core.artifacts.manifest import Manifest
from deployconv.core.errors import BadInputError
from deployconv.core.support_matrix import Refusal, target_refusals

if sys.version_info >= (3, 11):
    import tomllib
else:  # JetPack 6 ships Python 3.10
    import tomli as tomllib

TARGET_DIR = Path(__file__).with_name("target_files")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
RUNTIMES = ("onnxruntime", "tensorrt")
LOWERINGS = ("standard", "plugin")


@dataclass(frozen=True)
class Budget:
    """Parity tolerance between consecutive stages (and against the fp64 reference)."""

    max_abs_rel_scale: float  # max |a-b| / max |ref|
    min_cosine: float
    min_top1_agreement: float | None = None  # None: reported, not gated


@dataclass(frozen=True)
class QuantSpec:
    """int8 defaults: explicit Q/DQ, per-channel symmetric weights, per-tensor activations."""

    activation: str = "int8"  # "int8" (symmetric, TensorRT-compatible) | "uint8" (ORT CPU U8S8)
    method: str = "minmax"  # "minmax" | "entropy" | "percentile"
    samples: int = 64
    # node names (or fnmatch patterns) kept out of int8, e.g. the set `deployconv debug precision` chose
    keep_float: tuple[str, ...] = ()


@dataclass(frozen=True)
class TensorRTSpec:
    """What the engine step needs beyond the ONNX: version range, plugin archs, builder knobs, DLA."""

    min_version: str = "10.1"  # ONNX parser imports IPluginV3 plugins from 10.1
    max_version: str | None = None  # inclusive upper bound, None = open
    plugin_archs: tuple[int, ...] = (87, 89, 90, 100, 110)
    builder_optimization_level: int = 3
    workspace_mib: int | None = None
    dla_core: int | None = None
    gpu_fallback: bool = True
    version_compatible: bool = False
    hardware_compatibility: str = "none"  # "none" | "ampere+" | "same_compute_capability"


@dataclass(frozen=True)
class DeviceSpec:
    """The device a target is for; `deployconv check` compares these with what it finds."""

    family: str = "any-nvidia-gpu"
    jetpack: tuple[str, ...] = ()
    sm: tuple[int, ...] = ()
    has_dla: bool = False
    notes: tuple[str, ...] = ()  # what is unsupported there, said once, shown by `deployconv targets`


@dataclass(frozen=True)
class Target:
    name: str
    runtime: str  # "onnxruntime" | "tensorrt"
    precision: str  # "fp32" | "fp16" | "bf16" | "int8"
    lowering: str  # default lowering for every custom op: "standard" | "plugin"
    lowering_overrides: dict[str, str] = field(default_factory=dict)
    opset: int = 20  # 20: native Gelu (UniRepLKNet), DeformConv needs >= 19
    dynamic_batch: bool = True
    batch: int | None = None  # static-shape targets: the batch when --batch is not given
    max_batch: int = 32  # optimization-profile max for dynamic batch
    io_dtype: str = "fp32"
    budget: Budget = Budget(1e-4, 0.99999)
    quant: QuantSpec | None = None
    tensorrt: TensorRTSpec | None = None
    device: DeviceSpec | None = None
    description: str = ""
    source: str = "built-in"

    def lowering_for(self, op: str) -> str:
        return self.lowering_overrides.get(op, self.lowering)

    @property
    def uses_dla(self) -> bool:
        return self.tensorrt is not None and self.tensorrt.dla_core is not None

    def to_dict(self) -> dict:
        return asdict(self)


FP32_BUDGET = Budget(max_abs_rel_scale=1e-4, min_cosine=0.99999)


def chain_budget(target: Any, stage_precision: str = "fp32") -> Budget:
    """The budget a parity-chain stage that computes in `stage_precision` is held to on `target`'s chain (export
    and validate both ask here). A stage in the target's reduced precision (the fp16/int8 ONNX, a bf16/fp16/int8
    engine) gets the target's budget. Every fp32 stage (PyTorch, the fp32 ONNX, a bf16 target's ONNX, which stays
    fp32) gets the target's budget only on an fp32 target, else FP32_BUDGET: a loose reduced-precision budget
    (bf16: 1e-1) must not hide a reparameterization or export error in stages that have no reason to lose it.
    `target`: a Target or anything with `precision` and `budget`."""
    if stage_precision == "fp32" and target.precision != "fp32":
        return FP32_BUDGET
    return target.budget


def onnx_precision(precision: str) -> str:
    """The precision the exported ONNX computes in: the target's, except bf16, whose ONNX stays fp32 (TensorRT
    10's BF16 flag lowers it; ONNX Runtime CPU cannot run bf16)."""
    return "fp32" if precision == "bf16" else precision

# Keys an older target file or manifest target_spec may hold that no longer mean anything; dropped on load so old
# exports still validate. benchmark_runtime was set in 9 built-in files and read nowhere: the runtime a target is
# timed and validated on is its `runtime` (ONNX Runtime, or the TensorRT engine).
RETIRED_KEYS = frozenset({"benchmark_runtime"})
_SECTIONS: dict[str, type] = {"budget": Budget, "quant": QuantSpec, "tensorrt": TensorRTSpec, "device": DeviceSpec}
_SHAPE_KEYS = {"dynamic_batch", "batch", "max_batch"}


_SCALARS = {"str": (str,), "int": (int,), "float": (float, int), "bool": (bool,)}


def _field_problems(obj: Any) -> list[str]:
    """Fields whose value does not fit the dataclass annotation (str, int, float, bool, X | None, tuple[X, ...],
    dict[str, str]); nested sections are checked by their own _build."""
    out = []
    for f in fields(obj):
        value, ann = getattr(obj, f.name), str(f.type)
        if value is None and "None" in ann:
            continue
        base = ann.replace(" | None", "").strip()
        if base in _SCALARS:
            ok = isinstance(value, _SCALARS[base]) and (base == "bool" or not isinstance(value, bool))
        elif base.startswith("tuple["):
            inner = _SCALARS.get(base[6:].split(",")[0].strip(), (object,))
            ok = isinstance(value, tuple) and all(isinstance(v, inner) and not isinstance(v, bool) for v in value)
        elif base.startswith("dict["):
            ok = isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        else:
            ok = True
        if not ok:
            out.append(f"{f.name} = {value!r} is not {ann}")
    return out


def _bad(where: str, what: str, fix: str) -> BadInputError:
    return BadInputError(f"target {where}: {what}", fix=fix)


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _bad(where, f"unknown key(s) {', '.join(unknown)}", f"valid keys: {', '.join(sorted(known))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        obj = cls(**values)
    except TypeError as e:
        raise _bad(where, str(e), "see deployconv/core/target_files/*.toml for complete examples") from None
    wrong = _field_problems(obj)
    if wrong:
        raise _bad(where, "wrong type: " + "; ".join(wrong), "see deployconv/core/target_files/*.toml")
    return obj


def target_from_dict(data: dict[str, Any], where: str) -> Target:
    """Validate one parsed TOML document (top-level keys, [shapes], [budget], [quant], [tensorrt], [device]).
    A value of the wrong type anywhere is a BadInputError naming the file, never a TypeError later."""
    if not isinstance(data, dict):
        raise _bad(where, f"is {type(data).__name__}, not a table", "see deployconv/core/target_files/*.toml")
    try:
        target = _target_from_dict(data, where)
    except (TypeError, ValueError, AttributeError) as e:
        raise _bad(where, f"a value has the wrong type ({e})",
                   "see deployconv/core/target_files/*.toml for complete examples") from None
    return target


def _target_from_dict(data: dict[str, Any], where: str) -> Target:
    data = {k: v for k, v in data.items() if k not in RETIRED_KEYS}
    kw: dict[str, Any] = {}
    shapes = data.pop("shapes", {})
    if set(shapes) - _SHAPE_KEYS:
        raise _bad(where, f"unknown [shapes] key(s) {', '.join(sorted(set(shapes) - _SHAPE_KEYS))}",
                   f"valid keys: {', '.join(sorted(_SHAPE_KEYS))}")
    kw.update(shapes)
    for section, cls in _SECTIONS.items():
        value = data.pop(section, None)
        if value is not None:  # to_dict() writes absent sections as null
            kw[section] = _build(cls, value, f"{where} [{section}]")
    if "lowering_overrides" in data:
        kw["lowering_overrides"] = dict(data.pop("lowering_overrides"))
    kw.update(data)
    target = _build(Target, kw, where)
    _validate(target, where)
    return target


def _validate(t: Target, where: str) -> None:
    checks = [
        (t.runtime in RUNTIMES, f"runtime {t.runtime!r}", f"use one of {RUNTIMES}"),
        (t.precision in PRECISIONS, f"precision {t.precision!r}", f"use one of {PRECISIONS}"),
        (t.io_dtype in ("fp32", "fp16"), f"io_dtype {t.io_dtype!r}", "use fp32 or fp16"),
        (all(v in LOWERINGS for v in (t.lowering, *t.lowering_overrides.values())),
         f"lowering {t.lowering!r} / overrides {t.lowering_overrides}", f"use one of {LOWERINGS}"),
        (t.dynamic_batch or (t.batch or 1) >= 1, f"batch {t.batch}", "a static batch is >= 1"),
        (t.quant is None or t.quant.activation in ("int8", "uint8"), "quant.activation", "int8 or uint8"),
        (t.quant is None or t.quant.method in ("minmax", "entropy", "percentile"), "quant.method",
         "minmax, entropy or percentile"),
        (t.tensorrt is None or t.tensorrt.hardware_compatibility in ("none", "ampere+", "same_compute_capability"),
         "tensorrt.hardware_compatibility", "none, ampere+ or same_compute_capability"),
        (not t.uses_dla or t.precision in ("fp16", "int8"), f"DLA with precision {t.precision}",
         "DLA runs fp16 and int8 only"),
        (not t.uses_dla or not t.dynamic_batch, "DLA with a dynamic batch", "set [shapes] dynamic_batch = false"),
        (t.precision != "int8" or t.quant is not None, "int8 without a [quant] section", "add [quant]"),
    ]
    for ok, what, fix in checks:
        if not ok:
            raise _bad(where, f"invalid {what}", fix)
    for refusal in platform_refusals(t):
        raise refusal.error(f"target {where}")


def platform_refusals(t: Target) -> list[Refusal]:
    """The impossible device / JetPack / TensorRT / DLA combinations `t` declares (deployconv.core.support_matrix)."""
    if t.runtime != "tensorrt" and not t.uses_dla:
        return []
    trt, dev = t.tensorrt, t.device
    return target_refusals(family=dev.family if dev else None, jetpack=tuple(dev.jetpack) if dev else (),
                           sm=tuple(dev.sm) if dev else (), min_trt=trt.min_version if trt else None,
                           max_trt=trt.max_version if trt else None, dla=t.uses_dla, precision=t.precision)


def load_target_file(path: Path) -> Target:
    where = str(path)
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as e:
        raise _bad(where, f"cannot be read ({e.strerror})", "pass an existing .toml file") from None
    except UnicodeDecodeError as e:
        raise _bad(where, f"is not UTF-8 text ({e.reason} at byte {e.start})", "save it as UTF-8 TOML") from None
    except tomllib.TOMLDecodeError as e:
        raise _bad(where, f"is not valid TOML ({e})", "fix the syntax; see the built-in target files") from None
    target = target_from_dict(data, where)
    return target if path.parent == TARGET_DIR else _replace_source(target, str(path))


def _replace_source(t: Target, source: str) -> Target:
    from dataclasses import replace

    return replace(t, source=source)


@cache
def builtin_targets() -> dict[str, Target]:
    out: dict[str, Target] = {}
    for path in sorted(TARGET_DIR.glob("*.toml")):
        t = load_target_file(path)
        if t.name != path.stem:
            raise _bad(str(path), f"declares name {t.name!r}", "the file name and `name` must agree")
        out[t.name] = t
    return out


def __getattr__(name: str) -> Any:  # TARGETS stays importable, loaded on first use
    if name == "TARGETS":
        return builtin_targets()
    raise AttributeError(name)


def get_target(name: str | Path) -> Target:
    """A built-in target by name, or a user target file (`*.toml`)."""
    text = str(name)
    if text.endswith(".toml"):
        return load_target_file(Path(text))
    targets = builtin_targets()
    if text in targets:
        return targets[text]
    close = difflib.get_close_matches(text, list(targets), n=3, cutoff=0.4)
    raise BadInputError(f"unknown target {text!r}",
                        fix=(f"did you mean {', '.join(close)}? " if close else "")
                        + f"available: {', '.join(targets)}, or a path to a target .toml file")


def target_of_manifest(manifest: Manifest, where: str) -> Target:
    """The target an exported directory was made for: its recorded spec (user .toml files travel with the export),
    else the built-in of that name."""
    spec = manifest.target_spec
    return target_from_dict(spec, where) if spec else get_target(manifest.target)
