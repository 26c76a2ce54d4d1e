"""Atomic writes: a file is either the old one or the complete new one, never half written."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from deployconv.core.errors import BadInputError


def safe_name(text: str) -> str:
    """A model name or source (`path/file.py:fn`) as a file-name part."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def refuse_overwrite(path: Path, force: bool) -> None:
    """Raise unless `path` is free or the user said --force."""
    if Path(path).exists() and not force:
        raise BadInputError(
            f"{path} already exists",
            why="deployconv never overwrites an existing output without being asked",
            fix="pass --force to replace it, or choose another --out",
        )


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if Path(tmp).is_file():
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the result should read like any written file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_dir(path: Path, force: bool) -> Iterator[Path]:
    """Yield a fresh temporary directory next to `path`; it becomes `path` only if the block succeeds.

    An existing `path` (allowed only with force) is swapped out and removed after the new one is in place."""
    path = Path(path)
    refuse_overwrite(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_atomic(path: Path, writer: Callable[[Path], None]) -> None:
    """Call writer(tmp_path) and move the result into place atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def sha256_file(path: Path) -> str:
    """The one file hash of the package (manifests, pins, matrix records): streamed, 1 MiB at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
