"""Tiny enhancement networks for the enhance/tiling/report tests, registered for the duration of a test
and saved in the real file formats (safetensors + sidecar, training checkpoint, bare state dict), so
the real loading code is what the tests exercise. No network, no shipped weights."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lumicap.models import registry
from lumicap.models.registry import ModelInfo, Recipe

TINY_NAME = "tiny_conv_test"


class TinyConv(nn.Module):
    """Two 3x3 convolutions: receptive-field radius 2, so tiles with overlap >= 8 reproduce the whole pass."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Brightens (gain 2.5) plus a learned residual; stays in [0, 1] like a real enhancer.
        return (2.5 * x + 0.2 * torch.tanh(self.conv2(torch.relu(self.conv1(x))))).clamp(0, 1)


def tiny_conv_test(**overrides) -> nn.Module:
    return TinyConv(**overrides)


def tiny_info() -> ModelInfo:
    return ModelInfo(TINY_NAME, tiny_conv_test, paper="test network", official_params=None, params_source="",
                     recipe=Recipe(stages=()))


def register_tiny(monkeypatch) -> None:
    """Make ``build_model("tiny_conv_test")`` work for one test (monkeypatch removes it afterwards; outside a
    test, ``with registry.temporary_model(tiny_info()):`` does the same)."""
    registry.list_models()  # the real networks first, so the undo leaves exactly them
    monkeypatch.setitem(registry.MODELS, TINY_NAME, tiny_info())


def tiny_state(width: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return TinyConv(width).state_dict()


def save_tiny_safetensors(folder: Path, width: int = 8, seed: int = 0) -> Path:
    from lumicap.inference import save_inference_model

    path, _ = save_inference_model(folder / "tiny.safetensors", TINY_NAME, tiny_state(width, seed),
                                   overrides={"width": width}, training_command="(test)")
    return path


def save_tiny_checkpoint(folder: Path, width: int = 8, seed: int = 0, ema: bool = False) -> Path:
    """A checkpoint laid out as ``lumicap.engine.checkpoint`` writes it (the keys inference reads)."""
    state = tiny_state(width, seed)
    checkpoint = {
        "format": "lumicap-train-v1",
        "iteration": 10,
        "model": state,
        "ema": {"decay": 0.999, "updates": 10, "module": tiny_state(width, seed + 1)} if ema else None,
        "config": {"model": {"name": TINY_NAME, "overrides": {"width": width}}},
    }
    path = folder / "tiny_run.pt"
    torch.save(checkpoint, path)
    return path
