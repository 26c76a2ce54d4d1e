"""The latency gate's result (DIR/gate.json, `deployconv gate ... --json`) on the page.

Read defensively: the fields the page knows (verdict, metric, ratio, confidence interval, limit) are picked
from the names a gate may use (deployconv.validate.gate.GateResult writes verdict/ratio/ci_low/ci_high/
limit_ratio), the baseline and current run summaries become one table, the shared conditions their own, and
every other field is listed as it is, so nothing the gate said is dropped."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deployconv.report import conditions, numbers
from deployconv.report.markup import (
    badge,
    esc,
    is_number,
    kv_table,
    notes,
    num_td,
    para,
    pointer,
    section,
    table,
    td,
)
from deployconv.report.source import GATE

DECISION_KEYS = ("verdict", "decision", "result", "status")
PASSED_KEYS = ("passed", "ok", "pass")
NUMBER_KEYS = {  # page field -> names a gate may use for it, first match wins
    "ratio": ("ratio", "median_ratio", "observed_ratio"),
    "ci_low": ("ci_low", "ratio_ci_low", "lower"),
    "ci_high": ("ci_high", "ratio_ci_high", "upper"),
    "limit": ("limit_ratio", "limit", "threshold", "max_ratio", "tolerance"),
}
PASS_WORDS = {"pass", "passed", "ok", "accept", "accepted", "no-regression", "no_regression"}
FAIL_WORDS = {"fail", "failed", "reject", "rejected", "regression", "regressed"}
SIDES = ("baseline", "current", "candidate")
SIDE_NUMBERS = (("metric_ms", "gated metric ms", numbers.ms), ("median_ms", "p50 ms", numbers.ms),
                ("p99_ms", "p99 ms", numbers.ms), ("count", "samples", numbers.integer),
                ("blocks", "blocks", numbers.integer), ("units", "resampling units", numbers.integer))
LABELS = {"ratio": "ratio (current / baseline)", "ci_low": "confidence interval, low",
          "ci_high": "confidence interval, high", "limit": "limit (ratio)"}


@dataclass
class GateView:
    """What the page shows of a gate result; `paths` maps each shown number to its JSON path in gate.json."""

    decision: str | None = None
    passed: bool | None = None
    metric: str | None = None
    numbers: dict[str, float] = field(default_factory=dict)
    paths: dict[str, tuple[str | int, ...]] = field(default_factory=dict)
    other: list[tuple[str, Any]] = field(default_factory=list)


def _first(d: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in d), None)


def read_gate(gate: dict[str, Any]) -> GateView:
    """Normalise a gate result. Pure."""
    v = GateView()
    used: set[str] = set()
    k = _first(gate, DECISION_KEYS)
    if k is not None:
        v.decision = str(gate[k])
        used.add(k)
    k = _first(gate, PASSED_KEYS)
    if k is not None and isinstance(gate[k], bool):
        v.passed = gate[k]
        used.add(k)
    elif v.decision is not None:
        word = v.decision.strip().lower()
        v.passed = True if word in PASS_WORDS else False if word in FAIL_WORDS else None
    k = _first(gate, ("metric", "statistic"))
    if k is not None:
        v.metric = str(gate[k])
        used.add(k)
    for name, keys in NUMBER_KEYS.items():
        k = next((k for k in keys if is_number(gate.get(k))), None)
        if k is not None:
            v.numbers[name], v.paths[name] = gate[k], (k,)
            used.add(k)
    ci_key = _first(gate, ("ci", "confidence_interval"))
    ci = gate.get(ci_key) if ci_key else None
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(is_number(x) for x in ci):
        for i, name in enumerate(("ci_low", "ci_high")):
            v.numbers.setdefault(name, ci[i])
            v.paths.setdefault(name, (ci_key, i))
        used.add(ci_key)
    v.other = [(key, val) for key, val in gate.items() if key not in used]
    return v


def _value_cell(path: tuple[str | int, ...], value: Any) -> str:
    if is_number(value):
        return num_td(value, pointer(GATE, *path), numbers.general)
    if isinstance(value, dict):
        return td("; ".join(f"{k}: {x}" for k, x in value.items()) or "-")
    if isinstance(value, list):
        return td("; ".join(map(str, value[:20])) + (f"; ... ({len(value)} in all)" if len(value) > 20 else "")
                  or "-")
    return td(value)


def _is_side(value: Any) -> bool:
    """A run as the gate summarised it (RunSummary), or a whole bench result."""
    return isinstance(value, dict) and (isinstance(value.get("stats"), dict) or "median_ms" in value)


def _sides_table(sides: list[tuple[str, dict[str, Any]]]) -> str:
    rows = []
    for key, label, fmt in SIDE_NUMBERS:
        cells = []
        for name, run in sides:
            base = ("stats",) if isinstance(run.get("stats"), dict) else ()
            src = run["stats"] if base else run
            cells.append(num_td(src.get(key), pointer(GATE, name, *base, key), fmt) if key in src
                         else td("-", class_="num na"))
        if any("data-src" in c for c in cells):
            rows.append([f"<th>{esc(label)}</th>", *cells])
    for key in ("load_avg", "started_at", "graph_sha256", "engine_sha256", "file"):
        if any(run.get(key) for _, run in sides):
            rows.append([f"<th>{esc(key)}</th>", *(_value_cell((name, key), run.get(key)) for name, run in sides)])
    return table(["", *(name for name, _ in sides)], rows, class_="sides")


def _conditions_table(shared: dict[str, Any]) -> str:
    rows = [("device", td(conditions.host(shared))),
            ("runtime", td(conditions.run_runtime({"fingerprint": shared}))),
            ("threads", td(conditions.run_threads({"fingerprint": shared}))),
            ("inputs", td(conditions.run_inputs({"fingerprint": shared}))),
            ("batch", td(shared.get("batch")))]
    return kv_table(rows)


def gate_section(gate: dict[str, Any] | None) -> str:
    if gate is None:
        return section("gate", "Latency gate", para(f"no gate result: {GATE} is absent from this directory "
                                                    f"(`deployconv gate ... --json > DIR/{GATE}` adds one)"))
    v = read_gate(gate)
    text = v.decision or ("passed" if v.passed else "failed" if v.passed is False else "decision not recorded")
    body = f'<p class="verdict">gate {badge(v.passed, text)}</p>'
    other = dict(v.other)
    if isinstance(other.get("reason"), str):
        body += para(other.pop("reason"))
    rows = [("metric", td(v.metric or "not recorded"))]
    rows += [(LABELS[n], num_td(v.numbers[n], pointer(GATE, *v.paths[n]), numbers.general))
             for n in ("ratio", "ci_low", "ci_high", "limit") if n in v.numbers]
    sides = [(k, other.pop(k)) for k in SIDES if _is_side(other.get(k))]
    shared = other.pop("conditions", None)
    gate_notes = other.pop("notes", None)
    method = other.pop("method", None)
    rows += [(k, _value_cell((k,), val)) for k, val in other.items()]
    body += kv_table(rows)
    if sides:
        body += "<h3>runs compared</h3>" + _sides_table(sides)
    if isinstance(shared, dict) and shared:
        body += "<h3>conditions both runs share</h3>" + _conditions_table(shared)
    else:
        body += para(f"conditions: not recorded in {GATE}; they are those of the two benchmark results it compared")
    if isinstance(method, dict):
        body += "<h3>method</h3>" + kv_table([(k, _value_cell(("method", k), x)) for k, x in method.items()])
    if isinstance(gate_notes, list):
        body += notes([str(n) for n in gate_notes])
    return section("gate", "Latency gate", body)
