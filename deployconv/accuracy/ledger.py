"""The ledger's typed results and the per-stage tally they are computed from (pure numpy + stats).

A stage's tally keeps three small per-image arrays (top-1 right, top-5 right, top-1 class): 6 bytes an image,
so 50,000 images cost 300 kB a stage while the images themselves are streamed and dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from deployconv.accuracy.stats import interval, mcnemar

CONFIDENCE = 0.95
ALPHA = 0.05


class Tally:
    """Accumulates one stage's predictions batch by batch."""

    def __init__(self) -> None:
        self._top1: list[np.ndarray] = []
        self._top5: list[np.ndarray] = []
        self._pred: list[np.ndarray] = []
        self.seconds = 0.0

    def add(self, logits: np.ndarray, labels: np.ndarray) -> None:
        logits = np.asarray(logits)
        if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
            raise ValueError(f"expected logits (N, classes) for {labels.shape[0]} images, got {logits.shape}")
        k = min(5, logits.shape[1])
        top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
        pred = np.argmax(logits, axis=1)
        self._pred.append(pred.astype(np.int32))
        self._top1.append(pred == labels)
        self._top5.append((top == labels[:, None]).any(axis=1))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0, dtype)

        return cat(self._top1, bool), cat(self._top5, bool), cat(self._pred, np.int32)


@dataclass
class Metric:
    """A proportion with its interval, in percent."""

    value: float
    low: float
    high: float
    correct: int
    n: int


@dataclass
class Comparison:
    """This stage against another on the same images: the change in points, McNemar's exact p on the
    discordant images, and the share of images with the same top-1 class."""

    against: str
    top1_delta_pts: float
    top5_delta_pts: float
    lost: int  # right in `against`, wrong here (top-1)
    gained: int  # wrong in `against`, right here (top-1)
    p_value: float
    significant: bool
    top5_p_value: float
    top5_significant: bool
    agreement_top1: float  # percent


@dataclass
class StageRow:
    name: str
    label: str  # what ran, e.g. "ONNX Runtime CPU, fp16 emulated"
    emulated: bool
    top1: Metric
    top5: Metric
    vs_previous: Comparison | None
    vs_fp32: Comparison | None
    seconds: float
    notes: list[str] = field(default_factory=list)


@dataclass
class Skipped:
    name: str
    reason: str


@dataclass
class Ledger:
    data: dict[str, Any]
    interval: str
    confidence: float
    alpha: float
    reference: str | None  # the fp32 stage every row is compared with
    stages: list[StageRow]
    skipped: list[Skipped]
    images: int
    skipped_images: int
    skipped_files: list[str]
    seconds: float
    images_per_s: float
    decode_workers: int
    batch: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def stage(self, name: str) -> StageRow:
        return next(s for s in self.stages if s.name == name)


def _metric(hits: np.ndarray, method: str, confidence: float) -> Metric:
    k, n = int(hits.sum()), int(hits.size)
    lo, hi = interval(k, n, method, confidence)
    return Metric(100.0 * k / n if n else float("nan"), 100.0 * lo, 100.0 * hi, k, n)


def compare(name: str, mine: tuple[np.ndarray, ...], theirs: tuple[np.ndarray, ...], alpha: float) -> Comparison:
    t1, t5, pred = mine
    r1, r5, rpred = theirs
    m1, m5 = mcnemar(r1, t1), mcnemar(r5, t5)
    n = max(1, t1.size)
    return Comparison(name, 100.0 * (t1.sum() - r1.sum()) / n, 100.0 * (t5.sum() - r5.sum()) / n,
                      m1.b, m1.c, m1.p_value, m1.significant(alpha), m5.p_value, m5.significant(alpha),
                      100.0 * float((pred == rpred).mean()) if pred.size else float("nan"))


def build_rows(tallies: dict[str, Tally], labels: dict[str, str], emulated: dict[str, bool],
               reference: str | None, method: str = "wilson", confidence: float = CONFIDENCE,
               alpha: float = ALPHA, notes: dict[str, list[str]] | None = None) -> list[StageRow]:
    """One row per stage in order: metric + interval, and the paired comparisons."""
    rows: list[StageRow] = []
    arrays = {k: t.arrays() for k, t in tallies.items()}
    previous: str | None = None
    for name, tally in tallies.items():
        a = arrays[name]
        rows.append(StageRow(
            name, labels[name], emulated.get(name, False), _metric(a[0], method, confidence),
            _metric(a[1], method, confidence),
            compare(previous, a, arrays[previous], alpha) if previous else None,
            compare(reference, a, arrays[reference], alpha) if reference and reference != name else None,
            round(tally.seconds, 3), list((notes or {}).get(name, []))))
        previous = name
    return rows


@dataclass(frozen=True)
class DropVerdict:
    stage: str
    against: str
    drop_pts: float
    p_value: float
    failed: bool


def gate_drops(ledger: dict[str, Any], max_drop: float, against: str = "fp32") -> list[DropVerdict]:
    """Stages whose top-1 fell more than `max_drop` points below fp32 (or the previous stage) with
    significance. Works on the ledger's JSON form, so `gate` reads a saved report.json."""
    key = "vs_fp32" if against == "fp32" else "vs_previous"
    verdicts = []
    for row in ledger["stages"]:
        c = row.get(key)
        if not c:
            continue
        drop = -c["top1_delta_pts"]
        verdicts.append(DropVerdict(row["name"], c["against"], drop, c["p_value"],
                                    drop > max_drop and bool(c["significant"])))
    return verdicts
