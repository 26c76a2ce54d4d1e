"""Human rendering of an export report (rich): parity chain, graph, latency. The report is data first."""

from __future__ import annotations

from typing import Any

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


def render_export(report: dict[str, Any], out_dir: Any) -> None:
    out.print(parity_table(report["parity"]))
    div = report["parity"].get("first_divergence")
    if div:
        out.print(f"[red]first diverging layer:[/] {div}")
    g = report["graph"]["final"]
    simp = report["simplify"]
    out.print(f"graph: {g['nodes']} nodes after {simp['tool']} ({simp['nodes_before']} before, {simp['seconds']:.1f} s)"
              + (f" [yellow]simplifier failed, graph kept as exported: {simp['error']}[/]" if simp.get("error") else "")
              + f"; BatchNormalization {g['batchnorm']}, Identity {g['identity']}, dead {len(g['dead'])}, "
              f"duplicates {len(g['duplicates'])}" + (f"; custom {g['custom_nodes']}" if g["custom_nodes"] else ""))
    exp = report["export"]
    out.print(f"exporter: {exp['exporter']} (opset {exp['opset']}, {exp['seconds']:.1f} s), lowering {exp['lowering']}")
    twin = report.get("ort_twin")
    if twin:
        a = twin["alignment"]
        out.print(f"ONNX Runtime twin (ort/model.onnx): {a['matched']} nodes matched to the plugin graph; "
                  f"plugin-side only: {a['unmatched_artifact']}")
    prec = report.get("precision")
    if prec:
        out.print(f"precision {prec.get('precision')}: {prec.get('summary', '')}")
    dla = report.get("dla")
    if dla:
        out.print(f"DLA placement: {dla.get('counts')}")
    for note in report.get("notes") or []:
        out.print(f"[yellow]note:[/] {note}")
    if report.get("latency"):
        out.print(latency_table(report["latency"]))
    engine = report.get("engine")
    if engine:
        if engine["status"] == "built":
            out.print(f"[green]engine built[/]: {engine.get('engine_path', 'engine.plan')}")
        else:
            out.print(f"[yellow]engine {engine['status']}[/]. Build it on the device: {engine['build_later']}")
            for line in engine.get("trtexec", []):
                out.print(f"  {line}", highlight=False, soft_wrap=True)
    verdict = "[green]passed[/]" if report["parity"]["passed"] else f"[red]FAILED at {report['parity']['broke_at']}[/]"
    out.print(f"parity {verdict}; wrote {out_dir}/model.onnx, manifest.json, report.json, reference.npz "
              f"({sum(report['timings_s'].values()):.1f} s)")
