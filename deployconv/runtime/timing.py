"""Latency: pure statistics over samples, and `benchmark(runner, feed)`, the front door that takes them.

Statistics (`summarize`):
- percentiles (median, p90, p95, p99) use numpy's default method 'linear' (Hyndman-Fan type 7: linear
  interpolation between the two nearest order statistics), the same as `np.percentile(x, q)`;
- std is the sample standard deviation (ddof=1; 0 for a single sample); cv = std / mean;
- throughput = batch * 1000 / mean_ms items per second: runs are sequential, so this is the items processed
  over the total timed time.

Timing (`benchmark`): each sample is one `Runner.infer_impl` call timed with `time.perf_counter_ns` (input
checks run once, before the loop; the timed region is the runtime call with host numpy in and out). Warm-up
runs for `warmup_s` seconds first. Then either `iters` samples, or samples until `duration_s` has passed and
at least `min_iters` were taken. The garbage collector is paused during the timed loop. Load average at the
start and the rest of the environment go into the fingerprint; the raw samples are kept in the result so a
later gate can run its statistical test on them.

Blocks (`repeat=K`): the sample budget (`iters` or `duration_s`, and `min_iters`) is split evenly over K
blocks; every block after the first gets a fresh session (the runner is deactivated and activated again)
and its own `warmup_s` of warm-up. Two bench runs differ by more than their samples' scatter: a new session
gets its own memory placement and thread-pool start, and a shared runner's load drifts. Blocks make part of
that variation visible inside one run, and `block_sizes` tells the gate where they start and end (its
bootstrap resamples whole blocks, never single samples; see deployconv.validate.gate).
"""

from __future__ import annotations

import gc
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

import numpy as np

from deployconv.core.errors import BadInputError
from deployconv.runtime.fingerprint import Fingerprint, collect

SCHEMA = "deployconv.bench/1"
PERCENTILE_METHOD = "linear"
DEFAULT_WARMUP_S = 1.0
DEFAULT_DURATION_S = 3.0
DEFAULT_MIN_ITERS = 10


@dataclass(frozen=True)
class LatencyStats:
    count: int
    median_ms: float
    mean_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    cv: float
    batch: int | None = None
    throughput: float | None = None  # items/s (images/s for image models); None without a batch
    percentile_method: str = PERCENTILE_METHOD

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LatencyStats:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


