"""What an export directory holds, typed: its file names (names.py) and the JSON files it carries as dataclasses
with a schema version (Manifest, ExportReport, EngineEntry). Torch-free and pure: reading a file is the caller's
job (deployconv.trust.manifest reads manifest.json strictly); this package turns parsed JSON into types and back."""
