"""Timing a TensorRT runner: the H2D / GPU compute / D2H split of each inference (CUDA events on the runner's
stream, what trtexec reports as latency = H2D + compute + D2H), its statistics, and `benchmark_trt`, the
runtime.timing benchmark plus that split. Pure except benchmark_trt, which drives a runner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deployconv.runtime.timing import BenchResult, LatencyStats, benchmark, summarize

GPU_TIMER = ("CUDA events on the runner's stream around the H2D copies, the enqueue (execute_async_v3 or the "
             "CUDA graph launch) and the D2H copies")


@dataclass(frozen=True)
class TransferSplit:
    """One inference's GPU timeline in milliseconds (CUDA events)."""

    h2d_ms: float
    compute_ms: float
    d2h_ms: float

    @property
    def total_ms(self) -> float:
        return self.h2d_ms + self.compute_ms + self.d2h_ms


@dataclass(frozen=True)
class SplitStats:
    h2d: LatencyStats
    compute: LatencyStats
    d2h: LatencyStats
    gpu_total: LatencyStats  # H2D + compute + D2H per inference: trtexec's "Latency"
    timer: str = GPU_TIMER

    def to_dict(self) -> dict[str, Any]:
        return {"h2d": self.h2d.to_dict(), "compute": self.compute.to_dict(), "d2h": self.d2h.to_dict(),
                "gpu_total": self.gpu_total.to_dict(), "timer": self.timer}


def split_stats(splits: Sequence[TransferSplit], batch: int | None = None) -> SplitStats:
    """Summary statistics of each part of the split (see runtime.timing.summarize)."""
    if not splits:
        raise ValueError("no timed inferences to summarize")
    return SplitStats(h2d=summarize([s.h2d_ms for s in splits], batch), compute=summarize([s.compute_ms for s in splits], batch),
                      d2h=summarize([s.d2h_ms for s in splits], batch), gpu_total=summarize([s.total_ms for s in splits], batch))


@dataclass(frozen=True)
class TrtBenchResult:
    """A BenchResult (host wall time per inference, as for every runtime) plus the GPU-event split."""

    bench: BenchResult
    split: SplitStats

    def to_dict(self) -> dict[str, Any]:
        d = self.bench.to_dict()
        samples = d.pop("samples_ms")  # keep the raw samples last
        return {**d, "split": self.split.to_dict(), "samples_ms": samples}


def benchmark_trt(runner: Any, feed: Mapping[str, np.ndarray], **kwargs: Any) -> TrtBenchResult:
    """`runtime.timing.benchmark` for a TrtRunner, plus the H2D / compute / D2H split of the timed runs
    (warm-up runs excluded). Keyword arguments are benchmark()'s."""
    runner.splits.clear()
    runner.record_splits = True
    try:
        result = benchmark(runner, feed, **kwargs)
    finally:
        runner.record_splits = False
    timed = timed_splits(runner.splits, result.conditions.get("blocks") or
                         [{"warmup_iters": 0, "count": len(result.samples_ms)}])
    runner.splits.clear()
    return TrtBenchResult(result, split_stats(timed, batch=result.stats.batch))


def timed_splits(splits: Sequence[TransferSplit], blocks: Sequence[Mapping[str, Any]]) -> list[TransferSplit]:
    """The splits of the timed runs only: every block (`--repeat`) runs its warm-up, then its timed runs, and
    each inference records one split in that order."""
    out: list[TransferSplit] = []
    at = 0
    for b in blocks:
        at += int(b["warmup_iters"])
        out.extend(splits[at:at + int(b["count"])])
        at += int(b["count"])
    if at != len(splits):
        raise RuntimeError(f"{len(splits)} inferences recorded, {at} expected from the benchmark's blocks")
    return out
