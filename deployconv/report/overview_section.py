"""The top of the page: what was exported, for which target, the verdicts, the conditions shared by every
section, and where the numbers come from (files and hashes)."""

from __future__ import annotations

from deployconv.core.artifacts import Manifest
from deployconv.report import numbers
from deployconv.report.gate_section import read_gate
from deployconv.report.markup import badge, esc, kv_table, notes, num_td, pointer, section, td
from deployconv.report.source import MANIFEST, REPORT, ExportDir


def _io(manifest: Manifest, side: str) -> str:
    rows = manifest.io.get(side) or []
    return ", ".join(f"{r.get('name')}: {r.get('dtype')}[{'x'.join(map(str, r.get('shape') or []))}]"
                     for r in rows) or "not recorded"


def verdicts(d: ExportDir) -> str:
    parity = d.report.parity
    out = [badge(parity["passed"], "parity passed" if parity["passed"]
                 else f"parity FAILED at {parity.get('broke_at')}")]
    if d.gate is not None:
        g = read_gate(d.gate)
        out.append(badge(g.passed, f"gate {g.decision or ('passed' if g.passed else 'failed')}"))
    if d.report_matches_manifest is False:
        out.append(badge(False, "report.json differs from the manifest's hash"))
    return '<p class="verdicts">' + " ".join(out) + "</p>"


def overview_section(d: ExportDir, host: str) -> str:
    r, m = d.report, d.manifest
    t = r.target
    tools = m.tools
    rows = [
        ("model", td(r.model)),
        ("target", td(f"{t.get('name')}: {t.get('description') or ''}".rstrip(": "))),
        ("runtime", td(t.get("runtime") or m.runtime)),
        ("precision", td(t.get("precision") or m.precision)),
        ("inputs", td(_io(m, "inputs"))),
        ("outputs", td(_io(m, "outputs"))),
        ("export host", td(host)),
        ("opset / exporter", td(f"{m.opset} / {m.exporter}")),
        ("custom-op lowering", td(m.lowering or "none (no custom ops)")),
        ("plugins", td(", ".join(f"{p.name} v{p.version}" for p in m.plugins) or "none")),
        ("tools", td(", ".join(f"{k} {v}" for k, v in tools.items() if v) or "not recorded")),
    ]
    if r.engine is not None:
        rows.append(("TensorRT engine", td(r.engine.status)))
    elif t.get("runtime") == "tensorrt":
        rows.append(("TensorRT engine", td("not recorded in report.json")))
    g = (r.graph or {}).get("final")
    if g:
        rows.append(("graph nodes", num_td(g.get("nodes"), pointer(REPORT, "graph", "final", "nodes"),
                                           numbers.integer)))
        ops = g.get("op_counts") or {}
        rows.append(("ops", td(", ".join(f"{k} {v}" for k, v in ops.items()) or "-")))
    rp = r.reparam
    if rp:
        rows.append(("parameters, train form", num_td(rp.get("params_before"),
                                                      pointer(REPORT, "reparam", "params_before"), numbers.integer)))
        rows.append(("parameters, deploy form", num_td(rp.get("params_after"),
                                                       pointer(REPORT, "reparam", "params_after"), numbers.integer)))
        rows.append(("reparameterization max rel diff (fp64)",
                     num_td(rp.get("fp64_max_rel_diff"), pointer(REPORT, "reparam", "fp64_max_rel_diff"),
                            numbers.sci)))
    match = d.report_matches_manifest
    check = {True: "matches manifest.json", False: "DIFFERS from manifest.json: edited after export",
             None: "manifest.json records no hash for it"}[match]
    rows.append(("source", td(f"{d.path.resolve()}: {REPORT} sha256 {d.report_sha256} ({check})")))
    files = m.files
    rows.append(("files (manifest)", td(", ".join(files) or "-")))
    rows.append(("every number", td("its source field is in the cell's data-src attribute (file#/JSON Pointer); "
                                    "hovering shows the full stored value")))
    title = f'<h1>{esc(r.model)} &rarr; {esc(t.get("name"))}</h1>'
    export_notes = [str(n) for n in r.notes]
    return title + verdicts(d) + section("overview", "Overview and conditions",
                                         kv_table(rows) + notes(export_notes)) + (
        f'<p class="small">{esc(MANIFEST)} format {esc(m.format)}</p>')
