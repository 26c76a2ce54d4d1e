"""The ledger as markdown (a CI job's step summary) and as table rows (the CLI's rich table): one place
that decides how a stage's numbers read."""

from __future__ import annotations

from typing import Any


def _delta(c: dict[str, Any] | None) -> str:
    if not c:
        return "-"
    sig = "significant" if c["significant"] else "noise"
    return f"{c['top1_delta_pts']:+.2f} pts (p={c['p_value']:.3g}, {sig})"


def rows(ledger: dict[str, Any]) -> list[list[str]]:
    """stage, runtime, top-1 [CI], top-5 [CI], vs previous, vs fp32, agreement with previous."""
    out = []
    for s in ledger["stages"]:
        t1, t5 = s["top1"], s["top5"]
        prev = s["vs_previous"]
        out.append([s["name"], s["label"], f"{t1['value']:.2f} [{t1['low']:.2f}, {t1['high']:.2f}]",
                    f"{t5['value']:.2f} [{t5['low']:.2f}, {t5['high']:.2f}]", _delta(prev), _delta(s["vs_fp32"]),
                    f"{prev['agreement_top1']:.2f}%" if prev else "-"])
    return out


HEADERS = ["stage", "runs on", "top-1 % [95% CI]", "top-5 % [95% CI]", "vs previous", "vs fp32",
           "top-1 agreement with previous"]


def to_markdown(ledger: dict[str, Any], title: str = "Accuracy ledger") -> str:
    conf = round(100 * ledger["confidence"])
    head = [h.replace("95%", f"{conf}%") for h in HEADERS]
    lines = [f"### {title}", "",
             f"{ledger['images']:,} images of {ledger['data']['root']} ({ledger['data']['classes']} classes, labels: "
             f"{ledger['data']['labels']['source']}); {ledger['skipped_images']} unreadable skipped. "
             f"Intervals: {ledger['interval']}; paired test: exact McNemar, alpha {ledger['alpha']}.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(ledger)]
    for s in ledger["skipped"]:
        lines.append(f"\n- stage **{s['name']}** not run: {s['reason']}")
    for n in ledger.get("notes", []):
        lines.append(f"- note: {n}")
    lines.append(f"\n{ledger['images_per_s']:.1f} images/s over all stages ({ledger['decode_workers']} decode "
                 f"workers, batch {ledger['batch']}).")
    return "\n".join(lines) + "\n"
