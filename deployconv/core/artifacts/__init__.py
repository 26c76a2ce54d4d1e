"""What an export directory holds, typed: its file names (names.py) and the JSON files it carries as dataclasses
with a schema version (Manifest, ExportReport, EngineEntry). Torch-free and pure: reading a file is the caller's
job (deployconv.trust.manifest reads manifest.json strictly); this package turns parsed JSON into types and back."""

from deployconv.core.artifacts.engine import BuiltEngine, EngineEntry
from deployconv.core.artifacts.manifest import BundleInfo, Manifest, PluginRef, as_manifest
from deployconv.core.artifacts.report import ExportReport
from deployconv.core.artifacts.version import SchemaVersion, parse_format

__all__ = ["BuiltEngine", "BundleInfo", "EngineEntry", "ExportReport", "Manifest", "PluginRef", "SchemaVersion",
           "as_manifest", "parse_format"]
