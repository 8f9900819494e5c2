"""Typed training configuration: YAML files, a ``base:`` chain, dotted ``key=value`` overrides.

A config file is one experiment's record (BasicSR style)::

    model: {name: retinexformer, overrides: {}}
    data: {root: datasets/LOL-v1, layout: lol-v1, train_split: train, test_split: test, ...}
    stages:
      - {name: main, iterations: 150000, batch_size: 8, patch_size: 128, losses: {l1: 1.0},
         optimizer: {name: adam, lr: 2.0e-4}, scheduler: {name: cosine_restart_cyclic, ...}, mixup: true}
    mfr: {enabled: true, teacher: clipcap-coco, weights: [1.0, 1.0, 1.0], ...}
    train: {seed: 0, amp: none, select_on: val, ...}

``base: other.yaml`` (relative to the file) is loaded first and this file's keys are merged over it
(mappings merge key by key, lists are replaced), which is how an ``mfr`` config is its baseline plus
the MFR block. Overrides address keys with dots; list items by index or, for ``stages``, by name:
``train.amp=bf16``, ``stages.0.iterations=30``, ``stages.main.optimizer.lr=1e-4``. Values are parsed
as YAML (``[1, 2]``, ``{l1: 1.0}``, ``null``).

Every key is checked against the schema below: an unknown key, a wrong type or a value outside the
allowed set raises one ``ConfigError`` line naming the dotted key and what is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from lumicap.errors import ConfigError

# Loss names the engine implements itself (lumicap.losses); a stage whose objective is not
# "enhance" may also name terms its model returns from ``stage_losses``.
BUILTIN_LOSSES = ("l1", "mse", "l2", "charbonnier", "smooth_l1", "ssim", "vgg19", "vgg16", "lowres_smooth_l1")
SCHEDULERS = ("constant", "multistep", "cosine", "cosine_restart_cyclic")
OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass
class ModelConfig:
    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    # Start from these weights (fine-tuning): a .safetensors / .pt state dict or a lumicap checkpoint.
    # Ignored on --resume, where the run's own checkpoint is the state.
    init_weights: str | None = None


@dataclass
class DataConfig:
    root: str
    layout: str = "auto"  # checked against lumicap.data's known layouts when the data is opened
    train_split: str = "train"
    val_split: str | None = None  # None: carve a validation set from train by whole scenes
    test_split: str = "test"
    val_fraction: float = 0.1
    val_seed: int = 0  # the carve is fixed per dataset, independent of the training seed
    cache: bool = True  # decode the training images once and keep them in memory
    num_workers: int = 2
    mixup_alpha: float = 1.2  # Beta(alpha, alpha) for stages with mixup (Retinexformer/BasicSR value)


@dataclass
class OptimizerConfig:
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float | None = None  # sgd only (None: 0)


@dataclass
class SchedulerConfig:
    """One learning-rate schedule; which fields apply depends on ``name`` (see ``_SCHEDULER_FIELDS``)."""

    name: Literal["constant", "multistep", "cosine", "cosine_restart_cyclic"] = "constant"
    milestones: list[int] | None = None  # multistep
    gamma: float | None = None  # multistep
    warmup_iters: int | None = None  # cosine (optional linear warm-up; default 0)
    eta_min: float | None = None  # cosine (default 0)
    t_max: int | None = None  # cosine: length of the cosine after warm-up (default: rest of the stage)
    periods: list[int] | None = None  # cosine_restart_cyclic
    restart_weights: list[float] | None = None  # cosine_restart_cyclic
    eta_mins: list[float] | None = None  # cosine_restart_cyclic


# scheduler name -> (required fields, optional fields); any other field set is an error
_SCHEDULER_FIELDS = {
    "constant": ((), ()),
    "multistep": (("milestones", "gamma"), ()),
    "cosine": ((), ("warmup_iters", "eta_min", "t_max")),
    "cosine_restart_cyclic": (("periods", "restart_weights", "eta_mins"), ()),
}


@dataclass
class StageConfig:
    name: str
    iterations: int
    batch_size: int
    patch_size: int | None  # None: whole images
    losses: dict[str, float]
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    mixup: bool = False
    objective: str = "enhance"  # or a model-defined stage (model.stage_losses)
    mfr: bool = True  # whether the MFR block (when enabled) applies to this stage


@dataclass
class MFRConfig:
    enabled: bool = False
    teacher: str = "clipcap-coco"  # preset name or a local path (file or folder)
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # clip embedding, prefix, GPT-2 hidden states
    distance: Literal["l1", "l2", "cosine"] = "l1"
    gpt_layers: Union[Literal["last", "all"], list[int]] = "last"
    preprocess: Literal["crop", "resize", "tile"] = "crop"
    normalize: bool = True
    caption_conditioned: bool = False
    kl_weight: float = 0.0


@dataclass
class EvalConfig:
    psnr_convention: Literal["float", "uint8"] = "float"  # lumicap.engine.evaluate's PSNR conventions
    lpips: bool = False  # also measure LPIPS on the test split (needs its weights; else reported unavailable)
    gt_mean: bool = False  # also report the GT-mean variants
    val_images: int = 3  # validation images written to TensorBoard each validation


@dataclass
class TrainConfig:
    seed: int = 0
    amp: Literal["none", "bf16", "fp16"] = "none"
    grad_clip: float | None = None  # max global gradient norm
    ema_decay: float | None = None  # e.g. 0.999; validation/test then use the EMA weights
    val_every: int = 1000
    ckpt_every: int = 1000
    log_every: int = 20
    select_on: Literal["val", "test"] = "val"
    select_metric: Literal["psnr", "ssim"] = "psnr"
    max_iters: int | None = None  # cap on the run's total iterations (an experiment budget)
    max_minutes: float | None = None  # wall-clock budget per invocation
    device: Literal["auto", "cpu", "cuda"] = "auto"
    allow_missing_perceptual: bool = False  # drop VGG terms (recorded in the run) when weights are missing
    perceptual_weights: str | None = None  # path to VGG weights; None: lumicap.vgg's resolution
    # Speed options (benchmarks/bench_train_step.py measures them). channels_last: weights and batches in
    # NHWC, which tensor-core convolutions prefer; compile: torch.compile the training forward (the first
    # steps pay for compilation); fused_optimizer: Adam/AdamW in one fused kernel (null: on CUDA only);
    # tf32: TF32 matmuls and convolutions on CUDA (null: PyTorch's defaults; false: strict fp32).
    channels_last: bool = False
    compile: bool = False
    fused_optimizer: bool | None = None
    tf32: bool | None = None


@dataclass
class Config:
    model: ModelConfig
    data: DataConfig
    stages: list[StageConfig]
    mfr: MFRConfig = field(default_factory=MFRConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    output_dir: str = "runs"
    name: str | None = None  # run-folder name; defaults to the config file's stem

    @property
    def total_iterations(self) -> int:
        total = sum(stage.iterations for stage in self.stages)
        return min(total, self.train.max_iters) if self.train.max_iters else total


# --------------------------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` as a float (YAML 1.1 wants ``1.0e-4``; people write both)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def parse_value(text: str) -> Any:
    """Parse a command-line override value as YAML (``bf16`` -> str, ``1e-4`` -> float, ``[1,2]`` -> list)."""
    try:
        return yaml.load(text, Loader=_Loader) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse override value {text!r}: {str(exc).splitlines()[0]}") from None


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:  # a folder, an unreadable or binary file
        raise ConfigError(f"{path}: cannot read the config file ({type(exc).__name__}: {getattr(exc, 'strerror', None) or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def deep_merge(base: dict, update: dict) -> dict:
    """Mappings merge key by key; anything else (lists included) in ``update`` replaces ``base``."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_raw(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """Read a YAML config and its ``base:`` chain into one plain dict (no validation yet)."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: 'base' chain loops back to itself")
    data = _read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: 'base' must be a file name, got {base!r}")
    return deep_merge(load_raw(path.parent / base, _seen + (path,)), data)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``dotted.key=value`` overrides to a plain config dict (returns a new dict)."""
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. train.amp=bf16)")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: empty key segment")
        node: Any = data
        for depth, part in enumerate(parts):
            here = ".".join(parts[: depth + 1])
            last = depth == len(parts) - 1
            if isinstance(node, list):
                index = _list_index(node, part, here)
                if last:
                    node[index] = parse_value(text)
                else:
                    node = node[index]
            elif isinstance(node, dict):
                if last:
                    node[part] = parse_value(text)
                else:
                    if node.get(part) is None:
                        node[part] = {}
                    node = node[part]
            else:
                raise ConfigError(f"override {item!r}: '{'.'.join(parts[:depth])}' is a value, not a section")
    return data


def _list_index(items: list, part: str, where: str) -> int:
    if re.fullmatch(r"-?\d+", part):
        index = int(part)
        if not -len(items) <= index < len(items):
            raise ConfigError(f"override key '{where}': index {index} out of range (list has {len(items)} items)")
        return index
    names = [item.get("name") if isinstance(item, dict) else None for item in items]
    if part in names:
        return names.index(part)
    raise ConfigError(f"override key '{where}': no item named '{part}' (items: {', '.join(map(str, names))})")


# ------------------------------------------------------------------------------------ validation


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + "|".join("null" if a is None else str(a) for a in typing.get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if origin in (list, tuple, dict):
        args = ", ".join(_type_name(a) for a in typing.get_args(hint) if a is not Ellipsis)
        return f"{origin.__name__}[{args}]"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    return getattr(hint, "__name__", str(hint))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _convert(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against the type ``hint``; returns it converted (lists -> tuples, ints -> floats)."""
    origin = typing.get_origin(hint)
    bad = ConfigError(f"{where}: expected {_type_name(hint)}, got {_show(value)}")
    if hint is Any:
        return value
    if hint is type(None):
        if value is None:
            return None
        raise bad
    if origin is Literal:
        if value in typing.get_args(hint) and not isinstance(value, bool):
            return value
        raise bad
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(hint):
            try:
                return _convert(value, arg, where)
            except ConfigError:
                continue
        raise bad
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise bad
        return _build_dataclass(hint, value, where)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad
    if hint is str:
        if isinstance(value, str):
            return value
        raise bad
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise bad
        (item,) = typing.get_args(hint)
        return [_convert(v, item, f"{where}.{i}") for i, v in enumerate(value)]
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise bad
        return tuple(_convert(v, a, f"{where}.{i}") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, dict):
            raise bad
        key_type, value_type = typing.get_args(hint)
        return {
            _convert(k, key_type, f"{where}.{k}"): _convert(v, value_type, f"{where}.{k}") for k, v in value.items()
        }
    raise TypeError(f"config schema uses an unsupported type {hint!r} at {where}")  # a bug, not user input


