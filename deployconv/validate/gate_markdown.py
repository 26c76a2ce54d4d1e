"""A gate result as GitHub-flavoured markdown: what a CI log or a job's step summary shows. Pure text."""

from __future__ import annotations

from deployconv.validate.gate import GateResult, RunSummary

HEADLINES = {"pass": "PASS", "regression": "REGRESSION", "noisy": "TOO NOISY TO DECIDE",
             "incomparable": "INCOMPARABLE RUNS"}


def pct(ratio: float) -> str:
    """A ratio as a signed change: 1.123 -> '+12.3%'."""
    return f"{(ratio - 1) * 100:+.1f}%"


def ms(v: float) -> str:
    return f"{v:.4g}"


def _runs_table(b: RunSummary, c: RunSummary, metric: str) -> list[str]:
    def load(s: RunSummary) -> str:
        return "-" if s.load_avg is None else " / ".join(f"{x:.2f}" for x in s.load_avg)

    def sha(v: str | None) -> str:
        return f"`{v[:12]}`" if v else "-"

    def gated(name: str) -> str:  # the row the gate decided on, in bold
        return f"**{name} (ms)**" if name == metric else f"{name} (ms)"

    rows = [(gated("median"), ms(b.median_ms), ms(c.median_ms)), (gated("p99"), ms(b.p99_ms), ms(c.p99_ms)),
            ("samples (blocks, resampling units)", f"{b.count} ({b.blocks}, {b.units})",
             f"{c.count} ({c.blocks}, {c.units})"),
            ("load average at start (1/5/15 min)", load(b), load(c)),
            ("started", b.started_at or "-", c.started_at or "-"),
            ("graph sha256", sha(b.graph_sha256), sha(c.graph_sha256))]
    if b.engine_sha256 or c.engine_sha256:
        rows.append(("engine sha256", sha(b.engine_sha256), sha(c.engine_sha256)))
    if b.file or c.file:
        rows.append(("file", f"`{b.file}`" if b.file else "-", f"`{c.file}`" if c.file else "-"))
    return ["| | baseline | current |", "|---|---:|---:|"] + [f"| {name} | {x} | {y} |" for name, x, y in rows]


def to_markdown(r: GateResult) -> str:
    """The report: headline, the change with its interval against the limit, both runs, conditions, method."""
    lines = [f"### deployconv latency gate: {HEADLINES[r.verdict]}", ""]
    if r.verdict == "incomparable":
        lines += ["The runs cannot be compared: their fingerprints differ in", ""]
        lines += [f"- `{d}`" for d in r.differences]
        lines += ["", "Bench both on the same kind of machine with the same settings, refresh the baseline "
                      "deliberately (`deployconv gate --update-baseline`), or accept a difference on purpose "
                      "with `--allow-diff FIELD`."]
    else:
        assert r.ratio is not None and r.ci_low is not None and r.ci_high is not None
        assert r.baseline is not None and r.current is not None
        lines += [f"**{r.metric} latency {ms(r.baseline.metric_ms)} ms -> {ms(r.current.metric_ms)} ms: "
                  f"{pct(r.ratio)}** ({r.confidence:.0%} CI {pct(r.ci_low)} to {pct(r.ci_high)}); "
                  f"limit {pct(r.limit_ratio)}, exit {r.exit_code}.", "",
                  f"Decision: {r.reason}.", ""]
        lines += _runs_table(r.baseline, r.current, r.metric)
    extra = [*(f"changed (measured): {c}" for c in r.changed), *(f"allowed to differ: {a}" for a in r.allowed),
             *r.notes]
    if extra:
        lines += ["", *(f"- {e}" for e in extra)]
    c = r.conditions
    if c:
        inputs = ", ".join(f"{n}: {d['dtype']}[{', '.join(map(str, d['shape']))}]" for n, d in c["inputs"].items())
        device = f", {c['device']}" if c.get("device") else ""
        lines += ["", f"Conditions: {c['cpu_model']} ({c['cpu_affinity']} of {c['cpu_logical_cores']} CPUs usable"
                      f"{device}); {c['runtime']} {c['runtime_version']} ({', '.join(c['providers'])}), "
                      f"threads {c['threads']}; batch {c['batch']}; inputs {inputs}."]
    if r.method:
        m = r.method
        lines += ["", f"Method: {m['statistic']}; {m['interval']} ({m['resamples']} resamples, seed {m['seed']}; "
                      f"units: {m['resampling_unit']}, {m['units'][0]} + {m['units'][1]} here); between-run noise "
                      f"{r.run_noise:.1%} per run; too noisy when the interval straddles the limit and is wider "
                      f"than {r.noise_threshold * 100:.1f} points."]
    return "\n".join(lines) + "\n"
