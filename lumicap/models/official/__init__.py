"""Official pretrained checkpoints of the baselines, read into lumicap's networks.

Each baseline's authors save weights in their own layout. One small module per model here holds that
model's **key map** (a list of ``Rule``\\ s: official key pattern -> lumicap key, an optional layout
transform, or a documented reason to leave the tensor out) and its docstring says where the facts come
from. The steps every model shares live in this file:

1. **container**: ``{"params": ...}`` / ``{"params_ema": ...}`` (BasicSR), ``{"state_dict": ...}``
   (LLFormer, MIRNet), ``{"model": ...}`` or a bare state dict (``lumicap.weights.load_state_dict``);
2. **wrapper prefixes**: ``module.`` (``nn.DataParallel``) and ``_orig_mod.`` (``torch.compile``) when
   every key carries them;
3. the model's **key map** (renames, layout transforms, tensors the official forward never uses);
4. **tied tensors**: official keys that alias one tensor (MIRNet's shared modules) must agree, and a
   lumicap parameter registered under several names gets the one tensor under each;
5. **shape adaptation**: a tensor whose shape differs from the model's only by size-1 axes is reshaped
   (a 1x1 conv's ``(out, in, 1, 1)`` <-> a linear layer's ``(out, in)``, ``(1, C, 1, 1)`` <-> ``(C,)``), so
   a key map keeps working when a layer changes between those equivalent forms.

Detection is by content: ``lumicap.inference.loading`` first tries the file as a lumicap state dict and
then as the model's official layout, and keeps whichever fits; nothing needs a flag. Official tensors
deliberately left out are reported (``Conversion.note``), never dropped silently; any other key the map
does not know makes the file not fit.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from lumicap.errors import WeightsError
from lumicap.names import model_key

WRAPPER_PREFIXES = ("module.", "_orig_mod.")

# Registry model name -> module in this package holding its key map.
_FORMAT_MODULES = {
    "retinexformer": "retinexformer",
    "iat": "iat",
    "snr_aware": "snr_aware",
    "llformer": "llformer",
    "uhdfour": "uhdfour",
    "mirnet": "mirnet",
    "retinexnet": "retinexnet",
}

Target = str | Callable[[re.Match, nn.Module], str] | None


@dataclass(frozen=True)
class Rule:
    """``pattern`` (a full match of an official key) -> ``target`` (a lumicap key, ``\\1``-style groups
    allowed, or a function of the match and the model), with ``transform`` applied to the tensor. A
    ``target`` of ``None`` leaves the tensor out for the stated ``reason``."""

    pattern: str
    target: Target
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    reason: str = ""

    def compiled(self) -> re.Pattern:
        return _compile(self.pattern)


_PATTERNS: dict[str, re.Pattern] = {}


def _compile(pattern: str) -> re.Pattern:
    if pattern not in _PATTERNS:
        _PATTERNS[pattern] = re.compile(pattern)
    return _PATTERNS[pattern]


def keep(pattern: str = r"(.+)") -> Rule:
    """Official and lumicap keys are the same."""
    return Rule(pattern, r"\1")


def ignore(pattern: str, reason: str) -> Rule:
    return Rule(pattern, None, reason=reason)


@dataclass(frozen=True)
class OfficialFormat:
    """How one model's official checkpoints are laid out (see the model's module in this package)."""

    model: str
    description: str  # e.g. "official LLFormer checkpoint (TaoWangzj/LLFormer, model/LLFormer.py)"
    rules: tuple[Rule, ...]
    check: Callable[[dict[str, torch.Tensor]], None] | None = None  # validates tensors the rules leave out


@dataclass
class Conversion:
    """An official state dict in lumicap's key names, and what was deliberately left out."""

    state: dict[str, torch.Tensor]
    description: str
    ignored: dict[str, list[str]] = field(default_factory=dict)  # reason -> official keys
    unknown: list[str] = field(default_factory=list)  # official keys no rule knows

    @property
    def ignored_keys(self) -> list[str]:
        return [key for keys in self.ignored.values() for key in keys]

    def note(self) -> str | None:
        """One line naming the official tensors that were not used, or None."""
        if not self.ignored:
            return None
        parts = [f"{len(keys)} {reason} (e.g. {keys[0]})" for reason, keys in self.ignored.items()]
        return f"read as the {self.description}; left out: " + "; ".join(parts)


