"""The page's figures, drawn with matplotlib and embedded as base64 SVG data URIs (no files, no network).

matplotlib is an optional extra (`pip install 'deployconv[report]'`) imported only here and only when a plot is
drawn, so the torch-free device path never needs it. Figures use `matplotlib.figure.Figure` directly (no
pyplot: no global state, no GUI backend), a fixed SVG hash salt and no date, so the same report gives the same
bytes. Text is drawn as paths: the SVG needs no font.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BAR = "#4c72b0"
P50 = "#2a9d4b"
P99 = "#d1495b"
BUDGET = "#d1495b"
RUG_MAX = 300  # more samples than this: the histogram alone shows the distribution
STRIP_MAX = 600  # samples drawn per runtime in the overview (evenly spaced order statistics beyond)
_RC = {"svg.hashsalt": "deployconv-report", "svg.fonttype": "path", "font.size": 9}
_META = {"Date": None, "Creator": None}


def missing_reason() -> str | None:
    """Why plots cannot be drawn here, or None when they can."""
    try:
        import matplotlib.figure  # noqa: F401  (an installed but broken matplotlib counts as missing)
    except ImportError as e:
        return f"matplotlib is not installed (pip install 'deployconv[report]'): {e}"
    return None


def _to_data_uri(fig: Any) -> str:
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", metadata=_META, bbox_inches="tight")
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width: float, height: float) -> Any:
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):
        return Figure(figsize=(width, height))


def spans_decades(x: np.ndarray, ratio: float = 20.0) -> bool:
    """Whether samples spread over more than `ratio` x (then the histogram uses log-spaced bins)."""
    return bool(x.size > 1 and x.min() > 0 and x.max() / x.min() > ratio)


def latency_histogram(samples_ms: Sequence[float], p50_ms: float, p99_ms: float, title: str) -> str:
    """Histogram of one runtime's latency samples with p50 and p99 marked (and each sample as a rug tick
    when there are few)."""
    import matplotlib

    x = np.asarray(samples_ms, dtype=np.float64)
    with matplotlib.rc_context(_RC):
        fig = _figure(7.4, 2.6)
        ax = fig.subplots()
        edges = np.histogram_bin_edges(x, bins="auto")
        if len(edges) > 61:
            edges = np.histogram_bin_edges(x, bins=60)
        log = spans_decades(x)
        if log:  # a heavy tail (a descheduled run 100x slower) would squash the bulk into one linear bin
            edges = np.geomspace(x.min(), x.max(), min(len(edges), 60) + 1)
            ax.set_xscale("log")
        counts, _, _ = ax.hist(x, bins=edges, color=BAR, alpha=0.85, label=f"{x.size} samples")
        if x.size <= RUG_MAX:  # each sample as a tick under the bars
            top = float(np.max(counts))
            ax.plot(x, np.full_like(x, -0.06 * top), "|", color="#333333", markersize=8, label="each sample")
            ax.set_ylim(-0.12 * top, top * 1.08)
        ax.axvline(p50_ms, color=P50, linewidth=2, label=f"p50 {p50_ms:.4g} ms")
        ax.axvline(p99_ms, color=P99, linewidth=2, linestyle="--", label=f"p99 {p99_ms:.4g} ms")
        ax.set_xlabel("latency per run (ms" + (", log scale)" if log else ")"))
        ax.set_ylabel("runs")
        ax.set_title(title, loc="left")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.grid(axis="y", alpha=0.3)
    return _to_data_uri(fig)


@dataclass(frozen=True)
class StripRow:
    label: str
    samples_ms: Sequence[float]
    p50_ms: float
    p99_ms: float


def _thin(x: np.ndarray, limit: int) -> np.ndarray:
    """At most `limit` points that keep the shape: evenly spaced order statistics (min and max included)."""
    if x.size <= limit:
        return x
    return np.sort(x)[np.linspace(0, x.size - 1, limit).round().astype(int)]


def latency_overview(rows: Sequence[StripRow]) -> str:
    """All runtimes on one log-scaled axis: every sample as a dot, p50 and p99 as ticks."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = _figure(7.4, 0.55 * len(rows) + 1.1)
        ax = fig.subplots()
        rng = np.random.default_rng(0)  # vertical jitter only; the x values are the samples
        for i, r in enumerate(rows):
            x = _thin(np.asarray(r.samples_ms, dtype=np.float64), STRIP_MAX)
            ax.scatter(x, i + rng.uniform(-0.18, 0.18, x.size), s=6, color=BAR, alpha=0.5, linewidths=0)
            ax.plot([r.p50_ms] * 2, [i - 0.35, i + 0.35], color=P50, linewidth=2.5,
                    label="p50" if i == 0 else None)
            ax.plot([r.p99_ms] * 2, [i - 0.35, i + 0.35], color=P99, linewidth=2, linestyle="--",
                    label="p99" if i == 0 else None)
        ax.set_yticks(range(len(rows)), [r.label for r in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        if all(min(r.samples_ms) > 0 for r in rows):
            ax.set_xscale("log")
        ax.set_xlabel("latency per run (ms)")
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _to_data_uri(fig)


@dataclass(frozen=True)
class ErrorBar:
    stage: str
    vs_previous: float | None
    vs_reference: float | None


def parity_errors(bars: Sequence[ErrorBar], budget: float) -> str:
    """max |a-b| / scale per stage (vs the previous stage, and vs the fp64 reference) on a log axis, with the
    budget as a line. Exact zeros (identical outputs) sit at the floor, marked '0'."""
    import matplotlib

    values = [v for b in bars for v in (b.vs_previous, b.vs_reference) if v is not None and math.isfinite(v)]
    positive = [v for v in values if v > 0]
    floor = min([*positive, budget]) / 30
    with matplotlib.rc_context(_RC):
        fig = _figure(7.4, 0.45 * len(bars) + 1.2)
        ax = fig.subplots()
        y = np.arange(len(bars))
        for offset, attr, color, label in ((-0.19, "vs_previous", BAR, "vs previous stage (gated)"),
                                           (0.19, "vs_reference", "#999999", "vs fp64 reference")):
            first = True
            for i, b in enumerate(bars):
                v = getattr(b, attr)
                if v is None:
                    continue
                shown = v if math.isfinite(v) and v > 0 else floor
                ax.barh(i + offset, shown - floor, left=floor, height=0.36, color=color,
                        label=label if first else None)
                first = False
                if v == 0:
                    ax.text(floor * 1.15, i + offset, "0", va="center", fontsize=7)
                elif not math.isfinite(v):
                    ax.text(floor * 1.15, i + offset, "NaN/inf", va="center", fontsize=7, color=BUDGET)
        ax.axvline(budget, color=BUDGET, linestyle="--", label=f"budget {budget:.0e}")
        ax.set_xscale("log")
        ax.set_xlim(floor, max([*values, budget]) * 5)
        ax.set_yticks(y, [b.stage for b in bars])
        ax.set_ylim(len(bars) - 0.5, -0.5)
        ax.set_xlabel("max |difference| / max |reference|")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _to_data_uri(fig)
