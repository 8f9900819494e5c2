"""Checkpoints: atomic writes, safe loads, and the random-number-generator states a resume needs.

A checkpoint is a plain dict of tensors and built-in containers, so it loads with
``torch.load(weights_only=True)`` (no pickled code runs). Contents written by the trainer::

    {"format": "lumicap-train-v1", "iteration": int, "stage": int, "stage_iteration": int,
     "data": {"epoch": int, "position": int}, "model": state_dict, "optimizer": state_dict,
     "scheduler": {...}, "scaler": {...} | None, "ema": {...} | None, "rng": rng_state(),
     "best": {"metric": str, "value": float | None, "iteration": int}, "config": plain dict}

Writes go through ``lumicap.files.atomic_write`` (durable: a temporary file in the same folder, flushed
and fsync'ed, then renamed over the target), so a crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lumicap.files import atomic_write
from lumicap.weights.reader import TRAINING_CHECKPOINT_FORMAT as FORMAT  # noqa: F401  (what the trainer writes)
from lumicap.weights.reader import read_training_checkpoint


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda handle: torch.save(obj, handle), durable=True)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """A checkpoint this module wrote, read and validated as ``lumicap.inference`` reads one (one reader)."""
    return read_training_checkpoint(path, map_location)


def rng_state() -> dict:
    """Every generator a training step may draw from, as tensors and built-in types."""
    version, mt_state, gauss = random.getstate()
    kind, key, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "state": list(mt_state), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "key": torch.from_numpy(key.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (npy["kind"], npy["key"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])


@contextlib.contextmanager
def preserved_rng():
    """Run a block (validation, test) without moving any training RNG: the states are put back after."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)
