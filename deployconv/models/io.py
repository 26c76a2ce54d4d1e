"""The torch side of an IOSpec: the spec a user factory declares, torch.export's dynamic shapes, and running a
module on a feed with an error that names the submodule that rejected it.

User convention (no flags needed for `file.py:factory`): define `example_inputs` next to the factory, a function
(or a value) returning one tensor, a tuple of tensors, a dict {input name: tensor}, or `--input`-style strings
(`"image=Bx3xHxW"`, with optional `dims = {"H": (320, 640, 1344)}` beside it for the ranges).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from deployconv.core.errors import BadInputError
from deployconv.core.io_spec import (
    DimRange,
    InputSpec,
    IOSpec,
    build_spec,
    parse_dim,
    parse_input,
    parse_profile,
    random_array,
    with_profiles,
)
from deployconv.models.registry import model_info

_TORCH_DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.int64: "int64", torch.int32: "int32",
                 torch.bool: "bool", torch.uint8: "uint8"}


def _forward_names(model: torch.nn.Module, n: int) -> list[str]:
    try:
        params = [p.name for p in inspect.signature(model.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    if n == 1:
        return ["input"]
    return params[:n] if len(params) >= n else [f"input_{i}" for i in range(n)]


def spec_from_examples(model: torch.nn.Module, example: Any, dims: Mapping[str, Any] | None,
                       batch: tuple[int, int, int] | None) -> IOSpec:
    """The IOSpec a factory declares via `example_inputs` (see the module docstring)."""
    if callable(example) and not isinstance(example, torch.Tensor):
        example = example()
    if isinstance(example, torch.Tensor):
        example = (example,)
    if isinstance(example, str):
        example = (example,)
    if isinstance(example, Mapping):
        items = list(example.items())
    elif isinstance(example, (list, tuple)):
        if all(isinstance(e, str) for e in example):
            ranges = {k: DimRange(*((v,) * 3 if isinstance(v, int) else (v[0], v[1], v[-1]) if len(v) == 3
                                    else (v[0], v[0], v[1]))) for k, v in (dims or {}).items()}
            return build_spec([parse_input(e) for e in example], ranges, batch=batch, source="example_inputs")
        items = list(zip(_forward_names(model, len(example)), example))
    else:
        raise BadInputError(f"example_inputs returned a {type(example).__name__}",
                            fix="return a tensor, a tuple of tensors, a dict {name: tensor} or 'NAME=DIMS' strings")
    inputs = []
    for name, t in items:
        if not isinstance(t, torch.Tensor) or t.dtype not in _TORCH_DTYPES:
            raise BadInputError(f"example_inputs: {name!r} is not a tensor of a supported dtype",
                                fix=f"dtypes: {', '.join(_TORCH_DTYPES.values())}")
        dtype = _TORCH_DTYPES[t.dtype]
        hi = int(t.max().item()) + 1 if dtype not in ("bool",) and not t.is_floating_point() and t.numel() else 2
        inputs.append(InputSpec(str(name), tuple(int(d) for d in t.shape), dtype, 0, max(hi, 1)))
    firsts = {i.dims[0] if i.dims else None for i in inputs}
    if batch is not None and len(firsts) == 1 and None not in firsts:  # a shared dim 0 is the batch
        inputs = [InputSpec(i.name, ("batch", *i.dims[1:]), i.dtype, i.low, i.high) for i in inputs]
    return build_spec(inputs, {}, batch=batch, source="example_inputs")


def dynamic_shapes(spec: IOSpec) -> tuple[dict[int, Any], ...] | None:
    """torch.export's dynamic_shapes: one torch.export.Dim per dynamic symbol, shared where a symbol repeats."""
    dims = {s: torch.export.Dim(s, min=spec.ranges[s].min, max=spec.ranges[s].max) for s in spec.dynamic_symbols()}
    if not dims:
        return None
    return tuple({k: dims[d] for k, d in enumerate(i.dims) if isinstance(d, str) and d in dims} for i in spec.inputs)


