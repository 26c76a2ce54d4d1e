"""The accuracy ledger in the HTML report: a table (metric with its interval, change vs the previous stage
and vs fp32 with McNemar's p) and a plot of top-1 per stage with its interval. Also a standalone page for
`deployconv eval --out`, which has no export directory around it."""

from __future__ import annotations

from typing import Any

from deployconv.accuracy.markdown import HEADERS, rows
from deployconv.report import plots
from deployconv.report.markup import esc, figure, notes, section, table, td
from deployconv.report.style import CSP, CSS


def ledger_plot(ledger: dict[str, Any]) -> str:
    """top-1 (and top-5) per stage with interval whiskers, as an SVG data URI; '' without matplotlib."""
    if plots.missing_reason() or not ledger["stages"]:
        return ""
    import matplotlib

    stages = ledger["stages"]
    with matplotlib.rc_context(plots._RC):
        fig = plots._figure(7.0, 0.42 * len(stages) + 1.3)
        ax = fig.subplots()
        for offset, key, colour in ((-0.12, "top1", plots.BAR), (0.12, "top5", "#999999")):
            ys = [i + offset for i in range(len(stages))]
            vals = [s[key]["value"] for s in stages]
            err = [[v - s[key]["low"] for v, s in zip(vals, stages)], [s[key]["high"] - v for v, s in zip(vals, stages)]]
            ax.errorbar(vals, ys, xerr=err, fmt="o", color=colour, capsize=3, label=key.replace("top", "top-"))
        ax.set_yticks(range(len(stages)), [s["name"] for s in stages])
        ax.set_ylim(len(stages) - 0.5, -0.5)
        ax.set_xlabel(f"accuracy % ({round(100 * ledger['confidence'])}% {ledger['interval']} interval)")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return plots._to_data_uri(fig)


def accuracy_section(ledger: dict[str, Any] | None) -> str:
    if not ledger:
        return ""
    body_rows = []
    for s, r in zip(ledger["stages"], rows(ledger)):
        cls = "fail" if (s["vs_fp32"] or {}).get("significant") and s["vs_fp32"]["top1_delta_pts"] < 0 else None
        body_rows.append([td(v, cls if i == 5 else ("name" if i == 0 else None)) for i, v in enumerate(r)])
    data = ledger["data"]
    intro = (f"<p>{ledger['images']:,} images of {esc(data['root'])} ({data['classes']} classes; labels: "
             f"{esc(data['labels']['source'])}), {ledger['skipped_images']} unreadable skipped. Intervals: "
             f"{esc(ledger['interval'])}; changes: exact McNemar test on the same images, alpha "
             f"{ledger['alpha']}. {ledger['images_per_s']:.1f} images/s over all stages.</p>")
    uri = ledger_plot(ledger)
    fig = figure(uri, "accuracy per stage", "top-1 and top-5 per stage with their intervals") if uri else ""
    extra = [f"stage {s['name']} not run: {s['reason']}" for s in ledger["skipped"]] + list(ledger.get("notes", []))
    extra += [f"{s['name']}: {n}" for s in ledger["stages"] for n in s.get("notes", [])]
    return section("accuracy", "Accuracy ledger",
                   intro + table(HEADERS, body_rows) + fig + (notes(extra) if extra else ""))


def accuracy_page(ledger: dict[str, Any], title: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><h1>{esc(title)}</h1>"
            f"{accuracy_section(ledger)}</body></html>\n")
