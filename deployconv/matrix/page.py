"""matrix.html: for each device, a grid of models x targets; each cell says its status and median latency and
links to its export report and job records. Built from matrix.json alone with deployconv.report's markup
helpers and stylesheet; self-contained (no script, no network: the report page's Content-Security-Policy)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deployconv.matrix.summary import grid
from deployconv.report.markup import esc, kv_table, table, td
from deployconv.report.page import CSP, CSS

_CLASS = {"passed": "pass", "failed": "fail", "error": "fail", "skipped": "na", "blocked": "na", "cancelled": "na"}


def _cell(c: Mapping[str, Any]) -> str:
    status = c["status"]
    lat = c.get("latency") or {}
    parts = [f"<b>{esc(status)}</b>"]
    if lat.get("median_ms") is not None:
        parts.append(f'<span class="small">median {lat["median_ms"]:.3g} ms</span>')
    links = []
    if c.get("report_html"):
        links.append(f'<a href="{esc(c["report_html"])}">report</a>')
    if c.get("report"):
        links.append(f'<a href="{esc(c["report"])}">report.json</a>')
    if lat.get("file"):
        links.append(f'<a href="{esc(lat["file"])}">bench</a>')
    for step, s in c["steps"].items():
        links.append(f'<a href="{esc(s["record"])}" title="{esc(s["status"])}">{esc(step)}</a>')
    parts.append('<span class="small">' + " · ".join(links) + "</span>")
    title = ""
    if c.get("error"):
        title = f' title="{esc(str(c["error"].get("step")) + ": " + str(c["error"].get("what")))}"'
    return f'<td class="{_CLASS.get(status, "na")}"{title}>' + "<br>".join(parts) + "</td>"


def render_page(doc: Mapping[str, Any]) -> str:
    cond, jobs = doc["conditions"], doc["jobs"]
    body = ["<h1>deployconv matrix</h1>",
            kv_table([("cells", td(len(doc["cells"]))),
                      ("jobs", td(", ".join(f"{jobs[k]} {k}" for k in jobs if k != "total" and jobs[k]))),
                      ("executor", td(f"{cond.get('executor')}: {cond.get('workers')} workers x "
                                      f"{cond.get('threads_per_job')} threads")),
                      ("wall time", td(f"{cond.get('wall_s')} s")),
                      ("load average", td(f"start {cond.get('load_avg_start')}, end {cond.get('load_avg_end')}")),
                      ("host", td(f"{cond.get('host')}: {cond.get('cpu')}, {cond.get('cpus')} CPUs"))])]
    for device, (models, targets, cells) in grid(doc).items():
        rows = [[f'<td class="name">{esc(m)}</td>'] + [_cell(cells[(m, t)]) if (m, t) in cells else td("-")
                                                         for t in targets] for m in models]
        body += [f"<h2>device: {esc(device)}</h2>", table(["model", *targets], rows)]
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>deployconv matrix</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
