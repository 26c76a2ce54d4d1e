"""The parity chain on the page: every stage, every metric, the budget, pass/fail colouring, the first
diverging layer, and the conditions the comparison ran under."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deployconv.core.artifacts import ExportReport, Manifest
from deployconv.report import conditions, numbers
from deployconv.report.markup import esc, finite, kv_table, notes, num_td, para, pointer, section, table, td
from deployconv.report.source import REPORT


@dataclass(frozen=True)
class Metric:
    key: str
    header: str
    fmt: Callable[[float], str]


# The metrics of one comparison (deployconv.validate.metrics.CompareResult), in reading order.
VS_PREVIOUS = (
    Metric("max_abs", "max abs", numbers.sci),
    Metric("p99_abs", "p99 abs", numbers.sci),
    Metric("mean_abs", "mean abs", numbers.sci),
    Metric("ref_scale", "scale (max |ref|)", numbers.sci),
    Metric("max_abs_rel_scale", "max abs / scale", numbers.sci),
    Metric("cosine", "cosine", numbers.fixed(8)),
    Metric("cosine_min", "cosine (worst row)", numbers.fixed(8)),
    Metric("top1_agreement", "top-1", numbers.fixed(3)),
    Metric("top5_agreement", "top-5", numbers.fixed(3)),
    Metric("top5_overlap", "top-5 overlap", numbers.fixed(3)),
    Metric("nonfinite_out", "NaN/Inf", numbers.integer),
)
VS_REFERENCE = (
    Metric("max_abs_rel_scale", "max abs / scale", numbers.sci),
    Metric("cosine", "cosine", numbers.fixed(8)),
)


def metric_status(key: str, value: Any, budget: dict[str, Any]) -> str | None:
    """'pass' / 'fail' for a metric the budget gates (as deployconv.validate.parity.budget_failures does);
    None for a metric it does not gate."""
    if key == "nonfinite_out":
        return "fail" if value else "pass"
    limits = {"max_abs_rel_scale": ("max", budget.get("max_abs_rel_scale")),
              "cosine": ("min", budget.get("min_cosine")),
              "top1_agreement": ("min", budget.get("min_top1_agreement"))}
    kind, limit = limits.get(key, (None, None))
    if limit is None or value is None:
        return None
    if not finite(value):
        return "fail"
    ok = value <= limit if kind == "max" else value >= limit
    return "pass" if ok else "fail"


def budget_line(budget: dict[str, Any]) -> str:
    top1 = budget.get("min_top1_agreement")
    return (f"budget between consecutive stages: max abs / scale <= {budget.get('max_abs_rel_scale')}, "
            f"cosine >= {budget.get('min_cosine')}, "
            + (f"top-1 agreement >= {top1}" if top1 is not None else "top-1 agreement reported, not gated")
            + "; outputs must be finite")


def _stage_row(i: int, s: dict[str, Any], budget: dict[str, Any], manifest: Manifest,
               precision: str | None) -> list[str]:
    base = ("parity", "stages", i)
    prev, ref = s.get("vs_previous") or {}, s.get("vs_reference") or {}
    verdict = "ok" if s["passed"] else "FAIL: " + "; ".join(s.get("failures") or [])
    row = [td(s["stage"], class_="name"), td(verdict, class_="pass" if s["passed"] else "fail"),
           td(conditions.stage_runtime(s["stage"], manifest)),
           td(conditions.stage_precision(s["stage"], precision)), td(s.get("compared_with") or "(reference)")]
    shape = prev.get("shape")
    row.append(td("x".join(map(str, shape)) if shape else "-"))
    own = s.get("budget")  # a precision stage is held to its own budget
    b, bpath = (own, (*base, "budget")) if own else (budget, ("parity", "budget"))
    for key, fmt in (("max_abs_rel_scale", numbers.sci), ("min_cosine", numbers.general)):
        row.append(num_td(b.get(key), pointer(REPORT, *bpath, key), fmt) if prev else td("-", class_="num na"))
    for m in VS_PREVIOUS:
        v = prev.get(m.key)
        row.append(num_td(v, pointer(REPORT, *base, "vs_previous", m.key), m.fmt,
                          metric_status(m.key, v, b) if prev else None))
    for m in VS_REFERENCE:
        row.append(num_td(ref.get(m.key), pointer(REPORT, *base, "vs_reference", m.key), m.fmt))
    return row


def divergence_block(div: Any) -> str:
    """The first layer out of budget, when the chain broke inside the ONNX graph."""
    if not div:
        return ""
    if not isinstance(div, dict) or "module" not in div:
        return para(f"first diverging layer: {div}", class_="fail")
    metrics = div.get("metrics") or {}
    rows = [(label, td(div.get(key))) for label, key in
            (("module", "module"), ("module type", "module_type"), ("ONNX tensor", "onnx_tensor"),
             ("ONNX op", "onnx_op"))]
    rows += [(f"{m.header} (layer)", num_td(metrics.get(m.key), pointer(REPORT, "parity", "first_divergence",
                                                                         "metrics", m.key), m.fmt))
             for m in VS_PREVIOUS if m.key in metrics]
    rows.append(("layers compared before it", num_td(div.get("layers_compared"),
                                                     pointer(REPORT, "parity", "first_divergence",
                                                             "layers_compared"), numbers.integer)))
    rows.append(("why", td("; ".join(div.get("failures") or []), class_="fail")))
    return '<h3 class="fail">first diverging layer</h3>' + kv_table(rows)


def parity_section(report: ExportReport, manifest: Manifest, host: str, figure_html: str) -> str:
    parity, target = report.parity, report.target
    budget = parity["budget"]
    precision = target.get("precision") or manifest.precision
    verdict = ("passed" if parity["passed"]
               else f"FAILED at {parity.get('broke_at') or next(s['stage'] for s in parity['stages'] if not s['passed'])}")
    cond = kv_table([
        ("inputs", td("; ".join(conditions.parity_inputs(parity, manifest)))),
        ("device", td(f"CPU of the export host: {host}")),
        ("runtimes", td("per stage, in the table (read from the stage name; versions from manifest.json)")),
        ("precision", td(f"per stage, in the table; target {target.get('name')} is {precision}")),
        ("threads", td("not recorded for parity (ONNX Runtime and PyTorch defaults)")),
        ("budget", td(budget_line(budget) + ("; stages with their own budget show it in the table"
                                              if any(s.get("budget") for s in parity["stages"]) else ""))),
    ])
    headers = ["stage", "verdict", "runtime", "precision", "compared with", "output shape", "max abs / scale <=",
               "cosine >=",
               *(m.header for m in VS_PREVIOUS), *(m.header for m in VS_REFERENCE)]
    groups = [("", 6), ("budget", 2), ("vs previous stage (gated by the budget)", len(VS_PREVIOUS)),
              ("vs fp64 reference (not gated)", len(VS_REFERENCE))]
    rows = [_stage_row(i, s, budget, manifest, precision) for i, s in enumerate(parity["stages"])]
    body = (f'<p class="verdict {"pass" if parity["passed"] else "fail"}">parity {esc(verdict)}</p>' + cond
            + table(headers, rows, class_="parity", header_groups=groups)
            + divergence_block(parity.get("first_divergence")) + figure_html)
    extra = []
    if not parity["passed"] and not parity.get("first_divergence"):
        extra.append("no layer attribution: the chain broke outside the ONNX graph, or bisection was not run")
    return section("parity", "Parity chain", body + notes(extra))
