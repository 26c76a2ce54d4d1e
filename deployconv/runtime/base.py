"""The runner base class (Polygraphy-style): one interface for PyTorch, ONNX Runtime and TensorRT.

A runner takes named numpy arrays in and gives named numpy arrays out. The base class owns the public
`activate / infer / deactivate`, the context manager, the input checks against the declared input metadata
and the timing; a subclass writes only `activate_impl`, `infer_impl`, `deactivate_impl` and
`input_metadata_impl` (plus `info_impl` for its conditions). Torch-free: nothing here imports torch.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from deployconv.core.errors import BadInputError

Dim = int | str | None  # an int is a static dim; a str (named) or None (anonymous) is dynamic


class TensorMeta(NamedTuple):
    """What a runner declares about one tensor. `dtype` None = unknown (not checked); `shape` None = unknown
    rank (not checked); inside a shape, a str or None marks a dynamic dim."""

    dtype: np.dtype | None
    shape: tuple[Dim, ...] | None

    def describe(self) -> str:
        dt = "?" if self.dtype is None else np.dtype(self.dtype).name
        if self.shape is None:
            return f"{dt}[?]"
        return f"{dt}[{', '.join('?' if d is None else str(d) for d in self.shape)}]"


def is_dynamic(dim: Dim) -> bool:
    return not isinstance(dim, int) or dim < 0


class Runner:
    """Base of every runner. Use as a context manager, or call `activate()` / `deactivate()` yourself.

    `last_inference_ns` / `last_inference_time` (seconds) time `infer_impl` alone, measured with
    `time.perf_counter_ns`: input checks and the Python around them are outside the timed region.
    """

    runtime: str = "runner"  # short runtime name recorded with every number ("onnxruntime", "torch", ...)

    def __init__(self, name: str | None = None):
        self.name = name or type(self).__name__
        self.is_active = False
        self.last_inference_ns: int | None = None
        self.inference_count = 0

    # --- public interface (not to be overridden) ---
    def activate(self) -> Runner:
        if not self.is_active:
            self.activate_impl()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            try:
                self.deactivate_impl()
            finally:
                self.is_active = False

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def input_metadata(self) -> dict[str, TensorMeta]:
        """Declared inputs, in the model's order: name -> TensorMeta(dtype, shape)."""
        self._require_active("input_metadata")
        return dict(self.input_metadata_impl())

    def info(self) -> dict[str, Any]:
        """The conditions a number from this runner needs beside it: runtime, version, threads, device..."""
        return {"runtime": self.runtime, **self.info_impl()}

    def check_feed(self, feed: Mapping[str, Any]) -> None:
        """Raise BadInputError unless `feed` matches the declared inputs: names, dtypes, ranks, static dims."""
        meta = self.input_metadata()
        missing = [n for n in meta if n not in feed]
        extra = [n for n in feed if n not in meta]
        expected = ", ".join(f"{n}: {m.describe()}" for n, m in meta.items())
        if missing or extra:
            what = []
            if missing:
                what.append(f"missing input(s) {', '.join(map(repr, missing))}")
            if extra:
                what.append(f"unknown input(s) {', '.join(map(repr, extra))}")
            raise BadInputError(f"{self.name}: {' and '.join(what)}", why=f"the model's inputs are {expected}",
                                fix="feed exactly the model's input names")
        for name, m in meta.items():
            arr = feed[name]
            if not isinstance(arr, np.ndarray):
                raise BadInputError(f"{self.name}: input {name!r} is a {type(arr).__name__}, not a numpy array",
                                    fix="pass numpy arrays (np.asarray(x))")
            if m.dtype is not None and arr.dtype != m.dtype:
                raise BadInputError(f"{self.name}: input {name!r} has dtype {arr.dtype}, the model expects "
                                    f"{np.dtype(m.dtype).name}", why=f"declared input: {name}: {m.describe()}",
                                    fix=f"cast it: x.astype(np.{np.dtype(m.dtype).name})")
            if m.shape is None:
                continue
            if arr.ndim != len(m.shape):
                raise BadInputError(f"{self.name}: input {name!r} has rank {arr.ndim} (shape {tuple(arr.shape)}), "
                                    f"the model expects rank {len(m.shape)}",
                                    why=f"declared input: {name}: {m.describe()}")
            bad = [(i, got, want) for i, (got, want) in enumerate(zip(arr.shape, m.shape))
                   if not is_dynamic(want) and got != want]
            if bad:
                dims = ", ".join(f"dim {i} is {got}, expected {want}" for i, got, want in bad)
                raise BadInputError(f"{self.name}: input {name!r} has shape {tuple(arr.shape)}: {dims}",
                                    why=f"declared input: {name}: {m.describe()} (only dynamic dims may vary)")

    def infer(self, feed: Mapping[str, np.ndarray], *, check_inputs: bool = True) -> dict[str, np.ndarray]:
        """Run once. Checks `feed` first unless `check_inputs=False` (benchmark loops check once, up front)."""
        self._require_active("infer")
        if check_inputs:
            self.check_feed(feed)
        t0 = time.perf_counter_ns()
        outputs = self.infer_impl(feed)
        self.last_inference_ns = time.perf_counter_ns() - t0
        self.inference_count += 1
        return outputs

    @property
    def last_inference_time(self) -> float | None:
        """Seconds taken by the last `infer_impl` call (Polygraphy's unit), None before the first."""
        return None if self.last_inference_ns is None else self.last_inference_ns * 1e-9

    def _require_active(self, what: str) -> None:
        if not self.is_active:
            raise RuntimeError(f"{self.name}.{what}() needs an active runner: use `with runner:` or call activate()")

    # --- what subclasses write ---
    def activate_impl(self) -> None:
        pass

    def deactivate_impl(self) -> None:
        pass

    def input_metadata_impl(self) -> Mapping[str, TensorMeta]:
        raise NotImplementedError

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def info_impl(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, active={self.is_active})"


