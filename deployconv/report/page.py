"""Assemble the page: sections in reading order, figures drawn where matplotlib is available, one inline
stylesheet, no script. A Content-Security-Policy meta tag makes a browser refuse any network load, so the page
stays self-contained even if a later edit slipped in an external reference."""

from __future__ import annotations

from dataclasses import dataclass, field

from deployconv.core.artifacts import ExportReport
from deployconv.core.artifacts.names import REPORT
from deployconv.core.version import __version__
from deployconv.report import conditions, plots
from deployconv.report.accuracy_section import accuracy_section
from deployconv.report.gate_section import gate_section
from deployconv.report.latency_section import Run, collect_runs, latency_section
from deployconv.report.markup import esc, figure
from deployconv.report.overview_section import overview_section
from deployconv.report.parity_section import parity_section
from deployconv.report.placement_section import placement_section
from deployconv.report.source import ExportDir
from deployconv.report.style import CSP, CSS  # re-exported: matrix/page.py shares the look


@dataclass
class Page:
    html: str
    notes: list[str] = field(default_factory=list)  # for the command line: what the page had to leave out


def _host(runs: list[Run]) -> str:
    """The export host as its latency fingerprint describes it (parity ran on the same machine)."""
    fp = next((r.data.get("fingerprint") for r in runs if r.file == REPORT and r.data.get("fingerprint")),
              None)
    return conditions.host(fp) + (" (from the latency fingerprint)" if fp else "")


def _latency_figures(runs: list[Run]) -> tuple[dict[str, str], str]:
    figures = {}
    strip = []
    for r in runs:
        s = r.stats
        if r.samples is None:
            continue
        title = (f"{r.label}: {conditions.run_runtime(r.data)}, {conditions.run_threads(r.data)} threads, "
                 f"{conditions.run_inputs(r.data)}")
        uri = plots.latency_histogram(r.samples, s["median_ms"], s["p99_ms"], title)
        figures[r.label] = figure(uri, f"latency histogram of {r.label}",
                                  f"{len(r.samples)} timed runs; p50 solid, p99 dashed, each sample a tick below "
                                  "the bars (when few)")
        strip.append(plots.StripRow(r.label, r.samples, s["median_ms"], s["p99_ms"]))
    overview = ""
    if len(strip) > 1:
        overview = figure(plots.latency_overview(strip), "latency of every runtime on one log axis",
                          "every runtime on one log-scaled axis: each dot one run (at most "
                          f"{plots.STRIP_MAX} shown per runtime), p50 solid, p99 dashed")
    return figures, overview


def _parity_figure(report: ExportReport) -> str:
    stages = report.parity["stages"]
    bars = [plots.ErrorBar(s["stage"], (s.get("vs_previous") or {}).get("max_abs_rel_scale"),
                           (s.get("vs_reference") or {}).get("max_abs_rel_scale")) for s in stages]
    if not any(b.vs_previous is not None for b in bars):
        return ""
    budget = report.parity["budget"]["max_abs_rel_scale"]
    return figure(plots.parity_errors(bars, budget), "parity error per stage against the budget",
                  "max |difference| / max |reference| per stage, log scale; dashed line: the chain's budget")


def build_page(d: ExportDir) -> Page:
    """The whole report page for an export directory, as one HTML string."""
    runs = collect_runs(d)
    missing = plots.missing_reason()
    notes = [f"plots omitted: {missing}"] if missing else []
    figures, overview, parity_fig = {}, "", ""
    if not missing:
        figures, overview = _latency_figures(runs)
        parity_fig = _parity_figure(d.report)
    host = _host(runs)
    body = (overview_section(d, host)
            + parity_section(d.report, d.manifest, host, parity_fig)
            + accuracy_section(d.report.accuracy)
            + latency_section(d, figures, overview, missing)
            + gate_section(d.gate)
            + placement_section(d.manifest, d.report.target))
    title = f"deployconv report: {d.report.model} -> {d.report.target.get('name')}"
    html = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>{body}"
            f'<footer class="small">written by deployconv {esc(__version__)} from {esc(d.path.name)}/report.json'
            "</footer></body></html>\n")
    return Page(html, notes)
