"""Model registry: ``build_model(name, **overrides)``, ``list_models()``, ``model_info(name)``.

A model file ends with small entrypoints decorated with ``@register_model(...)``; the function name is
the model name and its body pins the variant's defaults (timm style)::

    @register_model(paper="...", official_params=1_605_701, params_source="...", recipe=Recipe(...),
                    constructor=Retinexformer)
    def retinexformer(**overrides) -> nn.Module:
        return Retinexformer(**{"n_feat": 40, **overrides})

A test registers a network of its own for its duration with ``with temporary_model(info):`` or
``monkeypatch.setitem(MODELS, info.name, info)``; ``register_model`` warns when a name is taken already.

``constructor`` names the class whose ``__init__`` arguments are the overrides a config may set
(``model.overrides``); ``allowed`` narrows what the signature says (``{"variant": Literal["lol", "exp"]}``,
``{"front_RBs": Field(ge=0)}``). ``build_model`` and the config schema check overrides against both, so a
bad one is one line naming the argument, the value and what is allowed, before anything is built.

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

import contextlib
import functools
import inspect
import typing
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from torch import nn

from lumicap.errors import LumicapError
from lumicap.names import model_key


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
    # The class whose ``__init__`` arguments ``model.overrides`` may set, and what each may be where the
    # signature's type says too little: a ``Literal`` of allowed strings, or a ``pydantic.Field`` with a
    # range. Unlisted ``int`` arguments must be >= 1 and ``float`` ones finite and > 0 (sizes, counts, ratios).
    constructor: type | None = None
    allowed: Mapping[str, Any] = field(default_factory=dict)


# The registry: model name -> ModelInfo. Public so that a test can add its own network for one test
# (monkeypatch.setitem(MODELS, name, info), or temporary_model); anything else goes through the functions.
MODELS: dict[str, ModelInfo] = {}
_REGISTRY = MODELS  # the name tests of lumicap <= 0.1 patched

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


def register_model(
    *,
    paper: str,
    official_params: int | None,
    params_source: str,
    recipe: Recipe,
    constructor: type | None = None,
    allowed: Mapping[str, Any] | None = None,
):
    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        taken = MODELS.get(fn.__name__)
        if taken is not None and _origin(taken.builder) != _origin(fn):  # a module reloaded is no duplicate
            warnings.warn(
                f"register_model: '{fn.__name__}' is registered already (by {_origin(taken.builder)}); "
                f"{_origin(fn)} replaces it",
                stacklevel=2,
            )
        MODELS[fn.__name__] = ModelInfo(
            fn.__name__, fn, paper, official_params, params_source, recipe, constructor, dict(allowed or {})
        )
        return fn

    return decorator


def _origin(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"


@contextlib.contextmanager
def temporary_model(info: ModelInfo) -> Iterator[ModelInfo]:
    """Register ``info`` for the ``with`` block only (a test's own network): ``build_model``, ``list_models``,
    the config schema and inference loading all see it; afterwards the name holds what it held before."""
    _load_all()
    key = model_key(info.name)
    before = MODELS.get(key)
    MODELS[key] = info
    try:
        yield info
    finally:
        if before is None:
            MODELS.pop(key, None)
        else:
            MODELS[key] = before


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
    return [MODELS[name] for name in sorted(MODELS)]


def model_names() -> list[str]:
    _load_all()
    return sorted(MODELS)


def model_info(name: str) -> ModelInfo:
    _load_all()
    key = model_key(name)
    if key not in MODELS:
        raise LumicapError(f"unknown model '{name}'; known models: {', '.join(sorted(MODELS))}")
    return MODELS[key]


def build_model(name: str, **overrides: Any) -> nn.Module:
    info = model_info(name)
    problems = override_problems(info.name, overrides)
    if problems:
        raise LumicapError(f"model '{info.name}': bad override " + "; ".join(p.line() for p in problems))
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


# ------------------------------------------------------------------------------------- overrides


def _default_rule(hint: Any) -> Any:
    """Sizes, counts and ratios: integers >= 1, finite numbers > 0; tuples of them item by item."""
    from typing import Annotated

    from pydantic import BeforeValidator, Field

    if hint is int:
        return Annotated[int, Field(ge=1, le=2**31 - 1)]
    if hint is float:
        return Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        items = (_default_rule(args[0]), ...) if args[-1] is Ellipsis else tuple(_default_rule(a) for a in args)
        as_tuple = BeforeValidator(lambda v: tuple(v) if isinstance(v, list) else v)
        return Annotated[tuple[items], Field(max_length=64), as_tuple]  # type: ignore[valid-type]
    return hint


@functools.lru_cache(maxsize=None)
def overrides_schema(name: str):
    """A pydantic model of ``name``'s overridable constructor arguments (None: the model declares none)."""
    from typing import Annotated

    from pydantic import ConfigDict, Field, create_model
    from pydantic.fields import FieldInfo

    info = model_info(name)
    if info.constructor is None:
        return None
    init = info.constructor.__init__
    hints = typing.get_type_hints(init)
    fields = {}
    for param in list(inspect.signature(init).parameters.values())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        rule = info.allowed.get(param.name)
        hint = hints.get(param.name, Any)
        if isinstance(rule, FieldInfo):
            annotation = Annotated[hint, rule, Field(allow_inf_nan=False)] if hint is float else Annotated[hint, rule]
        else:
            annotation = rule if rule is not None else _default_rule(hint)
        default = None if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
    unknown = set(info.allowed) - set(fields)
    if unknown:  # a typo in a model file, not user input
        raise TypeError(f"{name}: 'allowed' names arguments {sorted(unknown)} that {info.constructor.__name__} lacks")
    strict = ConfigDict(strict=True, extra="forbid")
    return create_model(f"{info.constructor.__name__}Overrides", __config__=strict, **fields)


def override_problems(name: str, overrides: Mapping[str, Any]) -> list:
    """``lumicap.problems.Problem`` per override ``name``'s constructor cannot take (keys relative)."""
    from pydantic import ValidationError

    from lumicap.problems import Problem, problems_from

    schema = overrides_schema(model_info(name).name)
    if schema is None:
        return []
    try:
        schema.model_validate(dict(overrides))
    except ValidationError as exc:
        found = problems_from(schema, exc, dict(overrides))
        what = f"arguments of {model_info(name).name}: "
        return [Problem(p.key, p.kind, what + p.allowed if p.kind == "unknown" else p.allowed, p.value) for p in found]
    return []


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