def official_format(model_name: str) -> OfficialFormat | None:
    """The official layout of a registry model, or None when the model has no official checkpoints."""
    module = _FORMAT_MODULES.get(model_key(model_name))
    if module is None:
        return None
    return importlib.import_module(f"lumicap.models.official.{module}").FORMAT


def strip_wrapper_prefixes(state: dict[str, torch.Tensor], expected: set[str] | None = None) -> dict[str, torch.Tensor]:
    """Drop ``module.`` / ``_orig_mod.`` when every key has it (and the model's own keys do not)."""
    for prefix in WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            if expected is not None and any(k.startswith(prefix) for k in expected):
                continue
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def convert(fmt: OfficialFormat, state: dict[str, torch.Tensor], model: nn.Module) -> Conversion:
    """Apply ``fmt``'s key map to an (unwrapped) official state dict; ``model`` is the network it is for."""
    state = strip_wrapper_prefixes(state)
    rules = [(rule, rule.compiled()) for rule in fmt.rules]
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    conversion = Conversion(out, fmt.description)
    for key, tensor in state.items():
        match = None
        for rule, pattern in rules:
            match = pattern.fullmatch(key)
            if match:
                break
        if match is None:
            conversion.unknown.append(key)
            continue
        if rule.target is None:
            conversion.ignored.setdefault(rule.reason, []).append(key)
            continue
        target = rule.target(match, model) if callable(rule.target) else match.expand(rule.target)
        value = rule.transform(tensor) if rule.transform is not None else tensor
        if target in out and out[target] is value:  # one stored tensor under several official names
            continue
        if target in out:
            # Several official keys for one lumicap tensor: the official model ties them (one module
            # registered under several names); a file where they differ was not written by that model.
            if out[target].shape != value.shape or not torch.equal(out[target], value):
                raise WeightsError(
                    f"{key} and {origin[target]} are one tensor in the official model ({target} here) but "
                    f"differ in this file"
                )
            continue
        out[target], origin[target] = value, key
    if fmt.check is not None:
        fmt.check(state)
    return conversion


def fit_to_model(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Steps 4 and 5: fill a parameter's other names from the one present, and reshape tensors that
    differ from the model's only by size-1 axes. Returns a new dict; what still does not fit is left
    for the caller to report."""
    expected = model.state_dict(keep_vars=True)
    state = dict(state)
    names_of: dict[int, list[str]] = {}
    for key, tensor in expected.items():
        names_of.setdefault(id(tensor), []).append(key)
    for names in names_of.values():
        present = [n for n in names if n in state]
        if present and len(names) > 1:
            for name in names:
                state.setdefault(name, state[present[0]])
    for key, tensor in expected.items():
        value = state.get(key)
        if value is None or tuple(value.shape) == tuple(tensor.shape):
            continue
        if value.numel() == tensor.numel() and _without_ones(value.shape) == _without_ones(tensor.shape):
            state[key] = value.reshape(tensor.shape)
    return state


def _without_ones(shape) -> tuple[int, ...]:
    return tuple(s for s in shape if s != 1)


def fit_problems(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> tuple[list, list, list]:
    """(missing, unexpected, shape-mismatched) keys of ``state`` against a model's ``state_dict()``."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    return missing, unexpected, mismatched


# ------------------------------------------------------------------------------------- layout transforms


def transpose_kernel_hw(tensor: torch.Tensor) -> torch.Tensor:
    """A conv kernel applied to the transposed image: swap its height and width axes."""
    return tensor.transpose(-1, -2).contiguous()


def transposed_conv_to_conv(tensor: torch.Tensor) -> torch.Tensor:
    """A 1x1 ``ConvTranspose2d`` weight ``(in, out, 1, 1)`` as the equal ``Conv2d`` weight ``(out, in, 1, 1)``."""
    return tensor.transpose(0, 1).contiguous()


def tf_kernel_to_torch(tensor: torch.Tensor) -> torch.Tensor:
    """TensorFlow conv kernel ``(kh, kw, in, out)`` -> PyTorch ``(out, in, kh, kw)``."""
    return tensor.permute(3, 2, 0, 1).contiguous()
