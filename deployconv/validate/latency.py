"""Latency statistics and the benchmark loop, as validate's callers (gate, quick bench, bench) name them. The
code lives in deployconv.runtime.timing, below the runners that need it (the TensorRT runner's H2D/compute/D2H
split reuses the same loop and statistics)."""

from __future__ import annotations

from deployconv.runtime.timing import (
    DEFAULT_DURATION_S,
    DEFAULT_MIN_ITERS,
    DEFAULT_WARMUP_S,
    PERCENTILE_METHOD,
    SCHEMA,
    BenchResult,
    LatencyStats,
    benchmark,
    describe_feed,
    split_budget,
    summarize,
)

__all__ = ["DEFAULT_DURATION_S", "DEFAULT_MIN_ITERS", "DEFAULT_WARMUP_S", "PERCENTILE_METHOD", "SCHEMA",
           "BenchResult", "LatencyStats", "benchmark", "describe_feed", "split_budget", "summarize"]
