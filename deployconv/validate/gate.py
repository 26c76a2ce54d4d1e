"""The latency gate: is the current run slower than the baseline by more than the tolerance? Pure and
torch-free (numpy only); `gate(baseline, current)` is the front door, the CLI only loads, renders and exits.

Comparability first. The two runs' fingerprints must agree on everything that sets the speed of the same
work: CPU model, cores, affinity, OS, device and driver, runtime and its version, providers, threads, batch,
input shapes and dtypes, governor and max clock where known (deployconv.validate.fingerprint.comparable).
The graph, external-data and engine hashes may differ: they are what the gate measures. Anything else
that differs makes the verdict `incomparable` (exit 3), naming each field; `allow_diff` accepts named
fields on purpose (e.g. `runtime_version` to gate an ONNX Runtime upgrade).

The statistic. r = m(current) / m(baseline), where m is the chosen percentile (median, p10 or p99, numpy
'linear', as `bench` reports it) of all samples of a run. Its 95% confidence interval [lo, hi] is the
equal-tailed percentile interval of a seeded bootstrap (2000 resamples) that rebuilds each run from its
contiguous chunks drawn with replacement (gate_stats: at least 10 chunks per run, never crossing a
`bench --repeat` block), plus a between-run term: each replicate's log ratio gets a N(0, 2 s^2) draw, with
s = `run_noise`, the standard deviation of log m between two runs of identical work on this runner that is
not visible inside one run (a drifting load, a new session's memory placement, another VM on the host).
Measured on a shared 2-core runner with load averages of 12 to 71 (benchmarks/gate_quality.py, 24 pairs
of runs of one unchanged model, minutes apart), the chunk bootstrap alone covered the true ratio 1.0 in 54%
of the comparisons of medians (71% for p10) instead of 95%: its intervals were 2 to 2.7 times too narrow.
s carries that part; its estimate there was 1.4% for the median and 0.5% for p10. DEFAULT_RUN_NOISE = 1%:
with it the gate met its targets on that machine (no false alarm in 24 identical pairs, 23 of 24 slowdowns
of 16% caught at the median, 24 of 24 at p10; benchmarks/results/gate_quality_cpu.json), while 0 gave a
false alarm and 2% made two thirds of the identical comparisons "too noisy" at a 5% limit. Calibrate it for
your runner (examples/ci/README.md): the estimate is sqrt((mean squared log ratio of identical pairs -
mean bootstrap variance) / 2), which gate_quality.py prints as between_run_noise_estimate.

The decision, with L = 1 + max_regression and w = hi - lo (in ratio units, e.g. 0.06 = 6 points):
- regression (exit 1) when lo > L: even the favourable end of the interval is over the limit;
- pass (exit 0) when hi <= L: even the unfavourable end is within it;
- otherwise the interval straddles L, and then
  - too noisy to decide (exit 3) when w > noise_threshold (default: max_regression itself);
  - else borderline, decided by the point estimate: regression when r > L, pass otherwise.
Why this threshold: the interval sits around the estimate, so when it straddles L and is narrower than
the tolerance, a true ratio on the other side of L from the estimate is within tolerance/2 of L (between
2.5% and 7.5% for a 5% limit): a decision by the estimate can be wrong only about a change that is, within
the precision asked for, at the limit, and demanding more would leave a change sitting at the limit
undecidable forever. An interval wider than the tolerance cannot tell "within
it" from "over it" by as much as the tolerance itself, so the gate says so instead of guessing: the fix is
more samples, more blocks, or a quieter runner. Tying the threshold to the tolerance keeps one knob
meaningful: a stricter limit asks for a proportionally more precise measurement.

Not Mann-Whitney U: it tests whether two distributions differ at all, not whether one metric grew by more
than a tolerance; with hundreds of samples it flags meaningless differences, and like a per-sample bootstrap
it assumes independent samples. No outlier trimming: `bench` has already warmed up (by time, per block),
the median is itself robust to outliers, and for p99 the slow samples are the very thing measured.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from deployconv.core.errors import BadInputError
from deployconv.runtime.timing import BenchResult
from deployconv.validate.fingerprint import IDENTITY_FIELDS, comparable
from deployconv.validate.gate_stats import (
    METRIC_PERCENTILES,
    MIN_UNITS,
    bootstrap_log_ratio,
    metric_value,
    percentile_interval,
    resampling_units,
)

SCHEMA = "deployconv.gate/1"
DEFAULT_MAX_REGRESSION = 0.05
DEFAULT_RUN_NOISE = 0.01
CONFIDENCE = 0.95
RESAMPLES = 2000
MIN_SAMPLES = 20
SUBJECT_FIELDS = ("graph_sha256", "external_data_sha256", "engine_sha256")  # what the gate measures

EXIT_PASS, EXIT_REGRESSION, EXIT_UNDECIDED = 0, 1, 3
EXIT_CODES = {"pass": EXIT_PASS, "regression": EXIT_REGRESSION, "noisy": EXIT_UNDECIDED,
              "incomparable": EXIT_UNDECIDED}


@dataclass(frozen=True)
class RunSummary:
    """One side of the comparison, as a reader of the report needs it."""

    metric_ms: float
    median_ms: float
    p99_ms: float
    count: int
    units: int
    blocks: int
    load_avg: list[float] | None
    started_at: str | None
    graph_sha256: str | None
    engine_sha256: str | None
    file: str | None = None


@dataclass(frozen=True)
class GateResult:
    verdict: str  # pass | regression | noisy | incomparable
    exit_code: int
    reason: str
    metric: str
    max_regression: float
    noise_threshold: float
    run_noise: float
    confidence: float
    ratio: float | None = None  # current / baseline
    ci_low: float | None = None
    ci_high: float | None = None
    borderline: bool = False  # the interval straddled the limit; the point estimate decided
    baseline: RunSummary | None = None
    current: RunSummary | None = None
    differences: list[str] = field(default_factory=list)  # fields that make the runs incomparable
    changed: list[str] = field(default_factory=list)  # measured subject that changed (graph, engine)
    allowed: list[str] = field(default_factory=list)  # differences accepted with allow_diff
    conditions: dict[str, Any] = field(default_factory=dict)  # what both runs share
    method: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    schema: str = SCHEMA

    @property
    def limit_ratio(self) -> float:
        return 1.0 + self.max_regression

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "limit_ratio": self.limit_ratio}


def decide(ratio: float, ci_low: float, ci_high: float, limit_ratio: float,
           noise_threshold: float) -> tuple[str, bool, str]:
    """(verdict, borderline, reason) by the rule in the module docstring."""
    lim = f"+{(limit_ratio - 1) * 100:.1f}%"
    if ci_low > limit_ratio:
        return "regression", False, f"the whole confidence interval is above the limit {lim}"
    if ci_high <= limit_ratio:
        return "pass", False, f"the whole confidence interval is within the limit {lim}"
    width = ci_high - ci_low
    if width > noise_threshold:
        return "noisy", False, (f"the confidence interval straddles the limit {lim} and is {width * 100:.1f} "
                                f"points wide, more than the noise threshold {noise_threshold * 100:.1f}")
    if ratio > limit_ratio:
        return "regression", True, (f"borderline: the interval straddles the limit {lim} but is narrow "
                                    f"({width * 100:.1f} points); the estimate is over it")
    return "pass", True, (f"borderline: the interval straddles the limit {lim} but is narrow "
                          f"({width * 100:.1f} points); the estimate is within it")


def _summary(run: BenchResult, metric: str, units: int, file: str | None) -> RunSummary:
    x = np.asarray(run.samples_ms, dtype=np.float64)
    fp = run.fingerprint
    return RunSummary(metric_ms=metric_value(x, metric), median_ms=metric_value(x, "median"),
                      p99_ms=metric_value(x, "p99"), count=int(x.size), units=units,
                      blocks=len(run.block_sizes) or 1, load_avg=None if fp.load_avg is None else list(fp.load_avg),
                      started_at=run.conditions.get("started_at"), graph_sha256=fp.graph_sha256,
                      engine_sha256=fp.engine_sha256, file=file)


def _shared_conditions(run: BenchResult) -> dict[str, Any]:
    fp = run.fingerprint
    return {"cpu_model": fp.cpu_model, "cpu_logical_cores": fp.cpu_logical_cores, "cpu_affinity": fp.cpu_affinity,
            "device": fp.device, "runtime": fp.runtime, "runtime_version": fp.runtime_version,
            "providers": list(fp.providers), "threads": fp.threads, "batch": fp.batch, "inputs": fp.inputs,
            "os": fp.os}


def _notes(base: BenchResult, cur: BenchResult, metric: str) -> list[str]:
    notes = []
    cpus = base.fingerprint.cpu_affinity
    la, lb = base.fingerprint.load_avg, cur.fingerprint.load_avg
    for name, load in (("baseline", la), ("current", lb)):
        if load is not None and load[0] > 0.5 * cpus:
            notes.append(f"busy runner during the {name} run: load average {load[0]:.2f} on {cpus} CPU(s)")
    if la is not None and lb is not None and abs(la[0] - lb[0]) > 0.5 * cpus:
        notes.append(f"load average differed between the runs ({la[0]:.2f} vs {lb[0]:.2f}): a load change "
                     "shifts latency by itself")
    for name, run in (("baseline", base), ("current", cur)):
        if metric == "p99" and len(run.samples_ms) < 100:
            notes.append(f"p99 of the {name} run rests on {len(run.samples_ms)} samples (< 100): it is close "
                         "to the maximum")
        if len(run.block_sizes) <= 1:
            notes.append(f"the {name} run has one block: chunks of one session stand in for independent runs "
                         "(`bench --repeat 10` measures session-to-session noise too)")
    return notes


def _check_options(metric: str, max_regression: float, noise_threshold: float, run_noise: float,
                   allow_diff: Collection[str]) -> None:
    if metric not in METRIC_PERCENTILES:
        raise BadInputError(f"unknown metric {metric!r}", fix=f"choose one of {', '.join(METRIC_PERCENTILES)}")
    if not 0 <= max_regression < 10:
        raise BadInputError(f"max regression must be between 0% and 1000%, got {max_regression:.1%}")
    if not noise_threshold > 0:
        raise BadInputError(f"noise threshold must be > 0, got {noise_threshold:.1%}")
    if not 0 <= run_noise < 1:
        raise BadInputError(f"run noise must be between 0% and 100%, got {run_noise:.1%}")
    unknown = sorted(set(allow_diff) - set(IDENTITY_FIELDS))
    if unknown:
        raise BadInputError(f"--allow-diff: unknown fingerprint field(s) {', '.join(unknown)}",
                            fix=f"choose from {', '.join(f for f in IDENTITY_FIELDS if f not in SUBJECT_FIELDS)}")


def gate(baseline: BenchResult, current: BenchResult, *, metric: str = "median",
         max_regression: float = DEFAULT_MAX_REGRESSION, noise_threshold: float | None = None,
         run_noise: float = DEFAULT_RUN_NOISE, allow_diff: Collection[str] = (), seed: int = 0,
         resamples: int = RESAMPLES, baseline_file: str | None = None,
         current_file: str | None = None) -> GateResult:
    """Compare two `bench` runs (see the module docstring for the statistic and the decision).

    Fractions, not percent: max_regression=0.05 is 5%. noise_threshold defaults to max_regression."""
    noise_threshold = max_regression if noise_threshold is None else noise_threshold
    _check_options(metric, max_regression, noise_threshold, run_noise, allow_diff)
    common = {"metric": metric, "max_regression": max_regression, "noise_threshold": noise_threshold,
              "run_noise": run_noise, "confidence": CONFIDENCE}
    fb, fc = baseline.fingerprint, current.fingerprint
    differences = comparable(fb, fc, ignore=(*SUBJECT_FIELDS, *allow_diff))
    allowed = [d for d in comparable(fb, fc, ignore=SUBJECT_FIELDS) if d not in differences]
    changed = [f"{name}: {str(getattr(fb, name))[:16]}… -> {str(getattr(fc, name))[:16]}…"
               for name in SUBJECT_FIELDS if getattr(fb, name) != getattr(fc, name)]
    if differences:
        return GateResult(verdict="incomparable", exit_code=EXIT_CODES["incomparable"],
                          reason=f"the runs' fingerprints differ in {', '.join(d.split(':')[0] for d in differences)}",
                          differences=differences, changed=changed, allowed=allowed, **common)

    for name, run in (("baseline", baseline), ("current", current)):
        if len(run.samples_ms) < MIN_SAMPLES:
            raise BadInputError(f"the {name} run has {len(run.samples_ms)} samples, too few to compare",
                                fix=f"bench with at least {MIN_SAMPLES} samples (e.g. --duration 10 --repeat 10)")
    ub = resampling_units(baseline.samples_ms, baseline.block_sizes)
    uc = resampling_units(current.samples_ms, current.block_sizes)
    sb = _summary(baseline, metric, len(ub), baseline_file)
    sc = _summary(current, metric, len(uc), current_file)
    if sb.metric_ms <= 0 or sc.metric_ms <= 0:
        raise BadInputError(f"a {metric} latency of 0 ms cannot be compared as a ratio",
                            fix="check the runs: the timer recorded zeros")
    ratio = sc.metric_ms / sb.metric_ms
    lo, hi = percentile_interval(
        bootstrap_log_ratio(ub, uc, metric, resamples=resamples, seed=seed, run_noise=run_noise), CONFIDENCE)
    verdict, borderline, reason = decide(ratio, lo, hi, 1.0 + max_regression, noise_threshold)
    notes = _notes(baseline, current, metric)
    if not changed:
        notes.append("same graph and engine on both sides: any difference is the runner's noise")
    method = {"statistic": f"ratio current/baseline of the {metric} of all samples "
                           f"(numpy percentile, method linear)",
              "interval": f"{CONFIDENCE:.0%} equal-tailed percentile bootstrap of the log ratio",
              "resampling_unit": f"contiguous chunks inside bench blocks, at least {MIN_UNITS} per run",
              "units": [len(ub), len(uc)], "resamples": resamples, "seed": seed,
              "between_run_noise": f"N(0, 2 x {run_noise:.2%}^2) added to each replicate's log ratio",
              "decision": "regression if lo > limit; pass if hi <= limit; else too noisy if hi - lo > "
                          "noise_threshold, else the point estimate decides (borderline)"}
    return GateResult(verdict=verdict, exit_code=EXIT_CODES[verdict], reason=reason, ratio=ratio, ci_low=lo,
                      ci_high=hi, borderline=borderline, baseline=sb, current=sc, changed=changed,
                      allowed=allowed, conditions=_shared_conditions(current), method=method, notes=notes,
                      **common)
