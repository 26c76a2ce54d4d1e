"""The model registry's lookup side: list, find and build zoo models (and user sources).

Each variant function (registered with deployconv.models.registration.register_model in its family file)
builds the train-form model; this module adds checkpoint loading, user sources and error messages with close
matches, so every family gets them for free. Family files are imported on first use by name prefix (torch is
not loaded to list this module's names), and they import only the registration module below this one.
"""

from __future__ import annotations

import difflib
import fnmatch
from importlib import import_module
from pathlib import Path
from typing import Any

from deployconv.core.errors import BadInputError
from deployconv.models.registration import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    REGISTRY,
    ModelInfo,
    ModelSpec,
    register_model,
)
from deployconv.models.sources import load_user_model

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ModelInfo", "ModelSpec", "create_model", "get_model_spec",
           "is_user_source", "list_models", "model_info", "register_model"]

# Family modules by name prefix, imported on first use: `create_model("repvgg_a0")` imports only repvgg.
_FAMILY_MODULES = {
    "lsnet": "deployconv.models.lsnet",
    "unireplknet": "deployconv.models.unireplknet",
    "repvgg": "deployconv.models.repvgg",
    "resnet": "deployconv.models.resnet_dcn",
    "dcnv4": "deployconv.models.dcnv4_net",
}
_IMPORTED: set[str] = set()


def _ensure_loaded(name: str | None = None) -> None:
    """Import the family that `name` belongs to, or every family when name is None or unknown."""
    prefixes = [p for p in _FAMILY_MODULES if name is not None and name.startswith(p)] or list(_FAMILY_MODULES)
    for p in prefixes:
        if p not in _IMPORTED:
            import_module(_FAMILY_MODULES[p])
            _IMPORTED.add(p)


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names (optionally filtered by an fnmatch pattern), sorted."""
    _ensure_loaded()
    names = sorted(REGISTRY)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def is_user_source(name: str) -> bool:
    """`file.py:factory` or `pkg.module:factory` name a user model instead of a zoo entry."""
    return ":" in name


def get_model_spec(name: str) -> ModelSpec:
    _ensure_loaded(name)
    if name in REGISTRY:
        return REGISTRY[name]
    _ensure_loaded()
    close = difflib.get_close_matches(name, list(REGISTRY), n=4, cutoff=0.5)
    raise BadInputError(
        f"unknown model {name!r}",
        why="it is neither a zoo model nor a user source of the form file.py:factory or package.module:factory",
        fix=(f"did you mean {', '.join(close)}? " if close else "") + "run `deployconv models` for the list",
    )


def create_model(
    name: str,
    weights: str | Path | None = None,
    *,
    allow_missing: tuple[str, ...] | list[str] = (),
    **overrides: Any,
) -> Any:
    """Build a train-form model in eval mode, optionally loading an official checkpoint file.

    `allow_missing`: fnmatch patterns of keys the checkpoint may lack on purpose (for example the offset convs
    when loading a plain ResNet-50 into resnet50_dcn); they are listed in `model.load_report`, never silent.
    """
    from deployconv.models.checkpoint import load_checkpoint

    if is_user_source(name):
        model = load_user_model(name, **overrides)
        spec = None
    else:
        spec = get_model_spec(name)
        model = spec.builder(**overrides)
        model.deployconv_name = name
        model.deployconv_info = spec.info
    if weights is not None:
        report = load_checkpoint(
            model,
            weights,
            filter_fn=spec.filter_fn if spec else None,
            allow_missing=tuple(allow_missing),
            optional_keys=spec.info.optional_keys if spec else (),
        )
        model.load_report = report
    return model.eval()


def model_info(model: Any) -> ModelInfo:
    """The ModelInfo a zoo model carries, or defaults for a user model."""
    return getattr(model, "deployconv_info", None) or ModelInfo()
