"""Moving a job's output directory between machines as one bytes object (for Ray's object store), checked on
arrival. Pure stdlib; no ray here.

A payload is (manifest sha256 or None, tar bytes). On arrival the directory is unpacked, the manifest's own
hash compared with the one the sender computed, and every file listed in the manifest re-hashed
(deployconv.trust.manifest.verify_hashes): a bundle that changed on the way is refused, never run.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from deployconv.core.artifacts.names import MANIFEST
from deployconv.core.errors import CheckFailedError
from deployconv.core.fsio import sha256_file
from deployconv.trust.manifest import read_manifest, verify_hashes

Payload = tuple[str | None, bytes]


def pack(directory: Path) -> Payload:
    directory = Path(directory)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)
    manifest = directory / MANIFEST
    return (sha256_file(manifest) if manifest.is_file() else None), buf.getvalue()


def unpack(payload: Payload, dest: Path) -> Path:
    """Unpack into `dest` (created) and verify; CheckFailedError when the content is not what was sent."""
    expected, data = payload
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")  # refuses absolute paths, '..' and links out of dest
        else:  # Python without the extraction filters: plain files with safe names only
            for m in tar.getmembers():
                if not m.isfile() or m.name.startswith("/") or ".." in Path(m.name).parts:
                    raise CheckFailedError(f"refusing to unpack {m.name!r} from a job payload")
            tar.extractall(dest)
    if expected is None:
        return dest
    manifest = dest / MANIFEST
    got = sha256_file(manifest) if manifest.is_file() else None
    if got != expected:
        raise CheckFailedError(f"the bundle arrived with a different manifest (sha256 {got} != {expected})",
                               why="it changed between the node that made it and this one", fix="re-run the job")
    bad = verify_hashes(dest, read_manifest(dest))
    if bad:
        raise CheckFailedError("the bundle arrived with files that do not match its manifest", details=bad[:10],
                               fix="re-run the job")
    return dest
