"""What a model takes: named inputs of any rank and dtype, whose dims are numbers or named symbols with ranges.

`--input image=Bx3xHxW --input mask=BxHxW:int64 --dim B=1..16 --dim H=320..640..1344` becomes an IOSpec. Symbols
become dynamic ONNX dims (named after the symbol) and their (min, opt, max) ranges become the TensorRT
optimization profile; parity runs at the min, opt and max points. `--profile H=320..480..640,W=320..480..640`
(repeatable) asks for several profiles instead: each overrides some symbols' ranges inside their --dim range,
and the spec's own ranges become the union of the profiles (what parity runs at). Pure (no torch): torch-side helpers live in
`deployconv.models.io`. A zoo model's default is `input=Bx3xHxW` at its own size with B the batch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deployconv.core.errors import BadInputError

DTYPES = {"float32": "float32", "fp32": "float32", "float": "float32", "float16": "float16", "fp16": "float16",
          "int64": "int64", "long": "int64", "int32": "int32", "int": "int32", "bool": "bool", "uint8": "uint8"}
_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
POINTS = ("min", "opt", "max")
BATCH = "batch"  # the symbol of the default batch dim (the name existing dynamic-batch exports carry)


@dataclass(frozen=True)
class DimRange:
    """(min, opt, max) of one symbol; min = opt = max is a fixed size under a name."""

    min: int
    opt: int
    max: int

    @property
    def dynamic(self) -> bool:
        return self.min != self.max

    def at(self, point: str) -> int:
        return {"min": self.min, "opt": self.opt, "max": self.max}[point]


@dataclass(frozen=True)
class InputSpec:
    name: str
    dims: tuple[int | str, ...]
    dtype: str = "float32"
    # integer inputs: values drawn from [low, high) (a mask: 0..2; token ids: 0..vocab)
    low: int = 0
    high: int = 2

    def describe(self) -> str:
        return f"{self.name}={'x'.join(map(str, self.dims))}:{self.dtype}"


@dataclass(frozen=True)
class IOSpec:
    inputs: tuple[InputSpec, ...]
    ranges: dict[str, DimRange] = field(default_factory=dict)
    source: str = "default"  # "default" | "cli" | "example_inputs"
    # several optimization profiles: each the ranges it changes (others keep `ranges`); () = one, from `ranges`
    profiles: tuple[dict[str, DimRange], ...] = ()

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.inputs]

    def symbols(self) -> list[str]:
        seen: list[str] = []
        for i in self.inputs:
            seen += [d for d in i.dims if isinstance(d, str) and d not in seen]
        return seen

    def dynamic_symbols(self) -> list[str]:
        return [s for s in self.symbols() if self.ranges[s].dynamic]

    @property
    def points(self) -> tuple[str, ...]:
        """The shape points parity runs at: opt alone when only the batch varies (the reference batches cover
        it), else min, opt and max."""
        spatial = [s for s in self.dynamic_symbols() if not self.is_batch_symbol(s)]
        return POINTS if spatial else ("opt",)

    def is_batch_symbol(self, sym: str) -> bool:
        return all(i.dims.index(sym) == 0 for i in self.inputs if sym in i.dims) and \
            any(i.dims and i.dims[0] == sym for i in self.inputs)

    def shapes_at(self, point: str, batch: int | None = None) -> dict[str, tuple[int, ...]]:
        """Concrete shapes at a point; `batch` overrides batch symbols (parity batches, benchmarks)."""
        def size(d: int | str) -> int:
            if isinstance(d, int):
                return d
            if batch is not None and self.is_batch_symbol(d):
                return batch
            return self.ranges[d].at(point)

        return {i.name: tuple(size(d) for d in i.dims) for i in self.inputs}

    def profile_shapes(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        """(min, opt, max) shape per input over `ranges` (with several profiles, their union): the single
        optimization profile (EngineSpec.shapes) when `profiles` is empty."""
        at = {p: self.shapes_at(p) for p in POINTS}
        return {n: (at["min"][n], at["opt"][n], at["max"][n]) for n in self.names}

    def profile_ranges(self) -> list[dict[str, DimRange]]:
        """Every symbol's range in each optimization profile, in order."""
        return [{**self.ranges, **p} for p in self.profiles] or [dict(self.ranges)]

    def every_profile_shapes(self) -> list[dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]]:
        """(min, opt, max) shape per input for each optimization profile (EngineSpec.profiles), in order."""
        return [IOSpec(self.inputs, r, self.source).profile_shapes() for r in self.profile_ranges()]

    def engine_shapes(self) -> dict[str, Any]:
        """The EngineSpec keyword for these inputs: `shapes` for one profile, `profiles` for several."""
        if len(self.profiles) > 1:
            return {"profiles": tuple(self.every_profile_shapes())}
        return {"shapes": self.every_profile_shapes()[0]}

    def example_sizes(self) -> dict[str, int]:
        """A size per symbol for tracing: opt, but never 0/1 for a dynamic symbol (torch.export specialises
        those) and inside the range."""
        out = {}
        for s in self.symbols():
            r = self.ranges[s]
            out[s] = min(max(r.opt, 2), r.max) if r.dynamic else r.opt
        return out

    def feeds(self, point: str, batch: int | None, count: int, seed: int) -> list[dict[str, np.ndarray]]:
        """`count` seeded random feeds at `point`: N(0,1) floats, integers in [low, high), coin-flip bools."""
        rng = np.random.default_rng(seed)
        shapes = self.shapes_at(point, batch)
        return [{i.name: random_array(rng, shapes[i.name], i) for i in self.inputs} for _ in range(count)]

    def to_dict(self) -> dict[str, Any]:
        """`profiles`: min/opt/max per input of every optimization profile; `profile_dims` (only with several
        profiles given): the ranges each one changes, so from_dict rebuilds them."""
        out = {"source": self.source,
               "inputs": [{"name": i.name, "dims": list(i.dims), "dtype": i.dtype, "low": i.low, "high": i.high}
                          for i in self.inputs],
               "dims": _ranges_dict(self.ranges),
               "profiles": [{n: {p: list(s) for p, s in zip(POINTS, t)} for n, t in shapes.items()}
                            for shapes in self.every_profile_shapes()]}
        if self.profiles:
            out["profile_dims"] = [_ranges_dict(p) for p in self.profiles]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IOSpec:
        """Also reads manifests written before several profiles (no `profile_dims`: one profile)."""
        return cls(tuple(InputSpec(i["name"], tuple(i["dims"]), i["dtype"], i.get("low", 0), i.get("high", 2))
                         for i in data["inputs"]),
                   _ranges_from(data["dims"]), data.get("source", "default"),
                   tuple(_ranges_from(p) for p in data.get("profile_dims", ())))


