"""A zoo model or user source built with a seeded initialisation, so an export without weights is reproducible:
`deployconv validate` rebuilds the same model from the manifest's name and seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deployconv.models.registry import create_model


def create_seeded(name: str, weights: Path | str | None, allow_missing: tuple[str, ...], seed: int) -> Any:
    """create_model with torch seeded to `seed` for the build; the caller's global RNG state is untouched."""
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return create_model(name, weights, allow_missing=allow_missing)
