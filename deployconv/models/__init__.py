"""The model zoo: one file per family, a registry, checkpoint loading and user-model sources."""

from deployconv.models.registry import (
    ModelInfo,
    create_model,
    get_model_spec,
    list_models,
    model_info,
    register_model,
)

__all__ = ["ModelInfo", "create_model", "get_model_spec", "list_models", "model_info", "register_model"]