def random_feed(meta: Mapping[str, TensorMeta], *, batch: int | None = None,
                shapes: Mapping[str, Sequence[int]] | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random inputs for declared inputs.

    Shapes: `shapes[name]` when given (it must still fit the static dims; `check_feed` says so otherwise);
    else static dims as declared, a dynamic dim 0 (and any dim with the same symbolic name) set to `batch`
    (default 1), and any other dynamic dim is an error asking for it. A model without a dynamic dim 0 has a
    static batch, which `batch` must then equal.
    Values: standard normal for floats, integers in [0, 10) for ints, coin flips for bool.
    """
    shapes = dict(shapes or {})
    unknown = [n for n in shapes if n not in meta]
    if unknown:
        raise BadInputError(f"--shape names unknown input(s) {', '.join(map(repr, unknown))}",
                            fix=f"the model's inputs are {', '.join(meta)}")
    # With a dynamic batch somewhere, inputs with a static dim 0 are not batched (a table, a mask): kept as is.
    dynamic_batch = any(m.shape and is_dynamic(m.shape[0]) for m in meta.values())
    rng = np.random.default_rng(seed)
    feed: dict[str, np.ndarray] = {}
    for name, m in meta.items():
        if name in shapes:
            shape = tuple(int(d) for d in shapes[name])
        else:
            shape = _resolve_shape(name, m, batch, check_static_batch=not dynamic_batch)
        if m.dtype is None:
            raise BadInputError(f"input {name!r} has a type numpy cannot make ({m.describe()})",
                                fix="benchmark a graph with float32/float16/int inputs")
        dt = np.dtype(m.dtype)
        if dt.kind == "f":
            arr = rng.standard_normal(shape, dtype=np.float64).astype(dt)
        elif dt.kind in "iu":
            arr = rng.integers(0, 10, size=shape).astype(dt)
        elif dt.kind == "b":
            arr = rng.integers(0, 2, size=shape).astype(bool)
        else:
            raise BadInputError(f"input {name!r}: cannot make random {dt.name} data")
        feed[name] = arr
    return feed


def _resolve_shape(name: str, m: TensorMeta, batch: int | None, check_static_batch: bool) -> tuple[int, ...]:
    hint = f"--shape {name}=" + "x".join(str(d) if not is_dynamic(d) else "?" for d in (m.shape or ()))
    if m.shape is None:
        raise BadInputError(f"input {name!r} has no declared shape", fix=f"give it: {hint} (all sizes)")
    if len(m.shape) == 0:
        return ()
    batch_dim = m.shape[0]
    if check_static_batch and not is_dynamic(batch_dim) and batch is not None and batch != batch_dim:
        raise BadInputError(f"input {name!r} has a static batch of {batch_dim}; batch {batch} cannot apply",
                            fix=f"use batch {batch_dim}, or re-export the model with a dynamic batch")
    out: list[int] = []
    for i, d in enumerate(m.shape):
        if not is_dynamic(d):
            out.append(int(d))  # type: ignore[arg-type]
        elif i == 0 or (isinstance(d, str) and d == batch_dim):
            out.append(batch or 1)
        else:
            label = f"{d!r}" if isinstance(d, str) else "unnamed"
            raise BadInputError(f"input {name!r} ({m.describe()}) has a dynamic dim {i} ({label}) besides the batch",
                                why="a benchmark needs every size fixed",
                                fix=f"give it: {hint} with the ? filled in")
    return tuple(out)
