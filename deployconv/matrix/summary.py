"""matrix.md: the matrix for a CI step summary. One table per device, models down, targets across."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MARK = {"passed": "pass", "failed": "**FAIL**", "error": "**ERROR**", "skipped": "skip", "blocked": "blocked",
        "cancelled": "cancelled"}


def cell_text(cell: Mapping[str, Any]) -> str:
    text = MARK.get(cell["status"], cell["status"])
    lat = cell.get("latency")
    if lat and lat.get("median_ms") is not None:
        text += f" {lat['median_ms']:.3g} ms"
    return text


def grid(doc: Mapping[str, Any]) -> dict[str, tuple[list[str], list[str], dict[tuple[str, str], Any]]]:
    """device -> (models, targets, {(model, target): cell}) in the order of the spec."""
    out: dict[str, tuple[list[str], list[str], dict[tuple[str, str], Any]]] = {}
    for c in doc["cells"]:
        models, targets, cells = out.setdefault(c["device"], ([], [], {}))
        if c["model"] not in models:
            models.append(c["model"])
        if c["target"] not in targets:
            targets.append(c["target"])
        cells[(c["model"], c["target"])] = c
    return out


def to_markdown(doc: Mapping[str, Any]) -> str:
    cond, jobs = doc["conditions"], doc["jobs"]
    lines = ["# deployconv matrix", "",
             f"{len(doc['cells'])} cells, {jobs['total']} jobs: " + ", ".join(
                 f"{jobs[k]} {k}" for k in ("passed", "failed", "error", "skipped", "blocked", "cancelled") if jobs[k]),
             f"executor {cond.get('executor')} ({cond.get('workers')} workers x {cond.get('threads_per_job')} "
             f"threads), wall {cond.get('wall_s')} s, load average at start {cond.get('load_avg_start')}", ""]
    for device, (models, targets, cells) in grid(doc).items():
        lines += [f"## device: {device}", "", "| model | " + " | ".join(targets) + " |",
                  "|---|" + "---|" * len(targets)]
        for m in models:
            lines.append(f"| {m} | " + " | ".join(cell_text(cells[(m, t)]) if (m, t) in cells else "-"
                                                  for t in targets) + " |")
        lines.append("")
    errors = [c for c in doc["cells"] if c.get("error") and c["status"] in ("failed", "error", "skipped")]
    if errors:
        lines += ["## not passed", ""]
        for c in errors:
            e = c["error"]
            what = str(e.get("what", "")).splitlines()[0][:200]
            lines.append(f"- {c['model']} / {c['target']} / {c['device']}: {e.get('step')} {c['status']}: {what}")
        lines.append("")
    return "\n".join(lines)
