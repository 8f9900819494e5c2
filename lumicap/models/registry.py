"""Model registry: ``build_model(name, **overrides)``, ``list_models()``, ``model_info(name)``.

A model file ends with small entrypoints decorated with ``@register_model(...)``; the function name is
the model name and its body pins the variant's defaults (timm style)::

    @register_model(paper="...", official_params=1_605_701, params_source="...", recipe=Recipe(...))
    def retinexformer(**overrides) -> nn.Module:
        return Retinexformer(**{"n_feat": 40, **overrides})

Model contract (every registered network):
- ``forward(x)`` takes ``(B,3,H,W)`` float in [0,1] of any H, W and returns the same shape; padding to the
  multiple the network needs happens inside (``lumicap.models.common.pad_to_multiple``) and is cropped off.
- Optional ``training_outputs(x) -> dict`` with key ``"output"`` plus auxiliary tensors a recipe's losses
  use (e.g. UHDFour's ``"output_lowres"``).
- Optional ``stage_losses(stage, low, high) -> dict[str, Tensor]`` for recipe stages whose objective is
  not plain enhancement (RetinexNet's decomposition stage), and ``stage_parameters(stage)`` naming the
  parameters a stage trains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from lumicap.errors import LumicapError


@dataclass(frozen=True)
class Stage:
    """One phase of an original training recipe, as data (the training configs are made from it).

    ``losses`` maps a loss name (``l1``, ``charbonnier``, ``smooth_l1``, ``mse``, ``ssim``, ``vgg19``,
    ``vgg16``, ``lowres_smooth_l1``, or a model-defined stage loss) to its weight. ``patch_size=None``
    means whole images. ``objective`` is ``"enhance"`` (model(low) vs high) or a model-defined stage name
    handled by ``model.stage_losses``.
    """

    name: str
    iterations: int
    batch_size: int
    patch_size: int | None
    losses: dict[str, float]
    optimizer: dict[str, Any] = field(default_factory=lambda: {"name": "adam", "lr": 2e-4, "betas": (0.9, 0.999)})
    scheduler: dict[str, Any] = field(default_factory=lambda: {"name": "constant"})
    mixup: bool = False
    objective: str = "enhance"
    mfr: bool = True  # whether an MFR block applies to this stage (False for e.g. RetinexNet decomposition)


@dataclass(frozen=True)
class Recipe:
    stages: tuple[Stage, ...]
    source: str = ""  # where the recipe's numbers come from (paper section / official options file)
    notes: str = ""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    builder: Callable[..., nn.Module]
    paper: str
    official_params: int | None
    params_source: str
    recipe: Recipe


_REGISTRY: dict[str, ModelInfo] = {}

# Modules that define models; imported on first use so the registry is complete.
_MODEL_MODULES = [
    "retinexformer",
    "iat",
    "snr_aware",
    "retinexnet",
    "llformer",
    "uhdfour",
    "mirnet",
    "rctnet",
]


def register_model(*, paper: str, official_params: int | None, params_source: str, recipe: Recipe):
    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[fn.__name__] = ModelInfo(fn.__name__, fn, paper, official_params, params_source, recipe)
        return fn

    return decorator


def _load_all() -> None:
    import importlib

    for module in _MODEL_MODULES:
        try:
            importlib.import_module(f"lumicap.models.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"lumicap.models.{module}":
                raise


def list_models() -> list[ModelInfo]:
    _load_all()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def model_info(name: str) -> ModelInfo:
    _load_all()
    key = name.lower().replace("-", "_")
    if key not in _REGISTRY:
        raise LumicapError(f"unknown model '{name}'; known models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


def build_model(name: str, **overrides: Any) -> nn.Module:
    info = model_info(name)
    try:
        return info.builder(**overrides)
    except TypeError as exc:
        raise LumicapError(f"model '{info.name}': bad override ({exc})") from None
    except (ValueError, RuntimeError) as exc:
        if not overrides:
            raise  # the model's own defaults failed: a bug, keep its traceback
        # A value the network cannot be built with ({"variant": "evil"}, {"in_dim": -1}).
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        given = ", ".join(f"{k}={_brief(v)}" for k, v in overrides.items())
        raise LumicapError(f"model '{info.name}': bad override value ({given}): {reason}") from None


def _brief(value: Any) -> str:
    # Never repr() a container: a hostile one can be huge or nested too deep to print.
    if isinstance(value, (str, int, float, bool)) or value is None:
        return repr(value)[:40]
    return f"<{type(value).__name__}>"


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
