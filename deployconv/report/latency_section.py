"""Latency on the page: one summary row per runtime, then per runtime its distribution (histogram with p50 and
p99) beside the conditions it was measured under, and notes that tell a reader when the numbers are shaky."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deployconv.core.artifacts import Manifest
from deployconv.report import conditions, numbers
from deployconv.report.markup import esc, kv_table, notes, num_td, para, pointer, section, table, td
from deployconv.report.source import REPORT, ExportDir

NOISY_CV = 0.05
FEW_SAMPLES = 20


@dataclass(frozen=True)
class Run:
    """One latency result and where it lives (file and JSON path), so its cells can name their source."""

    label: str
    file: str
    path: tuple[str, ...]
    data: dict[str, Any]

    def src(self, *parts: str) -> str:
        return pointer(self.file, *self.path, *parts)

    @property
    def stats(self) -> dict[str, Any]:
        return self.data["stats"]

    @property
    def samples(self) -> list[float] | None:
        s = self.data.get("samples_ms")
        return [float(v) for v in s] if isinstance(s, list) and s else None


def collect_runs(d: ExportDir) -> list[Run]:
    """The export's short side-by-side benchmark, then every bench*.json in the directory."""
    runs = [Run(label, REPORT, ("latency", "runs", label), run)
            for label, run in ((d.report.latency or {}).get("runs") or {}).items()]
    runs += [Run(f"{b.name}: {conditions.run_runtime(b.data)}", b.name, (), b.data) for b in d.benches]
    return runs


def run_notes(run: Run) -> list[str]:
    """What makes a run's numbers shaky, said beside them. Pure."""
    s, fp = run.stats, run.data.get("fingerprint") or {}
    out = []
    if run.samples is None:
        out.append("raw samples are absent from this result: the distribution cannot be drawn (stats only)")
    else:
        out += stats_mismatch(run.samples, s)
    cv, n = s.get("cv"), s.get("count")
    if cv is not None and cv > NOISY_CV:
        out.append(f"noisy: CV {cv:.1%} (> {NOISY_CV:.0%}); compare medians, and prefer a quiet machine")
    if n is not None and n < FEW_SAMPLES:
        out.append(f"only {n} sample{'' if n == 1 else 's'}: p99 is close to the slowest run, not a tail estimate")
    load, cpus = fp.get("load_avg"), fp.get("cpu_affinity")
    if load and cpus and load[0] > 0.5 * cpus:
        out.append(f"busy machine: load average {load[0]:.2f} at start on {cpus} usable CPU(s)")
    return out


def stats_mismatch(samples: Sequence[float], stats: dict[str, Any], rtol: float = 1e-6) -> list[str]:
    """Recompute median/p99 from the stored samples (numpy 'linear', as deployconv.runtime.timing does);
    a difference means the stats and the samples do not belong together."""
    x = np.asarray(samples, dtype=np.float64)
    out = []
    if stats.get("count") is not None and stats["count"] != x.size:
        out.append(f"stats say {stats['count']} samples, the result holds {x.size}")
    for key, q in (("median_ms", 50), ("p99_ms", 99)):
        if key in stats and stats[key] is not None:
            got = float(np.percentile(x, q, method=stats.get("percentile_method", "linear")))
            if abs(got - stats[key]) > rtol * max(abs(got), 1e-12):
                out.append(f"{key} stored {stats[key]:.6g} but the samples give {got:.6g}")
    return out


SUMMARY_COLUMNS: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("count", "runs", numbers.integer),
    ("median_ms", "p50 ms", numbers.ms),
    ("p90_ms", "p90 ms", numbers.ms),
    ("p95_ms", "p95 ms", numbers.ms),
    ("p99_ms", "p99 ms", numbers.ms),
    ("mean_ms", "mean ms", numbers.ms),
    ("min_ms", "min ms", numbers.ms),
    ("max_ms", "max ms", numbers.ms),
    ("std_ms", "std ms", numbers.ms),
    ("cv", "CV", numbers.fixed(3)),
    ("throughput", "items/s", numbers.rate),
)


def summary_table(runs: Sequence[Run]) -> str:
    rows = []
    for r in runs:
        c = r.data.get("conditions") or {}
        fp = r.data.get("fingerprint") or {}
        row = [td(r.label, class_="name"), td(fp.get("device") or fp.get("cpu_model") or "not recorded"),
               td(conditions.run_runtime(r.data)),
               td(conditions.run_threads(r.data)), td(conditions.run_inputs(r.data)),
               td(c.get("batch", r.stats.get("batch")))]
        row += [num_td(r.stats.get(k), r.src("stats", k), fmt) for k, _, fmt in SUMMARY_COLUMNS]
        rows.append(row)
    headers = ["runtime", "device", "runtime version", "threads", "inputs (dtype[shape])", "batch",
               *(h for _, h, _ in SUMMARY_COLUMNS)]
    return table(headers, rows, class_="latency")


def run_conditions(run: Run, manifest: Manifest, target: dict[str, Any]) -> str:
    c, fp = run.data.get("conditions") or {}, run.data.get("fingerprint") or {}
    graph = c.get("graph_sha256") or fp.get("graph_sha256")
    rows = [
        ("device", td(conditions.host(fp))),
        ("runtime", td(conditions.run_runtime(run.data))),
        ("precision", td(conditions.run_precision(run.data, manifest, target))),
        ("inputs", td(conditions.run_inputs(run.data))),
        ("threads", td(conditions.run_threads(run.data))),
        ("timing", td(conditions.run_timing(run.data))),
        ("timer", td(c.get("timer") or "not recorded")),
        ("load average", td(conditions.run_load(run.data))),
        ("started", td(c.get("started_at") or "not recorded")),
        ("graph sha256", td(graph or "-")),
        ("source", td(run.src())),
    ]
    return kv_table(rows)


def latency_section(d: ExportDir, figures: dict[str, str], overview: str, plots_missing: str | None) -> str:
    """`figures`: run label -> rendered <figure> (empty when it could not be drawn)."""
    runs = collect_runs(d)
    if not runs:
        why = ("export ran with --no-bench" if d.report.latency is None
               else "report.json holds no latency runs")
        return section("latency", "Latency", para(f"no latency measured: {why}; run `deployconv bench DIR "
                                                  "--out DIR/bench.json` to add one"))
    lat = d.report.latency or {}
    head = ""
    if lat:
        head = para(f"export's short benchmark: batch {lat.get('batch')}, {lat.get('threads')} threads, "
                    f"{lat.get('seconds_per_runtime')} s per runtime, one runtime after the other in one process "
                    "(rows comparable with each other, not with other machines)")
    body = head + summary_table(runs)
    if plots_missing:
        body += para(f"plots omitted: {plots_missing}", class_="warn")
    body += overview
    for r in runs:
        body += (f'<div class="run"><h3>{esc(r.label)}</h3>' + figures.get(r.label, "")
                 + run_conditions(r, d.manifest, d.report.target) + notes(run_notes(r)) + "</div>")
    return section("latency", "Latency", body)
