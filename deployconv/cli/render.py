"""Human rendering of an export report (rich): parity chain, graph, latency. The report is data first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deployconv.core.artifacts import EngineEntry, ExportReport
from deployconv.core.artifacts.names import ENGINE, MANIFEST, MODEL_ONNX, ORT_MODEL, REFERENCE, REPORT
from deployconv.core.console import fmt_sci, out, table


def parity_table(parity: dict[str, Any]) -> Any:
    rows = []
    points = parity.get("points") or {"": {"stages": parity["stages"]}}  # dynamic sizes: min, opt, max
    staged = [(f"@{p} " if p else "", s) for p, v in points.items() for s in v["stages"]]
    for at, s in staged:
        vp, vr = s.get("vs_previous") or {}, s.get("vs_reference") or {}
        worst = f" (worst: {vp['output']})" if vp.get("output") else ""  # named outputs: the worst one
        rows.append([
            at + s["stage"] + worst, s.get("compared_with") or "(reference)",
            fmt_sci(vp.get("max_abs")) if vp else "-", fmt_sci(vp.get("p99_abs")) if vp else "-",
            fmt_sci(vp.get("max_abs_rel_scale")) if vp else "-",
            f"{vp['cosine']:.8f}" if vp else "-",
            f"{vp['top1_agreement']:.3f}" if vp.get("top1_agreement") is not None else "-",
            fmt_sci(vr.get("max_abs_rel_scale")) if vr else "-",
            "[green]ok[/]" if s["passed"] else "[red]FAIL[/]: " + "; ".join(s["failures"]),
        ])
    b = parity["budget"]
    title = "" if not parity.get("points") else "at " + "; ".join(
        f"{p} {' '.join('x'.join(map(str, sh)) for sh in v['shapes'].values())}" for p, v in parity["points"].items()
    ) + ": "
    title += f"parity chain (budget: max abs/scale <= {b['max_abs_rel_scale']:.0e}, cosine >= {b['min_cosine']})"
    own = [(s["stage"], s["budget"]) for s in parity["stages"] if s.get("budget") and s["budget"] != b]
    for stage, sb in own:  # precision stages carry their own budget
        title += f"; {stage}: <= {sb['max_abs_rel_scale']:.0e}, cosine >= {sb['min_cosine']}"
    return table(title, ["stage", "vs", "max abs", "p99 abs", "max abs/scale", "cosine", "top-1", "vs fp64 ref", ""],
                 rows)


def latency_table(latency: dict[str, Any]) -> Any:
    rows = []
    runs = [(label, run) for label, run in latency["runs"].items()]
    for point, row in (latency.get("points") or {}).items():  # dynamic sizes: min and max beside opt
        shapes = " ".join("x".join(map(str, s)) for s in row.get("shapes", {}).values())
        runs += [(f"{label} @{point} {shapes}", run) for label, run in row["runs"].items()]
    for label, run in runs:
        st = run["stats"]
        rows.append([label, f"{st['median_ms']:.2f}", f"{st['p90_ms']:.2f}", f"{st['p99_ms']:.2f}",
                     f"{st['cv']:.3f}", f"{st['throughput']:.1f}"])
    return table(f"latency, batch {latency['batch']}, {latency['threads']} threads, "
                 f"{latency['seconds_per_runtime']} s each", ["runtime", "median ms", "p90 ms", "p99 ms", "CV", "img/s"],
                 rows, justify_right=["median ms", "p90 ms", "p99 ms", "CV", "img/s"])


def render_export(report: ExportReport | dict[str, Any], out_dir: Any) -> None:
    """The export's report for people; `report` is report.json's content (read through ExportReport)."""
    r = report if isinstance(report, ExportReport) else ExportReport.from_dict(report)
    out.print(parity_table(r.parity))
    div = r.parity.get("first_divergence")
    if div:
        out.print(f"[red]first diverging layer:[/] {div}")
    g = (r.graph or {})["final"]
    simp = r.simplify or {}
    out.print(f"graph: {g['nodes']} nodes after {simp['tool']} ({simp['nodes_before']} before, {simp['seconds']:.1f} s)"
              + (f" [yellow]simplifier failed, graph kept as exported: {simp['error']}[/]" if simp.get("error") else "")
              + f"; BatchNormalization {g['batchnorm']}, Identity {g['identity']}, dead {len(g['dead'])}, "
              f"duplicates {len(g['duplicates'])}" + (f"; custom {g['custom_nodes']}" if g["custom_nodes"] else ""))
    exp = r.export or {}
    out.print(f"exporter: {exp['exporter']} (opset {exp['opset']}, {exp['seconds']:.1f} s), lowering {exp['lowering']}")
    if r.ort_twin:
        a = r.ort_twin["alignment"]
        out.print(f"ONNX Runtime twin ({ORT_MODEL}): {a['matched']} nodes matched to the plugin graph; "
                  f"plugin-side only: {a['unmatched_artifact']}")
    if r.precision:
        out.print(f"precision {r.precision.get('precision')}: {r.precision.get('summary', '')}")
    if r.dla:
        out.print(f"DLA placement: {r.dla.get('counts')}")
    for note in r.notes:
        out.print(f"[yellow]note:[/] {note}")
    if r.latency:
        out.print(latency_table(r.latency))
    render_engine(r.engine, out_dir)
    verdict = "[green]passed[/]" if r.parity["passed"] else f"[red]FAILED at {r.parity['broke_at']}[/]"
    out.print(f"parity {verdict}; wrote {out_dir}/{MODEL_ONNX}, {MANIFEST}, {REPORT}, {REFERENCE} "
              f"({sum(r.timings_s.values()):.1f} s)")


def engine_line(engine: EngineEntry, out_dir: Any) -> str:
    """What the engine step did, in one line: the built file's path, or why it was skipped and how to build it."""
    if engine.built:
        return f"[green]engine built[/]: {Path(out_dir) / (engine.file or ENGINE)}"
    return f"[yellow]engine {engine.status}[/]. Build it on the device: {engine.build_later}"


def render_engine(engine: EngineEntry | None, out_dir: Any) -> None:
    if engine is None:
        return
    out.print(engine_line(engine, out_dir))
    if not engine.built:
        for line in engine.trtexec:
            out.print(f"  {line}", highlight=False, soft_wrap=True)
