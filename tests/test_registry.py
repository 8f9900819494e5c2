"""The model registry's public ways in: ``temporary_model`` (a test's own network, for a block),
``MODELS`` (with ``monkeypatch.setitem``), and ``register_model``'s warning when a name is taken."""

from __future__ import annotations

import warnings

import pytest
from torch import nn

from lumicap.errors import LumicapError
from lumicap.models import MODELS, ModelInfo, Recipe, build_model, list_models, register_model, temporary_model


def _info(name: str) -> ModelInfo:
    return ModelInfo(name, lambda **kw: nn.Conv2d(3, 3, 1), paper="test", official_params=None, params_source="",
                     recipe=Recipe(stages=()))


def test_temporary_model_is_registered_inside_the_block_only():
    before = [info.name for info in list_models()]
    with temporary_model(_info("block_test_net")) as info:
        assert isinstance(build_model("block-test-net"), nn.Conv2d)  # names normalise as for any model
        assert info.name in [i.name for i in list_models()]
    assert [info.name for info in list_models()] == before
    with pytest.raises(LumicapError, match="unknown model 'block_test_net'"):
        build_model("block_test_net")


def test_temporary_model_puts_back_the_model_it_shadowed():
    original = MODELS["iat"]
    with temporary_model(_info("iat")):
        assert MODELS["iat"] is not original
    assert MODELS["iat"] is original


def test_monkeypatching_models_registers_for_one_test(monkeypatch):
    list_models()
    monkeypatch.setitem(MODELS, "patched_test_net", _info("patched_test_net"))
    assert isinstance(build_model("patched_test_net"), nn.Conv2d)


def test_register_model_warns_when_the_name_is_taken():
    def iat(**overrides):  # a second, different 'iat'
        return nn.Identity()

    original = MODELS["iat"]
    try:
        with pytest.warns(UserWarning, match="'iat' is registered already"):
            register_model(paper="", official_params=None, params_source="", recipe=Recipe(stages=()))(iat)
    finally:
        MODELS["iat"] = original


def test_the_same_entrypoint_registered_again_is_not_a_duplicate():
    """What reloading a model file does: same module, same function name."""
    original = MODELS["rctnet"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            register_model(paper="", official_params=None, params_source="", recipe=Recipe(stages=()))(original.builder)
    finally:
        MODELS["rctnet"] = original
