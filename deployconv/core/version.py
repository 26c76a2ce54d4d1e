"""The package version, in one place below every layer (the front door re-exports it)."""

__version__ = "0.1.0"
