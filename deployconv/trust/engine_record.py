"""`build-engine DIR`: verify the folder before building, and afterwards record only what the build wrote.

An export's manifest gains engine.plan's sha256 and the engine entry; every other hash is carried over as it was
verified, never recomputed from whatever is on disk. A bundle's manifest is never rewritten (it is pinned or
signed on the workstation): engine.plan is a device output, named by `check` and not covered by the manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deployconv.core.artifacts.names import ENGINE, ENGINE_LAYERS, MANIFEST
from deployconv.core.errors import BadInputError
from deployconv.core.fsio import write_text_atomic
from deployconv.trust.closed import require_closed


def verify_before_build(folder: Path, onnx_path: Path) -> dict[str, Any]:
    """The folder's manifest after the closed check (CheckFailedError, exit 1, naming each file), with the ONNX to
    build from one of its listed files."""
    from deployconv.trust.manifest import read_manifest

    manifest = read_manifest(folder)
    require_closed(folder, manifest, fix="copy the bundle again (or re-export); build-engine builds only from "
                                         "verified files")
    try:
        rel = Path(onnx_path).resolve().relative_to(Path(folder).resolve()).as_posix()
    except ValueError:
        rel = None
    if rel not in manifest["files"]:
        raise BadInputError(f"{onnx_path} is not a file listed in {Path(folder) / MANIFEST}",
                            fix="build from the folder's model.onnx")
    return manifest


def record_engine(folder: Path, dest: Path, entries: dict[str, Any]) -> str:
    """Record the engine built into `dest` in the folder's manifest where that is allowed; what was done."""
    from deployconv.trust.manifest import read_manifest, sha256_file
    from deployconv.trust.pin import manifest_sha256

    manifest = read_manifest(folder)
    if Path(dest).resolve() != Path(folder).resolve():
        return f"engine written outside {folder}: its manifest is unchanged"
    if "bundle" in manifest:
        return ("engine.plan is a device output: the bundle's manifest (and its pin or signature) is unchanged; "
                "`deployconv check` names it as built here")
    data = dict(manifest)
    files = dict(data["files"])
    files[ENGINE] = sha256_file(Path(folder) / ENGINE)  # written by this build, nothing else
    layers = Path(folder) / ENGINE_LAYERS  # the inspector's report, written by the same build
    if (entries.get("engine", {}).get("layers") or {}).get("file") and layers.is_file():
        files[ENGINE_LAYERS] = sha256_file(layers)
    data.update(entries)
    data["files"] = files
    write_text_atomic(Path(folder) / MANIFEST, json.dumps(data, indent=2) + "\n")
    return f"manifest.json records engine.plan; its new sha256 is {manifest_sha256(folder)}"
