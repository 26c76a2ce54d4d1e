"""Trust across the workstation -> device boundary: a strict, closed manifest that binds every file of an export
or bundle, a pin (the manifest's own sha256) or an Ed25519 signature that binds the manifest, and safe paths.

Layering: imports only deployconv.core.errors, deployconv.core.fsio and the standard library (cryptography lazily), so
`deployconv check` stays torch-free and export/validate can use it from below."""
