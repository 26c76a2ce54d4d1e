"""The pin: the manifest's own sha256. The manifest binds every file, so one hash printed on the workstation and
passed to `check --expect` on the device binds the whole bundle."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from deployconv.core.artifacts.names import MANIFEST, PIN_SUFFIX
from deployconv.core.errors import BadInputError, CheckFailedError
from deployconv.core.fsio import write_text_atomic

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def manifest_sha256(directory: Path) -> str:
    path = Path(directory) / MANIFEST
    if path.is_symlink() or not path.is_file():
        raise BadInputError(f"{directory} has no {MANIFEST}" + (" (it is a link)" if path.is_symlink() else ""),
                            fix="pass a folder made by `deployconv bundle` or `deployconv export`")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pin_path(out: Path) -> Path:
    """OUT.manifest.sha256, next to the folder OUT (and its OUT.tar.gz)."""
    out = Path(out)
    return out.with_name(out.name + PIN_SUFFIX)


def write_pin(out: Path) -> tuple[str, Path]:
    """Write `<sha256>  <name>/manifest.json` (sha256sum's format) next to `out`; (sha256, pin file)."""
    digest = manifest_sha256(out)
    path = pin_path(out)
    write_text_atomic(path, f"{digest}  {Path(out).name}/{MANIFEST}\n")
    return digest, path


def parse_expect(text: str) -> str:
    """A --expect value: the sha256 itself, or a pin file written by `bundle`/`export`."""
    value = text.strip()
    if not _HEX64.fullmatch(value):
        path = Path(value)
        if path.is_file() and path.stat().st_size < 4096:
            first = path.read_text(errors="replace").split()
            value = first[0] if first else ""
        if not _HEX64.fullmatch(value):
            raise BadInputError(f"--expect {text!r} is not a sha256 (64 hex digits) nor a pin file",
                                fix="pass the manifest sha256 that `deployconv bundle` printed, or its "
                                    f"OUT{PIN_SUFFIX} file")
    return value.lower()


def check_pin(directory: Path, expected: str) -> str:
    """The manifest's sha256 when it equals `expected`; else CheckFailedError (exit 1)."""
    found = manifest_sha256(directory)
    if found != expected:
        raise CheckFailedError(f"{Path(directory) / MANIFEST} is not the pinned manifest",
                               details=[f"expected sha256 {expected}", f"found    sha256 {found}"],
                               why="the manifest was changed or replaced after the bundle was made, or this is "
                                   "another bundle",
                               fix="copy the bundle again from the workstation that made it, and compare with the "
                                   "sha256 it printed")
    return found