def _ranges_dict(ranges: dict[str, DimRange]) -> dict[str, dict[str, int]]:
    return {k: {"min": r.min, "opt": r.opt, "max": r.max} for k, r in ranges.items()}


def _ranges_from(data: dict[str, Any]) -> dict[str, DimRange]:
    return {k: DimRange(v["min"], v["opt"], v["max"]) for k, v in data.items()}


def random_array(rng: np.random.Generator, shape: tuple[int, ...], spec: InputSpec) -> np.ndarray:
    dt = np.dtype(spec.dtype)
    if dt.kind == "f":
        return rng.standard_normal(shape, dtype=np.float32).astype(dt)
    if dt.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.integers(spec.low, max(spec.high, spec.low + 1), size=shape).astype(dt)


def parse_input(text: str) -> InputSpec:
    """`NAME=DIMS[:DTYPE]`; DIMS split on `x` (or `,`, for symbols containing an x): numbers or symbols."""
    name, sep, rest = text.partition("=")
    dims_text, _, dtype = rest.partition(":")
    fix = "use NAME=DIMS[:DTYPE], e.g. --input image=Bx3xHxW --input mask=BxHxW:int64"
    if not sep or not _NAME.fullmatch(name) or not dims_text:
        raise BadInputError(f"bad --input {text!r}", fix=fix)
    parts = dims_text.split(",") if "," in dims_text else dims_text.split("x")
    dims: list[int | str] = []
    for p in parts:
        if p.isdigit() and int(p) > 0:
            dims.append(int(p))
        elif _SYMBOL.fullmatch(p):
            dims.append(p)
        else:
            raise BadInputError(f"bad dim {p!r} in --input {text!r}",
                                why="a dim is a positive number or a symbol (letters, digits, _)", fix=fix)
    dtype = dtype or "float32"
    if dtype not in DTYPES:
        raise BadInputError(f"unknown dtype {dtype!r} in --input {text!r}", fix=f"use one of {', '.join(DTYPES)}")
    return InputSpec(name, tuple(dims), DTYPES[dtype])


