"""Human rendering of a ReparamReport (rich). The report itself is data (report.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deployconv.core.console import fmt_int, fmt_sci, out, table
from deployconv.reparam.report import ReparamReport


def render_report(report: ReparamReport, *, saved_to: Path | None = None, load_report: Any = None) -> None:
    groups: dict[str, list] = {}
    for r in report.rewrites:
        groups.setdefault(r.rewrite, []).append(r)
    rows = []
    for kind, recs in groups.items():
        rels = [r.max_rel_diff for r in recs if r.max_rel_diff is not None]
        paths = recs[0].path + (f" (+{len(recs) - 1} more)" if len(recs) > 1 else "")
        rows.append([kind, len(recs), fmt_int(sum(r.params_before for r in recs)),
                     fmt_int(sum(r.params_after for r in recs)), fmt_sci(max(rels) if rels else None), paths])
    out.print(table(f"reparameterization of {report.model} (probe {'x'.join(map(str, report.probe_shape))})",
                    ["rewrite", "count", "params before", "params after", "worst fp64 rel", "paths"], rows,
                    justify_right=["count", "params before", "params after", "worst fp64 rel"]))
    sites = [r for r in report.rewrites if r.rewrite.startswith("graph:")]
    if sites:
        out.print(table(f"graph-pass sites ({len(sites)})", ["where", "pattern", "params", "fp64 rel"],
                        [[r.path, r.module_type, f"{fmt_int(r.params_before)} -> {fmt_int(r.params_after)}",
                          fmt_sci(r.max_rel_diff)] for r in sites[:20]], justify_right=["fp64 rel"]))
    verdict = "[green]equivalent[/]" if report.passed else "[red]NOT verified[/]"
    out.print(
        f"params {report.params_before:,} -> {report.params_after:,}; "
        f"train vs deploy: fp64 max abs {fmt_sci(report.fp64_max_abs_diff)} "
        f"(rel {fmt_sci(report.fp64_max_rel_diff)}, tolerance {report.tolerance_fp64_rel:.0e}), "
        f"fp32 max abs {fmt_sci(report.fp32_max_abs_diff)} (rel {fmt_sci(report.fp32_max_rel_diff)}): {verdict}"
    )
    if report.remaining_batchnorm:
        shown = ", ".join(report.remaining_batchnorm[:4])
        out.print(f"BatchNorm kept ({len(report.remaining_batchnorm)}): {shown}")
    if report.near_misses:
        out.print(table(f"left unfused ({len(report.near_misses)} near misses)", ["where", "pattern", "why"],
                        [[m.path, m.pattern, m.reason] for m in report.near_misses[:20]]))
        if len(report.near_misses) > 20:
            out.print(f"... {len(report.near_misses) - 20} more in the JSON report")
    for note in report.notes:
        out.print(f"note: {note}")
    if load_report is not None:
        out.print(f"weights: {load_report.path} ({load_report.num_tensors} tensors"
                  + (f", wrapper '{load_report.wrapper}'" if load_report.wrapper else "")
                  + (f", prefix '{load_report.stripped_prefix}' stripped" if load_report.stripped_prefix else "")
                  + ")")
        if load_report.allowed_missing:
            out.print(f"[yellow]allowed missing keys ({len(load_report.allowed_missing)}):[/] "
                      + ", ".join(load_report.allowed_missing[:5]) + " -- these start from their initial values")
    if saved_to is not None:
        out.print(f"saved deploy-form model to {saved_to}")
