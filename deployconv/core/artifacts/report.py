"""report.json as a type: `ExportReport`, the export's full account (reparam, graph checks, parity, latency, the
engine step). Its top level is typed and read strictly; the sections are tables their own readers interpret.

report.json carries `"format": "deployconv.report/1"` from this version on; a report without it was written by
this same schema before the field existed and reads as /1. A newer major is refused ("upgrade deployconv")."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from deployconv.core.artifacts import version
from deployconv.core.artifacts.checks import DICT, STR, Keys, list_of, optional, problems
from deployconv.core.artifacts.engine import EngineEntry
from deployconv.core.errors import BadInputError

REPORT_FORMAT = str(version.REPORT)

REPORT_KEYS: Keys = {
    "format": (lambda v: v == REPORT_FORMAT, False, f"the string {REPORT_FORMAT!r}"),
    "model": (STR, True, "a string"),
    "target": (DICT, True, "a target table"),
    "notes": (list_of(STR), False, "a list of strings"),
    "reparam": (optional(DICT), False, "a table or null"),
    "export": (optional(DICT), False, "a table or null"),
    "simplify": (optional(DICT), False, "a table or null"),
    "graph": (optional(DICT), False, "a table or null"),
    "ort_twin": (optional(DICT), False, "a table or null"),
    "precision": (optional(DICT), False, "a table or null"),
    "dla": (optional(DICT), False, "a table or null"),
    "parity": (DICT, True, "a table"),
    "latency": (optional(DICT), False, "a table or null"),
    "timings_s": (optional(DICT), False, "a table or null"),
    "engine": (optional(DICT), False, "a table or null"),
    "accuracy": (optional(DICT), False, "a table or null"),  # an accuracy ledger, where one was recorded
}


@dataclass(frozen=True)
class ExportReport:
    model: str
    target: dict[str, Any]
    parity: dict[str, Any]
    notes: tuple[str, ...] = ()
    reparam: dict[str, Any] | None = None
    export: dict[str, Any] | None = None
    simplify: dict[str, Any] | None = None
    graph: dict[str, Any] | None = None
    ort_twin: dict[str, Any] | None = None
    precision: dict[str, Any] | None = None
    dla: dict[str, Any] | None = None
    latency: dict[str, Any] | None = None
    timings_s: dict[str, Any] = field(default_factory=dict)
    engine: EngineEntry | None = None
    accuracy: dict[str, Any] | None = None
    format: str = REPORT_FORMAT

    @classmethod
    def from_dict(cls, data: Any, where: str = "report.json") -> ExportReport:
        if not isinstance(data, dict):
            raise BadInputError(f"{where} is not an export report (a JSON object)", fix="re-export")
        version.require_readable(data.get("format"), version.REPORT, where)
        found = problems(data, REPORT_KEYS)
        if found:
            raise BadInputError(f"{where} does not match the report schema ({len(found)} problem(s))",
                                details=found[:20], why="it was written by another deployconv version, or edited",
                                fix="re-export with this deployconv version (`deployconv export ... --force`)")
        engine = data.get("engine")
        return cls(**{**data, "notes": tuple(data.get("notes", ())), "timings_s": data.get("timings_s") or {},
                      "engine": None if engine is None else EngineEntry.from_dict(engine, f"{where}: engine")})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": self.format}
        for f in fields(self):
            if f.name != "format":
                out[f.name] = getattr(self, f.name)
        out["notes"] = list(self.notes)
        if self.engine is None:
            del out["engine"]  # an onnxruntime target has no engine step
        else:
            out["engine"] = self.engine.to_dict()
        if self.accuracy is None:
            del out["accuracy"]
        return out