def parse_dim(text: str) -> tuple[str, DimRange]:
    """`SYM=N`, `SYM=MIN..MAX` (opt = min, latency first) or `SYM=MIN..OPT..MAX`."""
    sym, sep, rng = text.partition("=")
    fix = "use SYM=MIN..OPT..MAX, e.g. --dim H=320..640..1344 (or SYM=MIN..MAX, or SYM=N)"
    if not sep or not _SYMBOL.fullmatch(sym) or not re.fullmatch(r"\d+(\.\.\d+){0,2}", rng):
        raise BadInputError(f"bad --dim {text!r}", fix=fix)
    vals = [int(v) for v in rng.split("..")]
    lo, hi = vals[0], vals[-1]
    opt = vals[1] if len(vals) == 3 else lo
    if lo < 1:
        raise BadInputError(f"--dim {text!r}: sizes must be >= 1", fix=fix)
    if lo > hi:
        raise BadInputError(f"--dim {text!r}: min {lo} > max {hi}", fix=f"swap them: {sym}={hi}..{lo}")
    if not lo <= opt <= hi:
        raise BadInputError(f"--dim {text!r}: opt {opt} is outside {lo}..{hi}", fix=fix)
    return sym, DimRange(lo, opt, hi)


def parse_profile(text: str) -> dict[str, DimRange]:
    """`SYM=MIN..OPT..MAX[,SYM=...]`: one optimization profile's ranges (each as `parse_dim` reads it)."""
    out: dict[str, DimRange] = {}
    for part in text.split(","):
        try:
            sym, rng = parse_dim(part)
        except BadInputError as e:
            raise BadInputError(f"bad --profile {text!r}: {e.what}", why=e.why,
                                fix="use SYM=MIN..OPT..MAX[,SYM=...], e.g. --profile H=320..480..640,W=320..480..640"
                                ) from None
        if sym in out:
            raise BadInputError(f"--profile {text!r} gives {sym} twice", fix=f"give {sym} once per --profile")
        out[sym] = rng
    return out


def with_profiles(spec: IOSpec, profiles: list[dict[str, DimRange]]) -> IOSpec:
    """`spec` with several optimization profiles: every range must use a symbol of the inputs and lie inside its
    --dim range; `ranges` become the union (min of mins, max of maxes, the --dim opt when a profile holds it,
    else the first profile's), so parity runs at points some profile holds. No profiles: `spec` unchanged."""
    if not profiles:
        return spec
    used = spec.symbols()
    for n, prof in enumerate(profiles):
        label = f"--profile {n + 1} ({_text(prof)})"
        for sym, r in prof.items():
            if sym not in used:
                raise BadInputError(f"{label} names symbol {sym}, which no input uses",
                                    fix=f"symbols in the inputs: {', '.join(used) or 'none'}")
            whole = spec.ranges[sym]
            if r.min < whole.min or r.max > whole.max:
                raise BadInputError(f"{label}: {sym}={r.min}..{r.opt}..{r.max} is outside its --dim range "
                                    f"{sym}={whole.min}..{whole.opt}..{whole.max}",
                                    why="every profile must lie inside the range the ONNX model is exported for",
                                    fix=f"keep {sym} within {whole.min}..{whole.max} in that profile, or widen "
                                        f"--dim {sym}")
    full = [{**spec.ranges, **p} for p in profiles]
    union = {}
    for sym, whole in spec.ranges.items():
        lo, hi = min(f[sym].min for f in full), max(f[sym].max for f in full)
        held = any(f[sym].min <= whole.opt <= f[sym].max for f in full)
        union[sym] = DimRange(lo, whole.opt if held else full[0][sym].opt, hi)
    return IOSpec(spec.inputs, union, spec.source, tuple(dict(p) for p in profiles))