def example_args(spec: IOSpec, seed: int) -> tuple[torch.Tensor, ...]:
    """Tracing inputs: the spec at its example sizes (never 0/1 for a dynamic symbol)."""
    sizes = spec.example_sizes()
    rng = np.random.default_rng(seed)
    return tuple(torch.from_numpy(random_array(rng, tuple(d if isinstance(d, int) else sizes[d] for d in i.dims), i))
                 for i in spec.inputs)


def feed_args(spec: IOSpec, feed: Mapping[str, np.ndarray], dtype: torch.dtype | None = None) -> tuple:
    """A numpy feed as the module's positional args; float inputs cast to `dtype` when given (fp64 reference)."""
    out = []
    for i in spec.inputs:
        t = torch.from_numpy(np.ascontiguousarray(feed[i.name]))
        out.append(t.to(dtype) if dtype is not None and t.is_floating_point() else t)
    return tuple(out)


def run_checked(model: torch.nn.Module, args: tuple, what: str) -> Any:
    """model(*args); an exception becomes a BadInputError naming the innermost submodule that raised it."""
    stack: list[str] = []
    failed: list[str] = []
    names = {id(m): n for n, m in model.named_modules()}
    handles = []

    def pre(mod, _args):
        stack.append(names.get(id(mod), type(mod).__name__) or "<root>")

    def post(mod, _args, _out):
        if stack:
            stack.pop()

    for m in model.modules():
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post))
    try:
        with torch.no_grad():
            return model(*args)
    except Exception as e:
        failed = [s for s in stack if s]
        where = failed[-1] if failed else "<root>"
        cls = type(model.get_submodule(where)).__name__ if where != "<root>" else type(model).__name__
        shapes = ", ".join(f"{tuple(a.shape)}:{str(a.dtype).replace('torch.', '')}" for a in args
                           if isinstance(a, torch.Tensor))
        raise BadInputError(f"{what}: the model rejects inputs {shapes} at module {where!r} ({cls})",
                            why=f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}",
                            fix="give inputs the model takes: --input NAME=DIMS[:DTYPE] (see the model's forward)"
                            ) from None
    finally:
        for h in handles:
            h.remove()


def resolve_io(train: torch.nn.Module, inputs: tuple[str, ...], dims: tuple[str, ...],
               batch: tuple[int, int, int], profiles: tuple[str, ...] = ()) -> IOSpec | None:
    """The IOSpec an export runs with: --input/--dim, else what the model declares (a user factory's
    `example_inputs`, a zoo entry's ModelInfo.inputs), with --dim overriding declared ranges and --profile
    splitting them into several optimization profiles. None: the classic single `input` image at the model's
    input_size (the unchanged default path)."""
    ranges = dict(parse_dim(d) for d in dims)
    parsed = [parse_profile(p) for p in profiles]
    if inputs:
        return with_profiles(build_spec([parse_input(t) for t in inputs], ranges, batch=batch, source="cli"), parsed)
    info = model_info(train)
    example = getattr(train, "deployconv_example_inputs", None)
    if example is not None:
        spec = spec_from_examples(train, example, getattr(train, "deployconv_example_dims", None), batch)
    elif info.inputs:
        declared = dict(parse_dim(d) for d in info.dims)
        spec = build_spec([parse_input(t) for t in info.inputs], declared, batch=batch, source="zoo")
    elif ranges or parsed:
        raise BadInputError(f"--dim/--profile {', '.join(ranges or parsed[0])} given, but the model's input has no symbols",
                            why=f"its input is input={'x'.join(map(str, ('B', *info.input_size)))}",
                            fix="declare the input with symbols: --input input=Bx3xHxW --dim H=... --dim W=...")
    else:
        return None
    if ranges:
        unknown = sorted(set(ranges) - set(spec.symbols()))
        if unknown:
            raise BadInputError(f"--dim given for symbol(s) the model's inputs do not use: {', '.join(unknown)}",
                                fix=f"its inputs: {', '.join(i.describe() for i in spec.inputs)}")
        spec = IOSpec(spec.inputs, {**spec.ranges, **ranges}, spec.source)
    return with_profiles(spec, parsed)
