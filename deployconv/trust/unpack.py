"""Unpack a bundle archive safely: regular files and folders only, every member inside one top folder, no `..`,
no absolute names, no links, devices or duplicates; into a fresh folder that appears only when all is written."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from deployconv.core.artifacts.paths import path_problem
from deployconv.core.errors import BadInputError
from deployconv.core.fsio import atomic_dir

MAX_MEMBERS = 100_000


def _members(tar: tarfile.TarFile, archive: Path) -> tuple[str, list[tuple[tarfile.TarInfo, str]]]:
    """(top folder, [(member, path under it)]) after checking every member; BadInputError naming the first bad one."""
    top: str | None = None
    out: list[tuple[tarfile.TarInfo, str]] = []
    seen: set[str] = set()
    for i, m in enumerate(tar):
        if i >= MAX_MEMBERS:
            raise BadInputError(f"{archive} has more than {MAX_MEMBERS} members", fix="this is not a bundle")
        why = path_problem(m.name.rstrip("/"))
        if why is not None:
            raise BadInputError(f"{archive}: member {m.name!r} {why}",
                                why="a bundle archive holds one folder of plain relative paths",
                                fix="do not unpack this archive; copy the bundle again from the workstation")
        if not (m.isreg() or m.isdir()):
            raise BadInputError(f"{archive}: member {m.name!r} is a link or special file",
                                why="bundles hold regular files only",
                                fix="do not unpack this archive; copy the bundle again from the workstation")
        head, _, rest = m.name.rstrip("/").partition("/")
        if top is None:
            top = head
        if head != top:
            raise BadInputError(f"{archive}: member {m.name!r} is outside the bundle folder {top}/",
                                fix="do not unpack this archive; copy the bundle again from the workstation")
        if rest in seen:
            raise BadInputError(f"{archive}: member {m.name!r} appears twice", fix="copy the bundle again")
        seen.add(rest)
        if rest:
            out.append((m, rest))
    if top is None:
        raise BadInputError(f"{archive} is empty", fix="copy the bundle again")
    return top, out


def unpack_bundle(archive: Path, dest_parent: Path, *, force: bool = False) -> Path:
    """Unpack `archive` (made by `deployconv bundle`) into DEST_PARENT/<its folder>; that folder."""
    archive = Path(archive)
    try:
        with tarfile.open(archive, "r:*") as tar:
            top, members = _members(tar, archive)
            dest = Path(dest_parent) / top
            with atomic_dir(dest, force) as tmp:
                for m, rel in members:
                    target = tmp / rel
                    if m.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    src = tar.extractfile(m)
                    if src is None:
                        raise BadInputError(f"{archive}: member {m.name!r} has no data", fix="copy it again")
                    with src, open(target, "xb") as f:
                        shutil.copyfileobj(src, f)
    except (tarfile.TarError, EOFError, ValueError) as e:
        raise BadInputError(f"{archive} is not a readable .tar.gz ({type(e).__name__}: {str(e)[:160]})",
                            fix="copy the archive again (it may be truncated)") from None
    return dest
