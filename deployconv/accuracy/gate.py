"""`deployconv gate --accuracy report.json --max-drop PTS`: fail (exit 1) when a stage of a saved ledger lost
more than PTS top-1 points vs fp32 *and* McNemar says it is not noise. Markdown on stdout (CI), or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from deployconv.accuracy.ledger import gate_drops
from deployconv.core.console import print_json
from deployconv.core.errors import BadInputError, CheckFailedError
from deployconv.core.fsio import refuse_overwrite, write_text_atomic


def load_ledger(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BadInputError(f"cannot read accuracy report {path}", why=str(e),
                            fix="pass the report.json written by `deployconv eval`") from e
    ledger = data.get("accuracy", data) if isinstance(data, dict) else None
    if not isinstance(ledger, dict) or "stages" not in ledger:
        raise BadInputError(f"{path} holds no accuracy ledger", fix="run `deployconv eval ... --out DIR` first")
    return ledger


def gate_ledger(path: Path, max_drop: float, *, json_out: bool = False, markdown: Path | None = None,
                force: bool = False) -> None:
    import typer

    if max_drop < 0:
        raise BadInputError(f"--max-drop must be >= 0, got {max_drop}")
    if markdown is not None:
        refuse_overwrite(markdown, force)
    ledger = load_ledger(path)
    verdicts = gate_drops(ledger, max_drop)
    failed = [v for v in verdicts if v.failed]
    lines = [f"### accuracy gate: max drop {max_drop} top-1 points vs fp32 (significant at alpha {ledger['alpha']})",
             "", "| stage | vs | drop (pts) | McNemar p | verdict |", "|---|---|---|---|---|"]
    lines += [f"| {v.stage} | {v.against} | {v.drop_pts:+.2f} | {v.p_value:.3g} | "
              f"{'FAIL' if v.failed else 'pass'} |" for v in verdicts]
    text = "\n".join(lines) + "\n"
    if markdown is not None:
        write_text_atomic(markdown, text)
    if json_out:
        print_json({"max_drop": max_drop, "passed": not failed, "stages": [asdict(v) for v in verdicts]})
    else:
        typer.echo(text, nl=False)
    if failed:
        raise CheckFailedError(f"{len(failed)} stage(s) lost more than {max_drop} top-1 points with significance",
                               details=[f"{v.stage}: -{v.drop_pts:.2f} pts (p={v.p_value:.3g})" for v in failed])
