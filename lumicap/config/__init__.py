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
as YAML (``[1, 2]``, ``{l1: 1.0}``, ``null``, ``1e-4``).

The schema (``lumicap.config.schema``, pydantic) checks every key, type and range, and model overrides
against the network's constructor; a document's problems are raised together as one ``ConfigError``
with one line per problem (dotted key, the value cut to 80 characters, what is allowed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from lumicap.config.schema import (
    BUILTIN_LOSSES,
    LOSS_MIN_PATCH,
    OPTIMIZERS,
    SCHEDULER_FIELDS,
    SCHEDULERS,
    Config,
    DataConfig,
    EvalConfig,
    MFRConfig,
    ModelConfig,
    OptimizerConfig,
    SchedulerConfig,
    StageConfig,
    TrainConfig,
    validate,
)
from lumicap.config.yamlio import apply_overrides, deep_merge, dump_plain, load_raw, parse_value
from lumicap.errors import ConfigError

__all__ = [
    "BUILTIN_LOSSES", "LOSS_MIN_PATCH", "OPTIMIZERS", "SCHEDULERS", "SCHEDULER_FIELDS", "Config", "ConfigError",
    "DataConfig", "EvalConfig", "MFRConfig", "ModelConfig", "OptimizerConfig", "SchedulerConfig", "StageConfig",
    "TrainConfig", "apply_overrides", "deep_merge", "dump_yaml", "from_dict", "json_schema", "load_config",
    "load_raw", "parse_value", "resolved_yaml", "to_dict",
]


def from_dict(data: dict, name: str | None = None, source: str | Path | None = None) -> Config:
    """Validate a plain dict into a ``Config``; ``name`` fills ``Config.name`` when the dict has none.

    Every problem is reported at once, one line each, prefixed with ``source`` (the file) when given."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source or 'config'}: top level must be a mapping, got {type(data).__name__}")
    cfg, problems = validate(data)
    if problems:
        prefix = f"{source}: " if source is not None else ""
        raise ConfigError(*(prefix + p.line() for p in problems))
    if cfg.name is None and name is not None:
        cfg.name = name
    return cfg


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a YAML config (with its ``base:`` chain), apply dotted overrides, and validate it."""
    path = Path(path)
    data = apply_overrides(load_raw(path), list(overrides))
    return from_dict(data, name=path.stem, source=path)


def to_dict(cfg: Config) -> dict:
    """Plain dict of built-in types only (tuples become lists): for YAML files and checkpoints."""

    def plain(value: Any) -> Any:
        if isinstance(value, BaseModel):
            # Unset optional optimizer/scheduler fields are noise in a record (and were never written).
            skip_none = isinstance(value, (OptimizerConfig, SchedulerConfig))
            return {
                key: plain(getattr(value, key))
                for key in type(value).model_fields
                if not (skip_none and getattr(value, key) is None)
            }
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(cfg)


def dump_yaml(cfg: Config | dict) -> str:
    return dump_plain(to_dict(cfg) if isinstance(cfg, Config) else cfg)


def resolved_yaml(cfg: Config) -> str:
    """A resolved config as a person reads it (``lumicap config show``, a run's ``config.yaml``).

    Two levels switch MFR: ``mfr.enabled`` (the run uses the teacher at all) and each stage's ``mfr`` (which
    stages it applies to, when enabled). When ``mfr.enabled`` is false, each stage's ``mfr: true`` line says
    so in a comment, so the config does not read as MFR on. (Generated configs stay plain ``dump_yaml``: a
    baseline's stages are the ones its ``-mfr`` file switches on.)"""
    data = to_dict(cfg)
    text = dump_plain(data)
    mfr = data.get("mfr")
    if isinstance(mfr, dict) and mfr.get("enabled") is False:
        text = _mark_inactive_stage_mfr(text)
    return text


INACTIVE_STAGE_MFR = "  # inactive: mfr.enabled is false"


def _mark_inactive_stage_mfr(text: str) -> str:
    lines, in_stages = [], False
    for line in text.splitlines():
        if line and not line.startswith((" ", "-")):
            in_stages = line.startswith("stages:")
        elif in_stages and line in ("  mfr: true", "- mfr: true"):
            line += INACTIVE_STAGE_MFR
        lines.append(line)
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def json_schema() -> dict:
    """JSON Schema of a config *file* (editors: completion, hover text, inline errors).

    A file may take any section or key from its ``base:`` file, so only stage items (lists are replaced,
    never merged) keep their required keys. ``model.name`` lists the registered networks and
    ``model.overrides`` each network's constructor arguments."""
    from lumicap.models.registry import model_names, overrides_schema

    schema = Config.model_json_schema()
    defs = schema.setdefault("$defs", {})
    schema.pop("required", None)
    for name in ("ModelConfig", "DataConfig"):
        defs[name].pop("required", None)
    schema["title"] = "lumicap experiment config"
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"  # what the YAML language server reads
    schema["properties"] = {
        "base": {
            "type": "string",
            "description": "config file this one extends (relative path); its keys merge under these",
        },
        **schema["properties"],
    }
    model = defs["ModelConfig"]
    names = model_names()
    model["properties"]["name"] = {**model["properties"]["name"], "enum": names}
    branches = []
    for name in names:
        overrides = overrides_schema(name)
        if overrides is None:
            continue
        args = overrides.model_json_schema()
        for prop in args.get("properties", {}).values():
            prop.pop("title", None)
        branches.append({
            "if": {"properties": {"name": {"const": name}}, "required": ["name"]},
            "then": {"properties": {"overrides": {
                "type": "object",
                "description": f"constructor arguments of {name}",
                "properties": args.get("properties", {}),
                "additionalProperties": False,
                **({"$defs": args["$defs"]} if "$defs" in args else {}),
            }}},
        })
    model["allOf"] = branches
    return _draft7(schema)


def _draft7(node: Any) -> Any:
    """pydantic writes tuples as 2020-12 ``prefixItems``; draft 7 spells them as an ``items`` list."""
    if isinstance(node, dict):
        node = {key: _draft7(value) for key, value in node.items()}
        if "prefixItems" in node:
            node["items"] = node.pop("prefixItems")
        return node
    if isinstance(node, list):
        return [_draft7(value) for value in node]
    return node
