"""Reading weight files safely: safetensors, or torch pickles with ``weights_only=True`` (no pickled code runs).

- ``read_torch_file``: the one ``torch.load`` of lumicap (a test keeps it that way), so a refused or damaged
  file is always the same one line;
- ``load_state_dict``: the one state-dict reader (safetensors or torch pickle, wrapped or not);
- ``read_training_checkpoint``: a lumicap training checkpoint, checked by the one validator that resuming a
  run (``lumicap.engine``) and loading a model for inference (``lumicap.inference``) share.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lumicap.errors import WeightsError, shown
from lumicap.files import not_regular

# What lumicap.engine writes (its keys: lumicap.engine.checkpoint); every checkpoint lumicap wrote has it.
TRAINING_CHECKPOINT_FORMAT = "lumicap-train-v1"


def read_torch_file(path: str | os.PathLike, map_location: Any = "cpu", context: str | None = None) -> Any:
    """``torch.load(path, weights_only=True)``; a file that is refused, truncated or not a torch file raises
    one ``WeightsError`` line: ``"<context or path>: <why>"`` (``torch_load_failure``)."""
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated file, foreign pickle, ...
        raise WeightsError(f"{context or shown(path)}: {torch_load_failure(exc)}") from None


def read_training_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """The dict of a lumicap training checkpoint; anything else is one ``WeightsError`` line."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(not_regular(path) or f"{shown(path)}: checkpoint not found")
    raw = read_torch_file(path, map_location, context=f"cannot load checkpoint {shown(path)}")
    problem = training_checkpoint_problem(raw)
    if problem is not None:
        raise WeightsError(f"{shown(path)}: {problem}")
    return raw


def training_checkpoint_problem(raw: Any) -> str | None:
    """None when ``raw`` (a loaded file) is a lumicap training checkpoint, else what it is instead."""
    if isinstance(raw, dict) and raw.get("format") == TRAINING_CHECKPOINT_FORMAT:
        return None
    found = (
        f"keys {', '.join(sorted(map(str, raw))[:6]) or 'none'}" if isinstance(raw, dict) else f"a {type(raw).__name__}"
    )
    return (
        f"not a lumicap training checkpoint (format {TRAINING_CHECKPOINT_FORMAT!r} expected, found {found}); "
        "a bare state dict loads with --model NAME --weights FILE"
    )


def load_state_dict(path: str | os.PathLike) -> dict:
    """Load a state dict safely: safetensors, or a torch pickle with ``weights_only=True``.

    Pickles that would run code, truncated files and non-dict payloads raise one-line ``WeightsError``.
    A checkpoint that wraps its weights under ``state_dict``/``model``/``params`` is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(not_regular(path) or f"{path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise WeightsError(f"{path}: not a readable safetensors file ({_first_line(exc)})") from None
    obj = read_torch_file(path)
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "params", "params_ema"):
            if key in obj and isinstance(obj[key], dict) and obj[key] and all(isinstance(k, str) for k in obj[key]):
                inner = obj[key]
                if all(hasattr(v, "shape") for v in inner.values()):
                    return inner
        return obj
    raise WeightsError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")


def torch_load_failure(exc: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` failed, as a whole clause for a one-line message.

    PyTorch's own text runs over several paragraphs and recommends ``weights_only=False``, which would run
    whatever code the file carries; lumicap never does that, so the advice is not repeated.
    """
    import re

    text = str(exc)
    unsafe = re.search(r"(?:unsupported GLOBAL|Unsupported global:?)\s+(?:GLOBAL\s+)?([\w.]+)", text)
    if unsafe:
        return (
            f"refused to load: the file is a pickle that would import or call '{unsafe.group(1)}' "
            "(only tensors and plain containers are accepted; nothing in it was run)"
        )
    if "Weights only load failed" in text:
        return (
            "refused to load: the file is a pickle that would build objects other than tensors and plain "
            "containers, or it is damaged (nothing in it was run)"
        )
    first = text.strip().splitlines()[0] if text.strip() else ""
    first = first.split(". ")[0].rstrip(".")[:160]  # the first sentence, whole
    detail = f": {first}" if first else f" ({type(exc).__name__})"
    return f"not a readable checkpoint, truncated or not a torch file{detail}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
