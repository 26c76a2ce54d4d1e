"""One output helper: the same rows become a rich table for people or JSON for machines.

Results go to stdout, diagnostics (warnings, errors, progress) to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

# Piped output (CI logs, `make run`) gets a wide console instead of rich's 80-column default.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)


def _default(o: Any) -> Any:
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(o)
    return str(o)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=_default, allow_nan=True) + "\n")


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
          justify_right: Sequence[str] = ()) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold")
    for c in columns:
        t.add_column(c, justify="right" if c in justify_right else "left")
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    return t


def fmt_int(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def fmt_sci(x: float | None) -> str:
    return "-" if x is None else f"{x:.2e}"
