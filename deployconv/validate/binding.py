"""Binding an export or bundle directory to the manifest the user meant, before anything in it is used: the
pinned sha256 (`--expect`) and/or the Ed25519 signature (`--trust`). Shared by `deployconv check` and
`deployconv validate`, below both."""

from __future__ import annotations

from pathlib import Path

from deployconv.trust.pin import check_pin, parse_expect
from deployconv.trust.signing import verify_signature


def bind_manifest(directory: Path, expect: str | None, trust: Path | None) -> list[str]:
    """Check the pin and/or the signature of DIR/manifest.json before anything in it is used; what was bound."""
    bound = []
    if expect is not None:
        bound.append(f"manifest sha256 {check_pin(directory, parse_expect(expect))} (pinned)")
    if trust is not None:
        bound.append(f"signed by key sha256 {verify_signature(directory, Path(trust))}")
    return bound
