"""The closed manifest: manifest.json lists every file of the folder, and the folder holds exactly those files.

`verify_closed` walks the folder without following links and fails, naming each file, on: a file on disk that is
not listed; a listed file that is missing or whose sha256 differs; a listed path that is absolute, has `..`, or
is (or runs through) a link; anything on disk that is a link or not a regular file; a file the target requires
that is not listed; a field that names a file (ort_model, engine.file) pointing at an unlisted file.

Outputs the device itself builds (the plugin library, engine.plan, pip's build droppings) are not shipped and so
not listed: they are allowed unless `fresh` (a just-unpacked bundle has none), and always named in the report."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployconv.core.artifacts.manifest import Manifest, as_manifest
from deployconv.core.artifacts.names import (
    DLA_FILE,
    ENGINE,
    ENGINE_LAYERS,
    EXPORT_REQUIRED,
    MANIFEST,
    ORT_MODEL,
    PLUGIN_BUILD_DIR,
    PLUGINS_DIR,
    PYTHON_DIR,
    SIGNATURE,
)
from deployconv.core.artifacts.paths import path_problem
from deployconv.core.errors import CheckFailedError
from deployconv.core.fsio import sha256_file

UNLISTED_OK = frozenset({MANIFEST, SIGNATURE})
# Built on the device, never shipped: the plugin library's CMake tree, the engine, `pip install ./deployconv_src`.
DEVICE_OUTPUT_DIRS = (f"{PLUGIN_BUILD_DIR}/", f"{PYTHON_DIR}/build/")
DEVICE_OUTPUT_FILES = (ENGINE, ENGINE_LAYERS)  # the engine and its inspector report


def is_device_output(rel: str) -> bool:
    if rel in DEVICE_OUTPUT_FILES or rel.startswith(DEVICE_OUTPUT_DIRS):
        return True
    head, _, rest = rel.partition("/")
    return head == PYTHON_DIR and rest.split("/")[0].endswith(".egg-info")


@dataclass
class Integrity:
    """What the closed-manifest check found. `problems` each name one file; empty means the folder is exactly
    what the manifest lists."""

    listed: int
    problems: list[str] = field(default_factory=list)
    device_outputs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def required_files(manifest: Manifest | Mapping[str, Any]) -> list[str]:
    """The files this manifest's kind and target cannot do without."""
    manifest = as_manifest(manifest)
    need = list(EXPORT_REQUIRED)
    if manifest.plugins:
        need.append(manifest.ort_model or ORT_MODEL)  # the twin ONNX Runtime runs parity on
    bundle = manifest.bundle
    if bundle is not None:
        if manifest.plugins or bundle.plugin_sources:
            need.append(f"{PLUGINS_DIR}/CMakeLists.txt")
        if bundle.python_sources:
            need += [f"{PYTHON_DIR}/pyproject.toml", f"{PYTHON_DIR}/deployconv/__init__.py"]
        if bundle.dla:
            need.append(DLA_FILE)
    return list(dict.fromkeys(need))


def _walk(directory: Path) -> tuple[list[str], list[str]]:
    """(regular files, problems) under `directory`, relative POSIX paths; links are never followed."""
    files: list[str] = []
    problems: list[str] = []

    def visit(folder: Path, prefix: str) -> None:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            rel = prefix + e.name
            mode = e.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                problems.append(f"{rel}: is a symbolic link (bundles hold regular files only)")
            elif stat.S_ISDIR(mode):
                visit(Path(e.path), rel + "/")
            elif stat.S_ISREG(mode):
                files.append(rel)
            else:
                problems.append(f"{rel}: not a regular file")

    visit(directory, "")
    return files, problems


def verify_closed(directory: Path, manifest: Manifest | Mapping[str, Any], *, fresh: bool = False,
                  hashes: bool = True) -> Integrity:
    """Compare `directory` with the manifest's `files` (see the module docstring). `hashes=False` skips the
    sha256 comparison (for a caller that only needs the listing)."""
    directory = Path(directory)
    manifest = as_manifest(manifest)
    listed: dict[str, str] = manifest.files
    result = Integrity(listed=len(listed))
    safe: dict[str, str] = {}
    for rel, digest in listed.items():
        why = path_problem(rel)
        if why is None and rel in UNLISTED_OK:
            why = "is the manifest or its signature, which cannot list itself"
        if why is not None:
            result.problems.append(f"{rel!r}: unsafe path ({why}); not read")
        else:
            safe[rel] = digest
    on_disk, walk_problems = _walk(directory)
    result.problems += walk_problems
    links = {p.split(":", 1)[0] for p in walk_problems}
    for rel in on_disk:
        if rel in safe or rel in UNLISTED_OK:
            continue
        if is_device_output(rel) and not fresh:
            result.device_outputs.append(rel)
        else:
            result.problems.append(f"{rel}: not listed in manifest.json")
    present = set(on_disk)
    for rel, digest in safe.items():
        if rel not in present:
            through = next((p for p in links if rel == p or rel.startswith(p + "/")), None)
            result.problems.append(f"{rel}: listed but " + (f"reached through the link {through}" if through
                                                              else "missing"))
        elif hashes and sha256_file(directory / rel) != digest:
            result.problems.append(f"{rel}: sha256 differs")
    for rel in required_files(manifest):
        if rel not in safe:
            result.problems.append(f"{rel}: required for this {'bundle' if manifest.is_bundle else 'export'} "
                                   "but not listed in manifest.json")
    if not manifest.is_bundle:  # an export holds no sources; a bundle manifest stripped of its entry is not one
        for rel in sorted(r for r in safe if r.startswith((f"{PLUGINS_DIR}/", f"{PYTHON_DIR}/"))):
            result.problems.append(f"{rel}: bundle content, but the manifest has no bundle entry")
    named = {"ort_model": manifest.ort_model}
    if manifest.engine is not None and manifest.engine.file is not None and not manifest.is_bundle:
        named["engine.file"] = manifest.engine.file
    for key, rel in named.items():
        if rel is not None and (not isinstance(rel, str) or rel not in safe):
            result.problems.append(f"{rel}: named by {key} but not listed in manifest.json")
    return result


def require_closed(directory: Path, manifest: Manifest | Mapping[str, Any], *, fresh: bool = False,
                   error: type | None = None, fix: str = "") -> Integrity:
    """verify_closed, raising `error` (default CheckFailedError, exit 1) that names every problem."""
    result = verify_closed(directory, manifest, fresh=fresh)
    if not result.ok:
        cls = error or CheckFailedError
        raise cls(f"{directory} is not exactly what its manifest lists ({len(result.problems)} problem(s))",
                  details=result.problems[:20] + ([f"... {len(result.problems) - 20} more"]
                                                  if len(result.problems) > 20 else []),
                  why="every file must be listed in manifest.json with its sha256, and nothing else may be there",
                  fix=fix or "copy the bundle again (or unpack the .tar.gz again into an empty folder); never "
                             "edit files inside it")
    return result
