"""Turning a schema's validation errors into one line per problem: dotted key, value, what is allowed.

    stages.0.optimizer.eps: got -1.0; allowed: a finite number in (0, 1]
    train.lerning_rate: unknown key; allowed: seed, amp, grad_clip, ... (did you mean ...?)

Values are shown through ``brief``, which stops after 80 characters without building the full text:
a value reached through YAML aliases may be large, and an error message must never cost more than
the value's first few items.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Iterator, Literal, Union

import annotated_types as at
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

SHOWN_CHARS = 80
CUSTOM = "lumicap"  # error type of the schema's own cross-field checks (ctx: allowed, kind)


@dataclass(frozen=True)
class Problem:
    key: str  # dotted key ("stages.0.optimizer.eps"), "" for the document itself
    kind: str  # "value" | "unknown" | "missing"
    allowed: str
    value: Any = None

    def line(self) -> str:
        key = self.key or "(top level)"
        if self.kind == "unknown":
            return f"{key}: unknown key (given {brief(self.value)}); allowed: {self.allowed}"
        if self.kind == "missing":
            return f"{key}: missing required key ({self.allowed})"
        return f"{key}: got {brief(self.value)}; allowed: {self.allowed}"


# ------------------------------------------------------------------------------------------- values


def brief(value: Any, limit: int = SHOWN_CHARS) -> str:
    """``repr``-like text of ``value`` cut to ``limit`` characters; costs O(limit), not O(size of value)."""
    out, size = [], 0
    for piece in _pieces(value, limit):
        out.append(piece)
        size += len(piece)
        if size > limit:
            return "".join(out)[: limit - 3] + "..."
    return "".join(out)


def _pieces(value: Any, limit: int) -> Iterator[str]:
    if isinstance(value, dict):
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            yield ", " if i else ""
            yield from _pieces(key, limit)
            yield ": "
            yield from _pieces(item, limit)
        yield "}"
    elif isinstance(value, (list, tuple)):
        yield "[" if isinstance(value, list) else "("
        for i, item in enumerate(value):
            yield ", " if i else ""
            yield from _pieces(item, limit)
        yield "]" if isinstance(value, list) else ")"
    elif isinstance(value, str):
        yield repr(value[: limit + 1])
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * limit:
        yield f"<an integer of {value.bit_length()} bits>"  # str() of a huge int is slow, or refused
    elif value is None or isinstance(value, (bool, int, float)):
        yield repr(value)
    else:
        yield f"<{type(value).__name__}>"


# --------------------------------------------------------------------------------- allowed values


def _unwrap(hint: Any, metadata: list) -> tuple[Any, list]:
    """Strip ``Annotated`` layers, collecting their constraints."""
    while typing.get_origin(hint) is Annotated:
        hint, *extra = typing.get_args(hint)
        for item in extra:
            metadata = metadata + (list(item.metadata) if isinstance(item, FieldInfo) else [item])
    return hint, metadata


def _optional(hint: Any) -> tuple[Any, bool]:
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) < len(typing.get_args(hint)):
            return (args[0] if len(args) == 1 else Union[tuple(args)]), True
    return hint, False


def _number_range(metadata: list, integer: bool) -> str:
    bounds = {}
    for item in metadata:
        for name in ("gt", "ge", "lt", "le"):
            if isinstance(item, getattr(at, name.capitalize())):
                bounds[name] = getattr(item, name)
        if isinstance(item, at.MultipleOf):
            bounds["multiple_of"] = item.multiple_of
    low = ("ge", bounds["ge"]) if "ge" in bounds else ("gt", bounds["gt"]) if "gt" in bounds else None
    high = ("le", bounds["le"]) if "le" in bounds else ("lt", bounds["lt"]) if "lt" in bounds else None
    def show(v: float) -> str:
        return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"

    if low and high:
        if integer and low[0] == "ge" and high[0] == "le":
            text = f" in {low[1]}..{high[1]}"
        else:
            left, right = "[" if low[0] == "ge" else "(", "]" if high[0] == "le" else ")"
            text = f" in {left}{show(low[1])}, {show(high[1])}{right}"
    elif low:
        text = f" {'>=' if low[0] == 'ge' else '>'} {show(low[1])}"
    elif high:
        text = f" {'<=' if high[0] == 'le' else '<'} {show(high[1])}"
    else:
        text = ""
    if "multiple_of" in bounds:
        text += f", a multiple of {bounds['multiple_of']}"
    return text


def _length(metadata: list) -> str:
    for item in metadata:
        if isinstance(item, at.MaxLen):
            return f" (at most {item.max_length} items)"
    return ""


def describe(hint: Any, metadata: list | None = None) -> str:
    """What a type annotation with its constraints allows, in words."""
    hint, metadata = _unwrap(hint, list(metadata or []))
    hint, nullable = _optional(hint)
    hint, metadata = _unwrap(hint, metadata)
    origin = typing.get_origin(hint)
    if origin is Literal:
        text = "one of " + ", ".join(str(a) for a in typing.get_args(hint))
    elif origin in (Union, types.UnionType):
        text = " or ".join(describe(a) for a in typing.get_args(hint))
    elif hint is bool:
        text = "true or false"
    elif hint is int:
        text = "an integer" + _number_range(metadata, integer=True)
    elif hint is float:
        finite = any(getattr(m, "allow_inf_nan", True) is False for m in metadata)
        text = ("a finite number" if finite else "a number") + _number_range(metadata, integer=False)
    elif hint is str:
        pattern = next((m.pattern for m in metadata if getattr(m, "pattern", None)), None)
        if pattern:
            text = f"a string matching {pattern}"
        else:
            non_empty = any(isinstance(m, at.MinLen) and m.min_length > 0 for m in metadata)
            text = "a non-empty string" if non_empty else "a string"
    elif origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            text = f"a list{_length(metadata)}, each item {describe(args[0])}"
        elif len(set(map(str, args))) == 1:
            text = f"a list of {len(args)} items, each {describe(args[0])}"
        else:
            text = f"a list of {len(args)} items: " + "; ".join(describe(a) for a in args)
    elif origin is list:
        text = f"a list{_length(metadata)}, each item {describe(typing.get_args(hint)[0])}"
    elif origin is dict:
        text = f"a mapping{_length(metadata)}, each value {describe(typing.get_args(hint)[1])}"
    elif isinstance(hint, type) and issubclass(hint, BaseModel):
        text = "a mapping with keys " + ", ".join(hint.model_fields)
    elif hint is Any:
        text = "any value"
    else:
        text = getattr(hint, "__name__", str(hint))
    return text + (" or null" if nullable else "")


# ------------------------------------------------------------------------------ validation errors


def _step(hint: Any, metadata: list, part: Any) -> tuple[Any, list] | None:
    """The annotation one location step below ``hint`` (None: ``part`` is not a step of this type)."""
    hint, metadata = _unwrap(hint, metadata)
    hint, _ = _optional(hint)
    hint, metadata = _unwrap(hint, metadata)
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        if part in hint.model_fields:
            info = hint.model_fields[part]
            return info.annotation, list(info.metadata)
        return None
    if origin is list and isinstance(part, int):
        return typing.get_args(hint)[0], []
    if origin is tuple and isinstance(part, int):
        args = typing.get_args(hint)
        return (args[0] if args[-1] is Ellipsis else args[min(part, len(args) - 1)]), []
    if origin is dict:
        return typing.get_args(hint)[1], []
    return None  # a union member's tag, or a key of an unknown section: stop here


def _model_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    hint, metadata = root, []
    for part in loc:
        step = _step(hint, metadata, part)
        if step is None:
            return None
        hint, metadata = step
    hint, metadata = _unwrap(hint, metadata)
    hint, _ = _optional(hint)
    hint, _ = _unwrap(hint, metadata)
    return hint if isinstance(hint, type) and issubclass(hint, BaseModel) else None


def dotted(loc: tuple) -> str:
    return ".".join(str(part) for part in loc)


def unknown_key_help(name: Any, allowed: list[str]) -> str:
    text = ", ".join(allowed) if allowed else "no keys"
    close = difflib.get_close_matches(str(name), allowed, n=1) if isinstance(name, str) else []
    return text + (f" (did you mean {close[0]}?)" if close else "")


def problems_from(root: type[BaseModel], error: ValidationError, data: Any = None) -> list[Problem]:
    """One ``Problem`` per distinct key of ``error``; ``root`` is the model that validated ``data``."""
    problems: dict[str, Problem] = {}
    for item in error.errors(include_url=False):
        loc, kind = tuple(item["loc"]), item["type"]
        if kind == "missing" and loc and isinstance(loc[-1], int):  # a tuple too short: the tuple is wrong
            loc, kind = loc[:-1], "too_short"
        if kind == CUSTOM:
            ctx = item.get("ctx") or {}
            problem = Problem(dotted(loc), ctx.get("kind", "value"), ctx.get("allowed", item["msg"]), item.get("input"))
        elif kind == "extra_forbidden":
            owner = _model_at(root, loc[:-1])
            allowed = list(owner.model_fields) if owner else []
            problem = Problem(dotted(loc), "unknown", unknown_key_help(loc[-1], allowed), item.get("input"))
        else:
            hint, metadata, used = root, [], 0
            for part in loc:
                step = _step(hint, metadata, part)
                if step is None:
                    break
                hint, metadata = step
                used += 1
            key = dotted(loc[:used])
            if kind == "missing":
                problem = Problem(key, "missing", describe(hint, metadata))
            else:
                value = _lookup(data, loc[:used]) if data is not None else item.get("input")
                problem = Problem(key, "value", describe(hint, metadata), value)
        problems.setdefault(problem.key, problem)
    return list(problems.values())


def _lookup(data: Any, loc: tuple) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return "(not shown)"
    return data
