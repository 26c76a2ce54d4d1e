"""The model registry: `@register_model` on one short function per variant (timm's habit).

Each variant function builds the train-form model; the registry adds checkpoint loading, user sources and
error messages with close matches, so every family gets them for free.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from deployconv.core.errors import BadInputError

# Family modules by name prefix, imported on first use: `create_model("repvgg_a0")` imports only repvgg.
_FAMILY_MODULES = {
    "lsnet": "deployconv.models.lsnet",
    "unireplknet": "deployconv.models.unireplknet",
    "repvgg": "deployconv.models.repvgg",
    "resnet": "deployconv.models.resnet_dcn",
    "dcnv4": "deployconv.models.dcnv4_net",
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelInfo:
    """What a user (and the exporter) needs to know to feed the model."""

    input_size: tuple[int, int, int] = (3, 224, 224)
    # H and W cannot change (LSNet's attention bias table is fixed to the 4x4 stage-4 map).
    fixed_hw: bool = False
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    num_classes: int = 1000
    # fnmatch patterns of checkpoint keys a user may legitimately lack (reported, never silent).
    optional_keys: tuple[str, ...] = ()
    # Inputs other than one `batch x C x H x W` image, as --input/--dim strings (a backbone at detection
    # resolution: ("input=Bx3xHxW",) with ("H=512..800..1344", "W=512..1344..1344")); empty: input_size.
    inputs: tuple[str, ...] = ()
    dims: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    builder: Callable[..., Any]
    info: ModelInfo
    filter_fn: Callable[[dict, Any], dict] | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)


_REGISTRY: dict[str, ModelSpec] = {}
_IMPORTED: set[str] = set()


def register_model(
    *,
    info: ModelInfo | None = None,
    filter_fn: Callable[[dict, Any], dict] | None = None,
    tags: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a variant function under its own name; the family is the defining module's name."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        family = fn.__module__.rsplit(".", 1)[-1]
        if fn.__name__ in _REGISTRY and _REGISTRY[fn.__name__].builder is not fn:
            raise RuntimeError(f"model {fn.__name__!r} registered twice")
        _REGISTRY[fn.__name__] = ModelSpec(fn.__name__, family, fn, info or ModelInfo(), filter_fn, tags)
        return fn

    return deco


def _ensure_loaded(name: str | None = None) -> None:
    """Import the family that `name` belongs to, or every family when name is None or unknown."""
    prefixes = [p for p in _FAMILY_MODULES if name is not None and name.startswith(p)] or list(_FAMILY_MODULES)
    for p in prefixes:
        if p not in _IMPORTED:
            import_module(_FAMILY_MODULES[p])
            _IMPORTED.add(p)


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names (optionally filtered by an fnmatch pattern), sorted."""
    import fnmatch

    _ensure_loaded()
    names = sorted(_REGISTRY)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def is_user_source(name: str) -> bool:
    """`file.py:factory` or `pkg.module:factory` name a user model instead of a zoo entry."""
    return ":" in name


def get_model_spec(name: str) -> ModelSpec:
    _ensure_loaded(name)
    if name in _REGISTRY:
        return _REGISTRY[name]
    _ensure_loaded()
    close = difflib.get_close_matches(name, list(_REGISTRY), n=4, cutoff=0.5)
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
        from deployconv.models.sources import load_user_model

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
