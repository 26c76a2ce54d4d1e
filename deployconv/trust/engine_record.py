"""`build-engine DIR`: verify the folder before building, and afterwards record only what the build wrote.

An export's manifest gains engine.plan's sha256 and the engine entry; every other hash is carried over as it was
verified, never recomputed from whatever is on disk. A bundle's manifest is never rewritten (it is pinned or
signed on the workstation): engine.plan is a device output, named by `check` and not covered by the manifest.
The entry is the same EngineEntry `export` writes (status "built" and the engine table)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from deployconv.core.artifacts.engine import EngineEntry
from deployconv.core.artifacts.manifest import Manifest
from deployconv.core.artifacts.names import ENGINE, ENGINE_LAYERS, MANIFEST
from deployconv.core.errors import BadInputError
from deployconv.core.fsio import sha256_file, write_text_atomic
from deployconv.trust.closed import require_closed
from deployconv.trust.manifest import read_manifest
from deployconv.trust.pin import manifest_sha256


def verify_before_build(folder: Path, onnx_path: Path) -> Manifest:
    """The folder's manifest after the closed check (CheckFailedError, exit 1, naming each file), with the ONNX to
    build from one of its listed files."""
    manifest = read_manifest(folder)
    require_closed(folder, manifest, fix="copy the bundle again (or re-export); build-engine builds only from "
                                         "verified files")
    try:
        rel = Path(onnx_path).resolve().relative_to(Path(folder).resolve()).as_posix()
    except ValueError:
        rel = None
    if rel not in manifest.files:
        raise BadInputError(f"{onnx_path} is not a file listed in {Path(folder) / MANIFEST}",
                            fix="build from the folder's model.onnx")
    return manifest


def recorded(manifest: Manifest, folder: Path, entry: EngineEntry) -> Manifest:
    """`manifest` with the engine entry and the hashes of the files this build wrote (engine.plan, and
    engine.layers.json when the entry names it); every other hash as it was verified."""
    files = dict(manifest.files)
    files[ENGINE] = sha256_file(Path(folder) / ENGINE)  # written by this build, nothing else
    layers = Path(folder) / ENGINE_LAYERS  # the inspector's report, written by the same build
    if entry.engine is not None and (entry.engine.layers or {}).get("file") and layers.is_file():
        files[ENGINE_LAYERS] = sha256_file(layers)
    return replace(manifest, engine=entry, files=files)


def record_engine(folder: Path, dest: Path, entries: dict[str, Any]) -> str:
    """Record the engine built into `dest` (`entries`: what build_engine returned) in the folder's manifest where
    that is allowed; what was done."""
    manifest = read_manifest(folder)
    if Path(dest).resolve() != Path(folder).resolve():
        return f"engine written outside {folder}: its manifest is unchanged"
    if manifest.is_bundle:
        return ("engine.plan is a device output: the bundle's manifest (and its pin or signature) is unchanged; "
                "`deployconv check` names it as built here")
    data = recorded(manifest, folder, EngineEntry.from_build(entries)).to_dict()
    write_text_atomic(Path(folder) / MANIFEST, json.dumps(data, indent=2) + "\n")
    return f"manifest.json records engine.plan; its new sha256 is {manifest_sha256(folder)}"
