"""The optimization profile (min / opt / max shape per input) from the ONNX inputs and the EngineSpec. Pure.

Rules, in order:
- an input listed in `spec.shapes` takes those shapes (checked against its rank and static dims);
- a dynamic dim 0, and any dim with the same symbolic name, is the batch: it takes the batch range;
- static dims stay as declared; any other dynamic dim without given shapes is an error that asks for them;
- a static engine (DLA, or a target with `dynamic_batch=False`) has min = opt = max everywhere;
- a batch to run at (min/opt) asked of a model whose batch is static must equal it; a max batch alone (the
  target's profile policy) does not apply to such a model and is only noted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from deployconv.core.errors import BadInputError
from deployconv.engine.onnx_facts import Dim, InputFact, OnnxFacts
from deployconv.engine.spec import EngineSpec, ShapeTriple

DEFAULT_MIN_BATCH = 1
DEFAULT_OPT_BATCH = 1  # latency first: kernels are tuned for the opt shape
DEFAULT_MAX_BATCH = 16


@dataclass(frozen=True)
class ShapeRange:
    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]
    dynamic: bool  # the model declares a dynamic dim here, so TensorRT needs this entry in its profile

    @property
    def static(self) -> bool:
        return self.min == self.opt == self.max

    def to_dict(self) -> dict[str, Any]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max), "dynamic": self.dynamic}


@dataclass(frozen=True)
class Profile:
    inputs: tuple[ShapeRange, ...]
    batch: tuple[int, int, int] | None  # (min, opt, max) of the batch dim; None: the model has no dynamic batch
    notes: tuple[str, ...] = ()

    @property
    def needed(self) -> bool:
        """Whether TensorRT needs an optimization profile at all (some input is dynamic in the model)."""
        return any(r.dynamic for r in self.inputs)

    @property
    def static(self) -> bool:
        return all(r.static for r in self.inputs)

    def dynamic_inputs(self) -> tuple[ShapeRange, ...]:
        return tuple(r for r in self.inputs if r.dynamic)

    def __getitem__(self, name: str) -> ShapeRange:
        for r in self.inputs:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"batch": None if self.batch is None else list(self.batch),
                "inputs": {r.name: r.to_dict() for r in self.inputs}, "notes": list(self.notes)}


def _is_dynamic(d: Dim) -> bool:
    return not isinstance(d, int) or d < 0


def describe(inp: InputFact) -> str:
    dims = "?" if inp.shape is None else ", ".join("?" if d is None else str(d) for d in inp.shape)
    return f"{inp.name}: {inp.dtype or inp.elem_type or '?'}[{dims}]"


def _why_static(spec: EngineSpec) -> str:
    if spec.uses_dla:
        return "DLA runs static shapes only (min = opt = max)"
    return f"target {spec.target!r} builds a static engine (dynamic_batch=False)"


def resolve_batch(facts: OnnxFacts, spec: EngineSpec, notes: list[str] | None = None) -> tuple[int, int, int] | None:
    """The batch range, or None when no input has a dynamic batch (then a batch asked to run at must match the
    model's; a max batch alone is appended to `notes` as not applying)."""
    asked = {k: v for k, v in (("min", spec.min_batch), ("opt", spec.opt_batch), ("max", spec.max_batch))
             if v is not None}
    batched = [i for i in facts.inputs if i.shape and _is_dynamic(i.shape[0])]
    if not batched:
        static_batches = {i.shape[0] for i in facts.inputs if i.shape}
        run_at = {k: v for k, v in asked.items() if k != "max"}
        model = (f"a static batch of {next(iter(static_batches))}" if len(static_batches) == 1
                 else "no common batch dim")
        if run_at and (len(static_batches) != 1 or set(run_at.values()) != static_batches):
            names = ", ".join(f"{k}={v}" for k, v in asked.items())
            raise BadInputError(f"the model has {model}; the engine spec asks for batch {names}",
                                why="; ".join(describe(i) for i in facts.inputs),
                                fix="drop the batch settings, or re-export with a dynamic batch "
                                    "(a target with dynamic_batch=True)")
        if "max" in asked and notes is not None and static_batches != {asked["max"]}:
            notes.append(f"the model has {model}: max batch {asked['max']} does not apply (static engine)")
        return None
    if spec.uses_dla or not spec.dynamic_batch:
        b = spec.opt_batch or spec.min_batch or spec.max_batch or DEFAULT_OPT_BATCH
        if any(v != b for v in asked.values()):
            names = ", ".join(f"{k}={v}" for k, v in asked.items())
            raise BadInputError(f"a static engine needs one batch, the spec asks {names}", why=_why_static(spec),
                                fix="give one batch (opt_batch) or equal min/opt/max")
        return (b, b, b)
    lo = spec.min_batch or DEFAULT_MIN_BATCH
    opt = spec.opt_batch or max(lo, DEFAULT_OPT_BATCH)
    hi = spec.max_batch or max(DEFAULT_MAX_BATCH, opt)
    if not lo <= opt <= hi:
        raise BadInputError(f"batch range min={lo} opt={opt} max={hi} is not ordered (min <= opt <= max)",
                            fix="set min_batch, opt_batch and max_batch consistently")
    return (lo, opt, hi)


def _given_range(inp: InputFact, triple: ShapeTriple) -> ShapeRange:
    lo, opt, hi = triple
    if inp.shape is not None:
        if len(lo) != len(inp.shape):
            raise BadInputError(f"shapes[{inp.name!r}] has rank {len(lo)}, the model's input has rank {len(inp.shape)}",
                                why=f"declared input: {describe(inp)}")
        clash = [(i, d) for i, d in enumerate(inp.shape) if not _is_dynamic(d) and not lo[i] == opt[i] == hi[i] == d]
        if clash:
            dims = ", ".join(f"dim {i} is static {d}" for i, d in clash)
            raise BadInputError(f"shapes[{inp.name!r}] changes static dims of the model: {dims}",
                                why=f"declared input: {describe(inp)} (only dynamic dims may vary)",
                                fix=f"keep those dims at their declared sizes: {lo} -> min/opt/max")
    dynamic = inp.shape is None or bool(inp.dynamic_dims)
    return ShapeRange(inp.name, lo, opt, hi, dynamic)


def make_profile(facts: OnnxFacts, spec: EngineSpec) -> Profile:
    """The single optimization profile for `facts`' inputs under `spec` (see the module docstring)."""
    names = [i.name for i in facts.inputs]
    unknown = [n for n in spec.shapes if n not in names]
    if unknown:
        raise BadInputError(f"shapes given for unknown input(s) {', '.join(map(repr, unknown))}",
                            fix=f"the model's inputs are {', '.join(names) or '(none)'}")
    notes: list[str] = []
    batch = resolve_batch(facts, spec, notes)
    batch_symbols = {i.shape[0] for i in facts.inputs if i.shape and isinstance(i.shape[0], str)}
    ranges: list[ShapeRange] = []
    missing: list[tuple[InputFact, list[int]]] = []
    for inp in facts.inputs:
        if inp.name in spec.shapes:
            ranges.append(_given_range(inp, spec.shapes[inp.name]))
            continue
        if inp.shape is None:
            raise BadInputError(f"input {inp.name!r} has no declared shape (unknown rank)",
                                fix=f"give its shapes: shapes={{{inp.name!r}: (min, opt, max)}}")
        per_dim: list[tuple[int, int, int]] = []  # (min, opt, max) of each dim
        unresolved = []
        for i, d in enumerate(inp.shape):
            if not _is_dynamic(d):
                per_dim.append((d, d, d))  # type: ignore[arg-type]
            elif batch is not None and (i == 0 or (isinstance(d, str) and d in batch_symbols)):
                per_dim.append(batch)
            else:
                unresolved.append(i)
        if unresolved:
            missing.append((inp, unresolved))
            continue
        lo, opt, hi = (tuple(t[k] for t in per_dim) for k in range(3))
        ranges.append(ShapeRange(inp.name, lo, opt, hi, bool(inp.dynamic_dims)))
    if missing:
        lines = []
        for inp, dims in missing:
            labels = ", ".join(f"{i} ({inp.shape[i]!r})" if isinstance(inp.shape[i], str) else f"{i}"  # type: ignore[index]
                               for i in dims)
            lines.append(f"{describe(inp)}: dynamic dim(s) {labels}")
        first = missing[0][0]
        raise BadInputError("input(s) with dynamic dims besides the batch and no shapes given", details=lines,
                            why="a TensorRT optimization profile needs a min/opt/max size for every dynamic dim",
                            fix=f"give min/opt/max shapes, e.g. shapes={{{first.name!r}: (min, opt, max)}} "
                                "(one shape for all three builds a static profile)")
    profile = Profile(tuple(ranges), batch, tuple(notes))
    if (spec.uses_dla or not spec.dynamic_batch) and not profile.static:
        loose = ", ".join(r.name for r in profile.inputs if not r.static)
        raise BadInputError(f"a static engine needs min = opt = max, but {loose} has a range", why=_why_static(spec),
                            fix="give one shape per input (shapes={name: shape})")
    return profile


def make_profiles(facts: OnnxFacts, spec: EngineSpec) -> tuple[Profile, ...]:
    """One optimization profile per entry of `spec.profile_shapes()`, in order (each by `make_profile`)."""
    if not spec.profiles:
        return (make_profile(facts, spec),)
    out = []
    for i, shapes in enumerate(spec.profiles):
        try:
            out.append(make_profile(facts, replace(spec, shapes=shapes, profiles=())))
        except BadInputError as e:
            raise BadInputError(f"optimization profile {i}: {e.what}", why=e.why, fix=e.fix,
                                details=e.details) from None
    return tuple(out)
