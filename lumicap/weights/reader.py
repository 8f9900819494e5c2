"""Reading weight files safely: safetensors, or torch pickles with ``weights_only=True`` (no pickled code runs).

Every ``torch.load`` of lumicap goes through ``read_torch_file`` (a test keeps it that way), so a refused or
damaged file is always the same one line.
"""

from __future__ import annotations

import os
from pathlib import Path

from lumicap.errors import WeightsError


def load_state_dict(path: str | os.PathLike) -> dict:
    """Load a state dict safely: safetensors, or a torch pickle with ``weights_only=True``.

    Pickles that would run code, truncated files and non-dict payloads raise one-line ``WeightsError``.
    A checkpoint that wraps its weights under ``state_dict``/``model``/``params`` is unwrapped.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise WeightsError(f"{path}: not a readable safetensors file ({_first_line(exc)})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: {torch_load_failure(exc)}") from None
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
