"""Registration, below the families: `@register_model` on one short function per variant (timm's habit) puts
a ModelSpec in REGISTRY. Family modules (lsnet.py, repvgg.py, ...) import this; the lookup side
(deployconv.models.registry) imports the families, so registration runs one way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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


REGISTRY: dict[str, ModelSpec] = {}  # variant name -> spec, filled as family modules are imported


def register_model(
    *,
    info: ModelInfo | None = None,
    filter_fn: Callable[[dict, Any], dict] | None = None,
    tags: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a variant function under its own name; the family is the defining module's name."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        family = fn.__module__.rsplit(".", 1)[-1]
        if fn.__name__ in REGISTRY and REGISTRY[fn.__name__].builder is not fn:
            raise RuntimeError(f"model {fn.__name__!r} registered twice")
        REGISTRY[fn.__name__] = ModelSpec(fn.__name__, family, fn, info or ModelInfo(), filter_fn, tags)
        return fn

    return deco
