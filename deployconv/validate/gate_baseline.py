"""Reading bench runs for the gate, and writing a baseline: deliberately, never by accident.

The gate itself never writes a baseline. `update_baseline` is the only writer: it refuses to replace an
existing baseline unless forced, checks the run is a complete `bench` result first, and writes atomically
(the old baseline or the complete new one, never half of either).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deployconv.core.errors import BadInputError
from deployconv.core.fsio import write_text_atomic
from deployconv.runtime.timing import BenchResult


def _read_json(path: Path, role: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        fix = ("create one deliberately from a run: `deployconv gate --update-baseline --current RUN.json "
               f"--baseline {path}`" if role == "baseline" else "write one with `deployconv bench MODEL --out RUN.json`")
        raise BadInputError(f"{role} {path}: no such file", fix=fix)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInputError(f"{role} {path} is not readable JSON", why=str(e),
                            fix="give a file written by `deployconv bench --out`") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{role} {path} is not a deployconv benchmark result",
                            fix="give a file written by `deployconv bench --out`")
    return data


def load_run(path: Path, role: str = "run") -> BenchResult:
    """A `bench --out` file as a BenchResult; BadInputError (exit 2) naming the file and its role otherwise."""
    data = _read_json(path, role)
    try:
        return BenchResult.from_dict(data)
    except BadInputError as e:
        raise BadInputError(f"{role} {path}: {e.what}", why=e.why, fix=e.fix) from None
    except (KeyError, TypeError, ValueError) as e:
        raise BadInputError(f"{role} {path} is an incomplete benchmark result", why=f"{type(e).__name__}: {e}",
                            fix="re-run `deployconv bench --out`") from None


def update_baseline(current: Path, baseline: Path, force: bool = False) -> BenchResult:
    """Write the run at `current` as the baseline at `baseline`. Refuses to replace an existing baseline
    unless `force`; the file written is the run as read (every field kept), re-serialized."""
    run = load_run(current, "current")
    if Path(baseline).exists() and not force:
        raise BadInputError(f"baseline {baseline} already exists",
                            why="a baseline is replaced only on purpose, never as a side effect",
                            fix="add --force to replace it (e.g. on the main branch, after a reviewed change)")
    data = _read_json(current, "current")
    write_text_atomic(Path(baseline), json.dumps(data, indent=2) + "\n")
    return run
