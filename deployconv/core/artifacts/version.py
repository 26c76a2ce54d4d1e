"""The schema version of an artifact file, and the one rule for reading it.

Every JSON file deployconv writes into an export says what it is and which schema it follows:
`"format": "deployconv.<kind>/<MAJOR>"` (deployconv.export/1, deployconv.bundle/1, deployconv.report/1).
The rule: MAJOR is an integer. A reader of major N reads files of major N, strictly (every key known, every
required key present, every value of its type). A file of a GREATER major was written by a newer deployconv and is
refused with "upgrade deployconv"; a smaller major is refused with "re-export". Because reading is strict, any
change an N reader could not read (a new key, a removed key, a changed type or meaning) is a new major."""

from __future__ import annotations

import re
from dataclasses import dataclass

from deployconv.core.errors import BadInputError

PREFIX = "deployconv."
_FORMAT = re.compile(r"deployconv\.([a-z_]+)/([0-9]+)")


@dataclass(frozen=True)
class SchemaVersion:
    kind: str  # export | bundle | report
    major: int

    def __str__(self) -> str:
        return f"{PREFIX}{self.kind}/{self.major}"


EXPORT = SchemaVersion("export", 1)
BUNDLE = SchemaVersion("bundle", 1)
REPORT = SchemaVersion("report", 1)


def parse_format(value: object) -> SchemaVersion | None:
    """"deployconv.KIND/MAJOR" as a SchemaVersion; None for anything else."""
    m = _FORMAT.fullmatch(value) if isinstance(value, str) else None
    return SchemaVersion(m.group(1), int(m.group(2))) if m else None


def require_readable(value: object, ours: SchemaVersion, where: str) -> None:
    """Refuse a file of `ours.kind` written under another major (a newer one: upgrade; an older one: re-export).
    Other values (a wrong kind, no format, garbage) are left to the key check, which names the key."""
    got = parse_format(value)
    if got is None or got.kind != ours.kind or got.major == ours.major:
        return
    if got.major > ours.major:
        raise BadInputError(f"{where} was written by a newer deployconv (schema {got.major}); this one reads "
                            f"schema {ours.major} ({ours})",
                            why="a file of a newer major schema may hold what this version would misread",
                            fix="upgrade deployconv to read it (pip install -U deployconv), or re-export with "
                                "this version")
    raise BadInputError(f"{where} has schema {got.major} ({got}); this deployconv reads {ours}",
                        why="it was written by an older deployconv", fix="re-export (and re-bundle) with this "
                                                                          "deployconv version")