def _text(prof: dict[str, DimRange]) -> str:
    return ",".join(f"{s}={r.min}..{r.opt}..{r.max}" for s, r in prof.items())


def build_spec(inputs: list[InputSpec], ranges: dict[str, DimRange], *, batch: tuple[int, int, int] | None,
               source: str) -> IOSpec:
    """Check names and symbols: unique input names, every symbol with a range (a symbol only ever at dim 0 is
    the batch and takes `batch` when not given), no range for an unused symbol, a symbol never an input name."""
    names = [i.name for i in inputs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise BadInputError(f"input name(s) given twice: {', '.join(dup)}", fix="give each --input a unique name")
    spec = IOSpec(tuple(inputs), dict(ranges), source)
    used = spec.symbols()
    clash = sorted(set(used) & set(names))
    if clash:
        raise BadInputError(f"symbol(s) {', '.join(clash)} are also input names",
                            why="a symbol names a size, an input names a tensor", fix="rename one of them")
    unused = sorted(set(ranges) - set(used))
    if unused:
        raise BadInputError(f"--dim given for symbol(s) no input uses: {', '.join(unused)}",
                            fix=f"symbols in the inputs: {', '.join(used) or 'none'}")
    full = dict(ranges)
    missing = []
    for s in used:
        if s in full:
            continue
        if batch is not None and spec.is_batch_symbol(s):
            full[s] = DimRange(*batch)
        else:
            missing.append(s)
    if missing:
        raise BadInputError(f"symbol(s) without a range: {', '.join(missing)}",
                            why="every symbol except a batch (dim 0 only) needs --dim SYM=MIN..OPT..MAX",
                            fix=" ".join(f"--dim {s}=MIN..OPT..MAX" for s in missing))
    return IOSpec(tuple(inputs), full, source)


def default_spec(input_size: tuple[int, ...], batch: tuple[int, int, int]) -> IOSpec:
    """A zoo model's input: `input=batch x C x H x W` at its own size."""
    return IOSpec((InputSpec("input", (BATCH, *input_size)),), {BATCH: DimRange(*batch)}, "default")


def check_for_target(spec: IOSpec, target: Any) -> None:
    """What a target cannot take: DLA runs static shapes and fp16/int8 tensors only."""
    if not getattr(target, "uses_dla", False):
        return
    if len(spec.profiles) > 1:
        raise BadInputError(f"target {target.name} runs on DLA, which builds one static shape; "
                            f"{len(spec.profiles)} optimization profiles were asked",
                            why="DLA engines are built for one shape (min = opt = max)",
                            fix="drop --profile and give one size per symbol (--dim H=800), or use a GPU target")
    dyn = spec.dynamic_symbols()
    if dyn:
        raise BadInputError(f"target {target.name} runs on DLA, which needs static shapes; symbol(s) "
                            f"{', '.join(f'{s}={spec.ranges[s].min}..{spec.ranges[s].max}' for s in dyn)} vary",
                            why="DLA engines are built for one shape (min = opt = max)",
                            fix="give one size per symbol (--dim H=800) or use a GPU target")
    bad = [i.describe() for i in spec.inputs if not i.dtype.startswith("float")]
    if bad:
        raise BadInputError(f"target {target.name} runs on DLA, which cannot take input(s) {', '.join(bad)}",
                            why="DLA takes fp16/int8 tensors only (no int64, int32 or bool I/O)",
                            fix="compute the mask inside the model from a float input, or use a GPU target")