def _build_dataclass(cls: type, data: dict, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{where}." if where else ""
    for key in data:
        if key not in fields:
            raise ConfigError(f"unknown key '{prefix}{key}'; allowed: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], f"{prefix}{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key '{prefix}{name}' ({_type_name(hints[name])})")
    return cls(**kwargs)


def _check_values(cfg: Config) -> None:
    def need(cond: bool, message: str) -> None:
        if not cond:
            raise ConfigError(message)

    need(bool(cfg.model.name), "model.name: must not be empty")
    need(
        cfg.model.init_weights is None or Path(cfg.model.init_weights).expanduser().is_file(),
        f"model.init_weights: no such file {cfg.model.init_weights}",
    )
    need(0.0 <= cfg.data.val_fraction < 1.0, f"data.val_fraction: must be in [0, 1), got {cfg.data.val_fraction}")
    need(cfg.data.num_workers >= 0, f"data.num_workers: must be >= 0, got {cfg.data.num_workers}")
    need(cfg.data.mixup_alpha > 0, f"data.mixup_alpha: must be > 0, got {cfg.data.mixup_alpha}")
    need(len(cfg.stages) > 0, "stages: at least one stage is required")
    names = [s.name for s in cfg.stages]
    need(len(set(names)) == len(names), f"stages: stage names must be unique, got {names}")
    for i, stage in enumerate(cfg.stages):
        at = f"stages.{i}"
        need(stage.iterations >= 1, f"{at}.iterations: must be >= 1, got {stage.iterations}")
        need(stage.batch_size >= 1, f"{at}.batch_size: must be >= 1, got {stage.batch_size}")
        need(
            stage.patch_size is None or stage.patch_size >= 8,
            f"{at}.patch_size: must be >= 8 or null (whole images), got {stage.patch_size}",
        )
        need(bool(stage.losses), f"{at}.losses: at least one loss term is required")
        for loss, weight in stage.losses.items():
            need(weight >= 0, f"{at}.losses.{loss}: weight must be >= 0, got {weight}")
            if stage.objective == "enhance":
                need(
                    loss in BUILTIN_LOSSES,
                    f"unknown loss '{at}.losses.{loss}'; allowed: {', '.join(BUILTIN_LOSSES)}",
                )
        opt = stage.optimizer
        need(opt.lr > 0, f"{at}.optimizer.lr: must be > 0, got {opt.lr}")
        need(opt.weight_decay >= 0, f"{at}.optimizer.weight_decay: must be >= 0, got {opt.weight_decay}")
        need(all(0 <= b < 1 for b in opt.betas), f"{at}.optimizer.betas: each must be in [0, 1), got {opt.betas}")
        _check_scheduler(stage, at)
    mfr = cfg.mfr
    need(all(w >= 0 for w in mfr.weights), f"mfr.weights: each must be >= 0, got {list(mfr.weights)}")
    need(mfr.kl_weight >= 0, f"mfr.kl_weight: must be >= 0, got {mfr.kl_weight}")
    need(bool(mfr.teacher), "mfr.teacher: must name a preset or a path")
    t = cfg.train
    need(t.grad_clip is None or t.grad_clip > 0, f"train.grad_clip: must be > 0 or null, got {t.grad_clip}")
    need(t.ema_decay is None or 0 < t.ema_decay < 1, f"train.ema_decay: must be in (0, 1) or null, got {t.ema_decay}")
    for key in ("val_every", "ckpt_every", "log_every"):
        need(getattr(t, key) >= 1, f"train.{key}: must be >= 1, got {getattr(t, key)}")
    need(t.max_iters is None or t.max_iters >= 1, f"train.max_iters: must be >= 1 or null, got {t.max_iters}")
    need(t.max_minutes is None or t.max_minutes > 0, f"train.max_minutes: must be > 0 or null, got {t.max_minutes}")
    need(cfg.eval.val_images >= 0, f"eval.val_images: must be >= 0, got {cfg.eval.val_images}")
    need(bool(cfg.output_dir), "output_dir: must not be empty")
    if cfg.name is not None:
        need(
            re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", cfg.name) is not None,
            f"name: must be a plain folder name (letters, digits, . _ + -), got {cfg.name!r}",
        )


def _check_scheduler(stage: StageConfig, at: str) -> None:
    sch = stage.scheduler
    required, optional = _SCHEDULER_FIELDS[sch.name]
    for f in dataclasses.fields(SchedulerConfig):
        if f.name == "name":
            continue
        value = getattr(sch, f.name)
        if f.name in required and value is None:
            raise ConfigError(f"{at}.scheduler.{f.name}: required by scheduler '{sch.name}'")
        if f.name not in required + optional and value is not None:
            allowed = ", ".join(required + optional) or "no other keys"
            raise ConfigError(f"{at}.scheduler.{f.name}: not used by scheduler '{sch.name}' (it takes {allowed})")
    if sch.name == "multistep":
        if sorted(sch.milestones) != sch.milestones or any(m < 1 for m in sch.milestones):
            raise ConfigError(f"{at}.scheduler.milestones: must be increasing positive integers, got {sch.milestones}")
        if not 0 < sch.gamma <= 1:
            raise ConfigError(f"{at}.scheduler.gamma: must be in (0, 1], got {sch.gamma}")
    elif sch.name == "cosine":
        if sch.warmup_iters is not None and sch.warmup_iters < 0:
            raise ConfigError(f"{at}.scheduler.warmup_iters: must be >= 0, got {sch.warmup_iters}")
        if sch.eta_min is not None and sch.eta_min < 0:
            raise ConfigError(f"{at}.scheduler.eta_min: must be >= 0, got {sch.eta_min}")
        if sch.t_max is not None and sch.t_max < 1:
            raise ConfigError(f"{at}.scheduler.t_max: must be >= 1, got {sch.t_max}")
    elif sch.name == "cosine_restart_cyclic":
        n = len(sch.periods)
        if n == 0 or any(p < 1 for p in sch.periods):
            raise ConfigError(f"{at}.scheduler.periods: must be a non-empty list of positive integers, got {sch.periods}")
        if len(sch.restart_weights) != n or len(sch.eta_mins) != n:
            raise ConfigError(
                f"{at}.scheduler: periods, restart_weights and eta_mins must have the same length "
                f"(got {n}, {len(sch.restart_weights)}, {len(sch.eta_mins)})"
            )
        if sum(sch.periods) < stage.iterations:
            raise ConfigError(
                f"{at}.scheduler.periods: sum {sum(sch.periods)} is shorter than the stage's "
                f"{stage.iterations} iterations"
            )


# ------------------------------------------------------------------------------------- public API


def from_dict(data: dict, name: str | None = None) -> Config:
    """Validate a plain dict into a ``Config``; ``name`` fills ``Config.name`` when the dict has none."""
    if not isinstance(data, dict):
        raise ConfigError(f"config must be a mapping, got {type(data).__name__}")
    cfg = _build_dataclass(Config, data, "")
    if cfg.name is None and name is not None:
        cfg.name = name
    _check_values(cfg)
    return cfg


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a YAML config (with its ``base:`` chain), apply dotted overrides, and validate it."""
    path = Path(path)
    data = apply_overrides(load_raw(path), list(overrides))
    return from_dict(data, name=path.stem)


def to_dict(cfg: Config) -> dict:
    """Plain dict of built-in types only (tuples become lists): for YAML files and checkpoints."""

    def plain(value: Any) -> Any:
        if isinstance(value, (OptimizerConfig, SchedulerConfig)):  # unset optional fields are noise in a record
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if getattr(value, f.name) is not None}
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(cfg)


class _Dumper(yaml.SafeDumper):
    """Sections as indented blocks, lists of numbers on one line: a config that reads as a record."""


_Dumper.add_representer(
    list,
    lambda d, v: d.represent_sequence(
        "tag:yaml.org,2002:seq", v, flow_style=all(not isinstance(x, (dict, list)) for x in v)
    ),
)
_Dumper.add_representer(dict, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(), flow_style=False))


def dump_yaml(cfg: Config | dict) -> str:
    data = to_dict(cfg) if isinstance(cfg, Config) else cfg
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=110)
