"""Enhancement networks: ``build_model(name, **overrides)`` and the registry around it."""

from lumicap.models.registry import (
    MODELS,
    ModelInfo,
    Recipe,
    Stage,
    build_model,
    count_parameters,
    list_models,
    model_info,
    register_model,
    temporary_model,
)

__all__ = [
    "MODELS",
    "ModelInfo",
    "Recipe",
    "Stage",
    "build_model",
    "count_parameters",
    "list_models",
    "model_info",
    "register_model",
    "temporary_model",
]
