"""Small HTML building blocks: escaping, tables, and number cells that name where their value came from.

Every number on the page is a `<td class="num" data-src="FILE#/json/pointer" title="full value">` cell, so a
reader (or a test) can trace it to the exact field of report.json, gate.json or a bench file it shows.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

Formatter = Callable[[float], str]


def esc(value: Any) -> str:
    """Text for HTML: escaped, None shown as '-'."""
    return "-" if value is None else html.escape(str(value), quote=True)


def attrs(**kv: Any) -> str:
    """` key="value"` pairs; `class_` becomes `class`, underscores in other names become dashes; None drops."""
    parts = []
    for k, v in kv.items():
        if v is None:
            continue
        name = "class" if k == "class_" else k.replace("_", "-")
        parts.append(f' {name}="{html.escape(str(v), quote=True)}"')
    return "".join(parts)


def pointer(file: str, *parts: str | int) -> str:
    """`file#/a/b/0`: a JSON Pointer (RFC 6901) into `file`; '~' and '/' in keys are escaped."""
    tokens = [str(p).replace("~", "~0").replace("/", "~1") for p in parts]
    return f"{file}#/" + "/".join(tokens)


def td(text: Any, class_: str | None = None) -> str:
    return f"<td{attrs(class_=class_)}>{esc(text)}</td>"


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def num_td(value: Any, src: str | None, fmt: Formatter, status: str | None = None) -> str:
    """A number cell: formatted text, the source field in data-src (None for a number the page derived, such
    as a count), the full value on hover (title).

    `status` ('pass' / 'fail') colours the cell against a budget. A missing value is a '-' without data-src."""
    if value is None:
        return td("-", class_="num na")
    if not is_number(value):
        return td(value, class_="num na")
    cls = "num" if status is None else f"num {status}"
    return f"<td{attrs(class_=cls, data_src=src, title=repr(value))}>{esc(fmt(value))}</td>"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, class_: str | None = None,
          caption: str | None = None, header_groups: Sequence[tuple[str, int]] = ()) -> str:
    """A table from pre-rendered `<td>` strings. `header_groups`: (label, colspan) spanning header row."""
    head = ""
    if header_groups:
        head += "<tr>" + "".join(f"<th{attrs(colspan=n if n > 1 else None)}>{esc(label)}</th>"
                                 for label, n in header_groups) + "</tr>"
    if headers:
        head += "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>"
    thead = f"<thead>{head}</thead>" if head else ""
    body = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (f'<div class="scroll"><table{attrs(class_=class_)}>{cap}{thead}'
            f"<tbody>{body}</tbody></table></div>")


def kv_table(rows: Iterable[tuple[str, str]], *, class_: str = "kv") -> str:
    """Two-column table: a label and an already-rendered `<td>`."""
    return table([], ([f"<th>{esc(k)}</th>", cell] for k, cell in rows), class_=class_)


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def para(text: str, class_: str | None = None) -> str:
    return f"<p{attrs(class_=class_)}>{esc(text)}</p>"


def notes(lines: Sequence[str]) -> str:
    """Warnings a reader should see beside the numbers (noise, missing data, mismatches)."""
    if not lines:
        return ""
    return '<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in lines) + "</ul>"


def badge(passed: bool | None, text: str) -> str:
    cls = "badge na" if passed is None else ("badge pass" if passed else "badge fail")
    return f'<span class="{cls}">{esc(text)}</span>'


def figure(data_uri: str, alt: str, caption: str) -> str:
    return (f'<figure><img src="{esc(data_uri)}" alt="{esc(alt)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def finite(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)
