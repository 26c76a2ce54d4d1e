"""The manifest's schema, read strictly: every key known, every required key present, every value of its type.

The tables and the typed form live in deployconv.core.artifacts.manifest (one schema for every reader); this module
is the trust layer's name for "check a parsed manifest before any value is used"."""

from __future__ import annotations

from typing import Any

from deployconv.core.artifacts.manifest import (
    BUNDLE_FORMAT,
    BUNDLE_KEYS,
    EXPORT_FORMAT,
    EXPORT_KEYS,
    Manifest,
)


def validate_manifest(data: Any, path: str) -> Manifest:
    """`data` (parsed manifest.json) as a Manifest when it fits the schema; else a BadInputError (exit 2) listing
    every problem, or saying it was written by a newer deployconv."""
    return Manifest.from_dict(data, path)


__all__ = ["BUNDLE_FORMAT", "BUNDLE_KEYS", "EXPORT_FORMAT", "EXPORT_KEYS", "validate_manifest"]
