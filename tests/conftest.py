"""Shared fixtures. Real benchmark photos live in ``../shared/data`` beside the repository (never inside
it); tests that need them skip with a clear reason when the folder is absent (a user's clone has none)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# The reliability harnesses (soak, fuzz files) live in scripts/reliability/, outside the installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the shared LOL images (``lol-v1/{eval15,train80}``, ``unpaired``); skips when absent."""
    if not (SHARED_DATA / "lol-v1" / "eval15" / "low").is_dir():
        pytest.skip(f"shared benchmark images not found at {SHARED_DATA} (only present on development machines)")
    return SHARED_DATA


@pytest.fixture
def tiny_model(tmp_path, monkeypatch) -> Path:
    """A tiny registered network (``_enhance_support.TinyConv``) saved as lumicap writes inference models
    (safetensors + JSON sidecar): what ``--model FILE`` tests load. Registered for the test only."""
    from _enhance_support import register_tiny, save_tiny_safetensors

    register_tiny(monkeypatch)
    return save_tiny_safetensors(tmp_path / "model")


@pytest.fixture
def one_thread():
    """One torch thread for the test (tiny models: more threads only add synchronisation, a lot of it on a
    shared CPU). Modules use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
