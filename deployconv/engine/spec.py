"""EngineSpec: the engine-specific data a TensorRT build needs beyond the Target (profile policy, optimisation
level, memory pools, timing cache, DLA, compatibility, strong typing). Pure and torch-free.

A Target stays the single description of what to deploy; `engine_spec_for(target)` reads from it: name,
precision, the shape policy (dynamic_batch; max_batch for dynamic targets, batch for static ones), its
[tensorrt] section (builder_optimization_level, workspace_mib, dla_core, gpu_fallback, version_compatible,
hardware_compatibility, min/max_version; any other key named like an EngineSpec field flows in too) and the
[device] section's SM list. Keys that are not engine settings (plugin_archs) are left to their owners.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from deployconv.core.errors import BadInputError
from deployconv.core.target import get_target

PRECISIONS = ("fp32", "fp16", "int8", "bf16")
HARDWARE_COMPATIBILITY = ("none", "ampere+", "same_compute_capability")
STRONGLY_TYPED_POLICIES = ("auto", "always", "never")
# Memory pools deployconv exposes (MiB); the DLA pools only mean something with a DLA core.
MEMORY_POOLS = ("workspace", "dla_sram", "dla_local_dram", "dla_global_dram")
DLA_POOLS = ("dla_sram", "dla_local_dram", "dla_global_dram")
MAX_OPTIMIZATION_LEVEL = 5
DEFAULT_OPTIMIZATION_LEVEL = 3  # TensorRT's own default

ShapeTriple = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


@dataclass(frozen=True)
class EngineSpec:
    """How to turn one ONNX model into one TensorRT engine.

    Batch range: None means "the policy default" (dynamic batch: min 1, opt 1, max 16, a latency-oriented
    profile; static engines: the model's own batch). `shapes` gives explicit (min, opt, max) shapes per input
    name and wins over the batch range for that input; it is how non-batch dynamic dims (H, W) get sizes.
    `profiles`: several optimization profiles, each a `shapes` mapping; when given, `shapes` must be empty or
    equal the first, and the engine gets one TensorRT optimization profile per entry, in order (index 0 is the
    one a plain run uses).
    `strongly_typed`: "auto" (TensorRT 10: strongly typed when the ONNX already carries the target's precision;
    TensorRT 11: always), "always", or "never" (TensorRT 10 only: precision builder flags).
    """

    target: str
    precision: str = "fp32"
    dynamic_batch: bool = True
    min_batch: int | None = None
    opt_batch: int | None = None
    max_batch: int | None = None
    shapes: Mapping[str, ShapeTriple] = field(default_factory=dict)
    profiles: tuple[Mapping[str, ShapeTriple], ...] = ()
    optimization_level: int = DEFAULT_OPTIMIZATION_LEVEL
    memory_pools_mib: Mapping[str, int] = field(default_factory=dict)
    timing_cache: str | None = None
    dla_core: int | None = None
    gpu_fallback: bool = False
    version_compatible: bool = False
    exclude_lean_runtime: bool = False
    hardware_compatibility: str = "none"
    strongly_typed: str = "auto"
    min_trt: str | None = None  # the TensorRT versions the target supports (inclusive; "10.3" covers 10.3.x)
    max_trt: str | None = None
    device_sm: tuple[int, ...] = ()  # the SMs the target is for (e.g. (87,) for Orin); () = any

    def __post_init__(self) -> None:
        object.__setattr__(self, "shapes", {str(k): _shape_triple(k, v) for k, v in dict(self.shapes).items()})
        object.__setattr__(self, "profiles", tuple({str(k): _shape_triple(k, v) for k, v in dict(p).items()}
                                                   for p in self.profiles))
        object.__setattr__(self, "memory_pools_mib", dict(self.memory_pools_mib))
        object.__setattr__(self, "device_sm", tuple(int(v) for v in self.device_sm))
        for problem in _problems(self):
            raise problem

    @property
    def uses_dla(self) -> bool:
        return self.dla_core is not None

    def profile_shapes(self) -> tuple[Mapping[str, ShapeTriple], ...]:
        """The shapes of each optimization profile, in order: `profiles`, or `shapes` as the only one."""
        return self.profiles or (self.shapes,)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shapes"] = {k: [list(s) for s in v] for k, v in self.shapes.items()}
        d["profiles"] = [{k: [list(s) for s in v] for k, v in p.items()} for p in self.profiles]
        return d


def _shape_triple(name: object, value: Any) -> ShapeTriple:
    """(min, opt, max) as tuples of ints; a single shape means min = opt = max."""
    try:
        seq = list(value)
        if seq and all(isinstance(d, int) for d in seq):  # one shape for all three
            seq = [seq, seq, seq]
        if len(seq) != 3:
            raise ValueError
        triple = tuple(tuple(int(d) for d in s) for s in seq)
    except (TypeError, ValueError):
        raise BadInputError(f"shapes[{name!r}] must be one shape or three (min, opt, max), got {value!r}",
                            fix="e.g. shapes={'x': ((1, 3, 224, 224), (8, 3, 224, 224), (16, 3, 224, 224))}") from None
    return triple  # type: ignore[return-value]


def _problems(s: EngineSpec) -> list[BadInputError]:
    out: list[BadInputError] = []

    def bad(what: str, fix: str = "", why: str = "") -> None:
        out.append(BadInputError(f"engine spec for {s.target!r}: {what}", why=why, fix=fix))

    if s.precision not in PRECISIONS:
        bad(f"unknown precision {s.precision!r}", fix=f"choose one of {', '.join(PRECISIONS)}")
    if not 0 <= s.optimization_level <= MAX_OPTIMIZATION_LEVEL:
        bad(f"optimization level {s.optimization_level} is outside 0..{MAX_OPTIMIZATION_LEVEL}",
            fix=f"use 0 (fast build) to {MAX_OPTIMIZATION_LEVEL} (slowest build, most tactics); 3 is the default")
    batches = {"min_batch": s.min_batch, "opt_batch": s.opt_batch, "max_batch": s.max_batch}
    for k, v in batches.items():
        if v is not None and v < 1:
            bad(f"{k} must be >= 1, got {v}")
    given = [v for v in (s.min_batch, s.opt_batch, s.max_batch) if v is not None]
    if given != sorted(given):
        bad(f"batch range must satisfy min <= opt <= max, got min={s.min_batch} opt={s.opt_batch} max={s.max_batch}")
    if s.hardware_compatibility not in HARDWARE_COMPATIBILITY:
        bad(f"unknown hardware compatibility {s.hardware_compatibility!r}",
            fix=f"choose one of {', '.join(HARDWARE_COMPATIBILITY)}")
    if s.strongly_typed not in STRONGLY_TYPED_POLICIES:
        bad(f"unknown strongly_typed policy {s.strongly_typed!r}", fix=f"choose one of {', '.join(STRONGLY_TYPED_POLICIES)}")
    if s.dla_core is not None and s.dla_core < 0:
        bad(f"DLA core must be >= 0, got {s.dla_core}")
    if s.gpu_fallback and s.dla_core is None:
        bad("gpu_fallback is set without a DLA core", why="GPU fallback only decides where DLA-unsupported layers run",
            fix="set dla_core, or drop gpu_fallback")
    if s.dla_core is not None and s.hardware_compatibility != "none":
        bad("a DLA engine cannot be hardware compatible", why="DLA loadables are built for one DLA version",
            fix="use hardware_compatibility='none' for DLA targets")
    if s.exclude_lean_runtime and not s.version_compatible:
        bad("exclude_lean_runtime needs version_compatible", why="only version-compatible plans embed a lean runtime",
            fix="set version_compatible=True, or drop exclude_lean_runtime")
    for pool, mib in s.memory_pools_mib.items():
        if pool not in MEMORY_POOLS:
            bad(f"unknown memory pool {pool!r}", fix=f"choose from {', '.join(MEMORY_POOLS)}")
        elif not isinstance(mib, int) or mib < 1:
            bad(f"memory pool {pool} must be a whole number of MiB >= 1, got {mib!r}")
        elif pool in DLA_POOLS and s.dla_core is None:
            bad(f"memory pool {pool} is a DLA pool but no DLA core is set", fix="set dla_core or drop the pool")
        elif pool in DLA_POOLS and mib & (mib - 1):
            lo, hi = nearest_powers_of_two(mib)
            bad(f"memory pool {pool} is {mib} MiB, not a power of two",
                why="TensorRT requires each DLA pool to be a power of two and at least 4 KiB (NvInfer.h, "
                    "MemoryPoolType)", fix=f"use {lo} or {hi} MiB")
    for key in ("min_trt", "max_trt"):
        v = getattr(s, key)
        if v is not None and not re.fullmatch(r"\d+(\.\d+){0,2}", str(v)):
            bad(f"{key} {v!r} is not a TensorRT version", fix="write it as MAJOR.MINOR[.PATCH], e.g. 10.3")
    if s.profiles and s.shapes and dict(s.shapes) != dict(s.profiles[0]):
        bad("both shapes and profiles are given and shapes is not the first profile",
            fix="give the shapes as profiles[0], or give shapes alone (one profile)")
    if len(s.profiles) > 1 and s.uses_dla:
        bad(f"{len(s.profiles)} optimization profiles asked of a DLA engine", why="DLA runs static shapes only",
            fix="give one shape per input (shapes={name: shape})")
    every = [(f"profiles[{i}][{n!r}]" if s.profiles else f"shapes[{n!r}]", t)
             for i, p in enumerate(s.profile_shapes()) for n, t in p.items()]
    for name, triple in every:
        lo, opt, hi = triple
        if not len(lo) == len(opt) == len(hi):
            bad(f"{name}: min/opt/max have different ranks: {lo}, {opt}, {hi}")
        elif any(d < 1 for d in (*lo, *opt, *hi)):
            bad(f"{name}: every dim must be >= 1, got {lo}, {opt}, {hi}")
        elif not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
            bad(f"{name}: needs min <= opt <= max in every dim, got {lo}, {opt}, {hi}")
    return out


def nearest_powers_of_two(n: int) -> tuple[int, int]:
    """The powers of two just below and just above `n` (n >= 1; both equal n when it is one)."""
    lo = 1 << (int(n).bit_length() - 1)
    return (lo, lo) if lo == n else (lo, lo << 1)


_SPEC_FIELDS = tuple(f.name for f in fields(EngineSpec))


# [tensorrt] keys whose EngineSpec field has another name; "workspace_mib" becomes memory_pools_mib["workspace"]
_TENSORRT_RENAMES = {"builder_optimization_level": "optimization_level", "min_version": "min_trt",
                     "max_version": "max_trt"}


def _as_dict(target: Any) -> dict[str, Any]:
    """A Target as its dict form (object, `Target.to_dict()` mapping, or name)."""
    if isinstance(target, str):
        target = get_target(target)
    if isinstance(target, Mapping):
        data = dict(target)
    elif hasattr(target, "to_dict"):
        data = target.to_dict()
    else:
        raise BadInputError(f"cannot read a target from {type(target).__name__}",
                            fix="pass a Target, its to_dict() (e.g. manifest['target']) or a target name")
    if "name" not in data:
        raise BadInputError("the target has no name", fix="pass a Target or a manifest's 'target' entry")
    return data


def _target_fields(target: Any) -> dict[str, Any]:
    """The EngineSpec fields a Target determines (see the module docstring)."""
    data = _as_dict(target)
    out: dict[str, Any] = {"target": data["name"]}
    if "precision" in data:
        out["precision"] = data["precision"]
    dynamic = bool(data.get("dynamic_batch", True))
    out["dynamic_batch"] = dynamic
    if dynamic and data.get("max_batch") is not None:
        out["max_batch"] = int(data["max_batch"])
    if not dynamic and data.get("batch") is not None:
        out["opt_batch"] = int(data["batch"])
    trt = dict(data.get("tensorrt") or {})
    pools: dict[str, int] = {}
    for key, value in trt.items():
        name = _TENSORRT_RENAMES.get(key, key)
        if name == "workspace_mib":
            if value is not None:
                pools["workspace"] = int(value)
        elif name == "gpu_fallback":
            continue  # only meaningful with a DLA core: below
        elif name in _SPEC_FIELDS and name != "target" and value is not None:
            out[name] = value
    if pools:
        out["memory_pools_mib"] = pools
    if trt.get("dla_core") is not None:
        out["gpu_fallback"] = bool(trt.get("gpu_fallback", False))
    device = data.get("device") or {}
    if device.get("sm"):
        out["device_sm"] = tuple(device["sm"])
    return out


def engine_spec_for(target: Any, **overrides: Any) -> EngineSpec:
    """The EngineSpec for `target` (a Target, its dict form, a target name, or an EngineSpec to adjust), with
    `overrides` (EngineSpec field names) applied last. Unknown override names are a BadInputError."""
    unknown = sorted(set(overrides) - set(_SPEC_FIELDS))
    if unknown:
        raise BadInputError(f"unknown engine setting(s) {', '.join(map(repr, unknown))}",
                            fix=f"engine settings are: {', '.join(_SPEC_FIELDS)}")
    if isinstance(target, EngineSpec):
        return replace(target, **overrides)
    return EngineSpec(**{**_target_fields(target), **overrides})
