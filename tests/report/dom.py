"""Reading a report page back with the stdlib only: number cells, every URL-bearing attribute, images, text.
Shared by the plain-HTML tests and the browser test (which parses chromium's dumped DOM the same way)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

URL_ATTRS = ("src", "href", "action", "formaction", "poster", "data", "srcset", "background", "xlink:href")


@dataclass
class NumberCell:
    src: str
    title: str | None
    text: str
    classes: set[str]
    column: str | None = None  # the header of its column (last header row), or its row's <th> in a kv table


@dataclass
class Dom:
    numbers: list[NumberCell] = field(default_factory=list)
    urls: list[tuple[str, str, str]] = field(default_factory=list)  # (tag, attribute, value)
    images: list[str] = field(default_factory=list)
    tags: set[str] = field(default_factory=set)
    styles: list[str] = field(default_factory=list)
    text: str = ""
    metas: list[dict[str, str]] = field(default_factory=list)
    cells: list[tuple[set[str], str]] = field(default_factory=list)  # every <td>: classes, text


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.dom = Dom()
        self._td: dict[str, str | None] | None = None
        self._td_text: list[str] = []
        self._in_style = False
        self._text: list[str] = []
        self._in_thead = False
        self._headers: list[str] = []  # the last header row of the current table
        self._row: list[str] = []  # texts of the current row's cells so far (th and td)
        self._th: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.dom.tags.add(tag)
        for name in URL_ATTRS:
            if a.get(name):
                self.dom.urls.append((tag, name, a[name]))  # type: ignore[arg-type]
        if tag == "img":
            self.dom.images.append(a.get("src") or "")
        if tag == "meta":
            self.dom.metas.append({k: v or "" for k, v in a.items()})
        if tag == "style":
            self._in_style = True
        if a.get("style"):
            self.dom.styles.append(a["style"])  # type: ignore[arg-type]
        if tag == "td":
            self._td, self._td_text = a, []
        if tag == "table":
            self._headers = []
        if tag == "thead":
            self._in_thead = True
        if tag == "tr":
            self._row = []
        if tag == "th":
            self._th = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False
        if tag == "thead":
            self._in_thead = False
        if tag == "th" and self._th is not None:
            self._row.append("".join(self._th).strip())
            self._th = None
        if tag == "tr" and self._in_thead:
            self._headers = self._row
        if tag == "td" and self._td is not None:
            text = "".join(self._td_text).strip()
            classes = set((self._td.get("class") or "").split())
            self.dom.cells.append((classes, text))
            if self._td.get("data-src"):
                i = len(self._row)
                column = (self._headers[i] if i < len(self._headers) else None) if self._headers else \
                    (self._row[0] if self._row else None)
                self.dom.numbers.append(NumberCell(self._td["data-src"], self._td.get("title"), text, classes,
                                                   column))
            self._row.append(text)
            self._td = None

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.dom.styles.append(data)
            return
        self._text.append(data)
        if self._td is not None:
            self._td_text.append(data)
        if self._th is not None:
            self._th.append(data)

    def close(self) -> None:
        super().close()
        self.dom.text = re.sub(r"\s+", " ", " ".join(self._text))


def parse(html: str) -> Dom:
    p = _Parser()
    p.feed(html)
    p.close()
    return p.dom


def resolve(src: str, files: dict[str, Any]) -> Any:
    """Follow `file#/json/pointer` (RFC 6901) into the loaded JSON files."""
    name, _, ptr = src.partition("#")
    node = files[name]
    for token in ptr.lstrip("/").split("/") if ptr.strip("/") else []:
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def load_files(directory: Path) -> dict[str, Any]:
    """Every JSON file of an export directory, read independently of the code under test."""
    return {p.name: json.loads(p.read_text()) for p in directory.glob("*.json")}


_NUMBER = re.compile(r"-?\d+(?:\.(\d+))?(?:e([+-]?\d+))?")


def shown_matches(text: str, value: Any) -> bool:
    """Whether the text shows `value` correctly to its last shown digit (half a unit in the last place)."""
    if isinstance(value, float) and math.isnan(value):
        return text == "NaN"
    if isinstance(value, float) and math.isinf(value):
        return text == ("inf" if value > 0 else "-inf")
    t = text.replace(",", "")
    m = _NUMBER.fullmatch(t)
    if not m:
        return False
    decimals, exp = len(m.group(1) or ""), int(m.group(2) or 0)
    half_ulp = 0.5 * 10.0 ** (exp - decimals)
    return abs(float(t) - float(value)) <= half_ulp * (1 + 1e-9) + 1e-300
