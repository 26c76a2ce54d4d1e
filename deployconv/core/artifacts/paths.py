"""Which relative paths a manifest may name: POSIX, relative, inside the folder, no `..`, no links. Pure."""

from __future__ import annotations

import re

_DRIVE = re.compile(r"^[A-Za-z]:")


def path_problem(rel: object) -> str | None:
    """Why `rel` cannot be a manifest path, or None when it is a plain relative path inside the folder."""
    if not isinstance(rel, str) or not rel:
        return "not a non-empty string"
    if "\x00" in rel or "\\" in rel:
        return "contains a NUL or a backslash"
    if rel.startswith("/") or _DRIVE.match(rel):
        return "is absolute"
    parts = rel.split("/")
    if ".." in parts:
        return "contains '..'"
    if any(p in ("", ".") for p in parts):
        return "has an empty or '.' component"
    return None


def is_safe(rel: object) -> bool:
    return path_problem(rel) is None