def summarize(samples_ms: Sequence[float] | np.ndarray, batch: int | None = None) -> LatencyStats:
    """Summary statistics of latency samples in milliseconds (see the module docstring for definitions)."""
    x = np.asarray(samples_ms, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("no latency samples to summarize")
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ValueError("latency samples must be finite and non-negative")
    if batch is not None and batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    p50, p90, p95, p99 = (float(v) for v in np.percentile(x, [50, 90, 95, 99], method=PERCENTILE_METHOD))
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    return LatencyStats(
        count=int(x.size), median_ms=p50, mean_ms=mean, p90_ms=p90, p95_ms=p95, p99_ms=p99,
        min_ms=float(x.min()), max_ms=float(x.max()), std_ms=std, cv=std / mean if mean > 0 else 0.0,
        batch=batch, throughput=None if batch is None or mean <= 0 else batch * 1000.0 / mean)


@dataclass(frozen=True)
class BenchResult:
    """One benchmark run. Its JSON form (`to_dict`) is what `bench --json/--out` writes and a gate reads."""

    samples_ms: list[float]
    stats: LatencyStats
    fingerprint: Fingerprint
    conditions: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA
    block_sizes: tuple[int, ...] = ()  # samples per block, in order; () = one block (files before blocks)

    def __post_init__(self) -> None:
        if self.block_sizes and (sum(self.block_sizes) != len(self.samples_ms) or min(self.block_sizes) < 1):
            raise BadInputError(f"block sizes {list(self.block_sizes)} do not add up to the "
                                f"{len(self.samples_ms)} samples", fix="re-run `deployconv bench --out`")

    @property
    def throughput(self) -> float | None:
        return self.stats.throughput

    def to_dict(self) -> dict[str, Any]:
        # raw samples last: the numbers people read come first in the file
        return {"schema": self.schema, "stats": self.stats.to_dict(), "conditions": dict(self.conditions),
                "fingerprint": self.fingerprint.to_dict(),
                "block_sizes": list(self.block_sizes or (len(self.samples_ms),)),
                "samples_ms": list(self.samples_ms)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BenchResult:
        if d.get("schema") != SCHEMA:
            raise BadInputError(f"not a deployconv benchmark result (schema {d.get('schema')!r})",
                                fix=f"give a file written by `deployconv bench --out` (schema {SCHEMA})")
        return cls(samples_ms=[float(v) for v in d["samples_ms"]], stats=LatencyStats.from_dict(d["stats"]),
                   fingerprint=Fingerprint.from_dict(d["fingerprint"]), conditions=dict(d.get("conditions", {})),
                   schema=d["schema"], block_sizes=tuple(int(n) for n in d.get("block_sizes") or ()))


def describe_feed(feed: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    return {n: {"shape": [int(s) for s in a.shape], "dtype": a.dtype.name} for n, a in feed.items()}


def split_budget(total: int, parts: int) -> list[int]:
    """`total` split into `parts` near-equal integers, the larger ones first (sum == total)."""
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


@dataclass
class _Block:
    samples_ns: list[int]
    warmup_iters: int
    warmup_elapsed_s: float
    timed_elapsed_s: float
    load_avg: list[float] | None


def _load_avg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _timed_block(runner: Any, feed: Mapping[str, np.ndarray], warmup_s: float, iters: int | None,
                 duration_s: float | None, min_iters: int) -> _Block:
    """Warm up by time, then time `iters` runs or run for `duration_s` (and at least `min_iters` runs)."""
    load = _load_avg()
    warm_iters = 0
    t0 = time.perf_counter_ns()
    deadline = t0 + int(warmup_s * 1e9)
    while time.perf_counter_ns() < deadline:
        runner.infer(feed, check_inputs=False)
        warm_iters += 1
    warm_elapsed = (time.perf_counter_ns() - t0) * 1e-9

    samples_ns: list[int] = []
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        if iters is not None:
            for _ in range(iters):
                runner.infer(feed, check_inputs=False)
                samples_ns.append(runner.last_inference_ns)
        else:
            deadline = t0 + int(duration_s * 1e9)  # type: ignore[operator]
            while time.perf_counter_ns() < deadline or len(samples_ns) < min_iters:
                runner.infer(feed, check_inputs=False)
                samples_ns.append(runner.last_inference_ns)
        elapsed = (time.perf_counter_ns() - t0) * 1e-9
    finally:
        if gc_was_enabled:
            gc.enable()
    return _Block(samples_ns, warm_iters, warm_elapsed, elapsed, load)


def benchmark(runner: Any, feed: Mapping[str, np.ndarray], *, warmup_s: float = DEFAULT_WARMUP_S,
              duration_s: float | None = None, iters: int | None = None, batch: int | None = None,
              min_iters: int = DEFAULT_MIN_ITERS, conditions: Mapping[str, Any] | None = None,
              repeat: int = 1) -> BenchResult:
    """Time `runner` on `feed`: warm up for `warmup_s` seconds, then take `iters` samples or sample for
    `duration_s` seconds (at least `min_iters` samples; default duration 3 s when neither is given).
    With `repeat=K` the budget is split over K blocks, each in a fresh session with its own warm-up.

    `runner` is a `deployconv.runtime.Runner`; an inactive one is activated for the run and deactivated after.
    `batch` (for throughput) defaults to dim 0 of the first input. `conditions` are the caller's own
    (artifact path, seed, ...), recorded first in the result's conditions.
    """
    if duration_s is not None and iters is not None:
        raise BadInputError("give a duration or a number of iterations, not both", fix="drop --duration or --iters")
    if iters is not None and iters < 1:
        raise BadInputError(f"iterations must be >= 1, got {iters}")
    if duration_s is not None and not duration_s > 0:
        raise BadInputError(f"duration must be > 0 s, got {duration_s}")
    if warmup_s < 0 or math.isnan(warmup_s):
        raise BadInputError(f"warm-up must be >= 0 s, got {warmup_s}")
    if repeat < 1:
        raise BadInputError(f"repeat must be >= 1, got {repeat}")
    if iters is not None and iters < repeat:
        raise BadInputError(f"{iters} iterations cannot fill {repeat} blocks", fix="give --iters >= --repeat")
    if iters is None and duration_s is None:
        duration_s = DEFAULT_DURATION_S
    if batch is None:
        first = next(iter(feed.values()), None)
        batch = int(first.shape[0]) if first is not None and first.ndim >= 1 else 1
    block_iters = split_budget(iters, repeat) if iters is not None else [None] * repeat
    block_min = max(1, math.ceil(min_iters / repeat))

    owned = not runner.is_active
    if owned:
        runner.activate()
    try:
        runner.check_feed(feed)
        info = runner.info()
        inputs = describe_feed(feed)
        fp = collect(runtime=info.get("runtime"), runtime_version=info.get("version"),
                     providers=tuple(info.get("providers", ())), threads=info.get("threads"),
                     graph_sha256=info.get("graph_sha256"),
                     external_data_sha256=info.get("external_data_sha256"), engine_sha256=info.get("engine_sha256"),
                     batch=batch, inputs=inputs, device=info.get("gpu"))
        started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        blocks: list[_Block] = []
        for k in range(repeat):
            if k:  # a fresh session for every block after the first
                runner.deactivate()
                runner.activate()
            blocks.append(_timed_block(runner, feed, warmup_s, block_iters[k],
                                       None if duration_s is None else duration_s / repeat, block_min))
    finally:
        if owned:
            runner.deactivate()

    samples_ms = [round(ns / 1e6, 6) for b in blocks for ns in b.samples_ns]
    recorded = {
        **dict(conditions or {}),
        "runtime": info.get("runtime"), "runtime_version": info.get("version"),
        "providers": list(info.get("providers", ())), "threads": info.get("threads"), "batch": batch,
        "inputs": inputs, "dtype": next(iter(inputs.values()))["dtype"] if inputs else None,
        "graph_sha256": info.get("graph_sha256"), "external_data_sha256": info.get("external_data_sha256"),
        "mode": "iters" if iters is not None else "duration", "iters_requested": iters,
        "duration_s_requested": duration_s, "min_iters": None if iters is not None else min_iters,
        "warmup_s_requested": warmup_s, "warmup_iters": sum(b.warmup_iters for b in blocks),
        "warmup_elapsed_s": round(sum(b.warmup_elapsed_s for b in blocks), 4),
        "timed_elapsed_s": round(sum(b.timed_elapsed_s for b in blocks), 4), "started_at": started_at,
        "repeat": repeat,
        "blocks": [{"count": len(b.samples_ns), "warmup_iters": b.warmup_iters,
                    "warmup_elapsed_s": round(b.warmup_elapsed_s, 4), "timed_elapsed_s": round(b.timed_elapsed_s, 4),
                    "load_avg": b.load_avg} for b in blocks],
        "timer": "time.perf_counter_ns around each runtime call (Runner.infer_impl), host numpy in/out",
        "gc_paused": True, "percentile_method": PERCENTILE_METHOD,
        "runner": {k: v for k, v in info.items() if k not in ("runtime", "version", "providers", "threads",
                                                               "graph_sha256", "external_data_sha256")},
    }
    return BenchResult(samples_ms=samples_ms, stats=summarize(samples_ms, batch=batch), fingerprint=fp,
                       conditions=recorded, block_sizes=tuple(len(b.samples_ns) for b in blocks))
