"""``model.overrides`` against each registered network's constructor: every argument is known to the registry's
check, every allowed choice really builds, and a bad override is one line before anything is built."""

from __future__ import annotations

import inspect
import typing

import pytest
import torch

from lumicap.errors import LumicapError
from lumicap.models import build_model, list_models
from lumicap.models.registry import override_problems, overrides_schema

MODELS = list_models()


@pytest.mark.parametrize("info", MODELS, ids=[i.name for i in MODELS])
def test_every_model_declares_its_constructor_arguments(info):
    assert info.constructor is not None, f"{info.name}: register_model(constructor=...) is missing"
    schema = overrides_schema(info.name)
    params = [p for p in list(inspect.signature(info.constructor.__init__).parameters)[1:]]
    assert list(schema.model_fields) == params


@pytest.mark.parametrize("info", MODELS, ids=[i.name for i in MODELS])
def test_every_allowed_choice_builds(info):
    """The registry's allowed strings are the ones the constructor accepts."""
    schema = overrides_schema(info.name)
    for name, field in schema.model_fields.items():
        if typing.get_origin(field.annotation) is not typing.Literal:
            continue
        for choice in typing.get_args(field.annotation):
            assert override_problems(info.name, {name: choice}) == []
            info.builder(**{name: choice})
        with pytest.raises(ValueError):  # and the constructor itself refuses what the registry refuses
            info.builder(**{name: "evil"})


@pytest.mark.parametrize(
    "name, overrides, expected",
    [
        ("iat", {"variant": "evil"}, "variant: got 'evil'; allowed: one of lol, exp"),
        ("iat", {"in_dim": -1}, "in_dim: got -1; allowed: an integer in 1..2147483647"),
        ("uhdfour", {"variant": "4k"}, "variant: got '4k'; allowed: one of lol, uhd"),
        ("retinexformer", {"num_blocks": [1, 0, 2]}, "num_blocks.1: got 0; allowed: an integer in 1.."),
        ("retinexformer", {"n_feat": 40.0}, "n_feat: got 40.0; allowed: an integer"),
        ("rctnet", {"encoder_size": 100}, "encoder_size: got 100; allowed: an integer >= 32, a multiple of 32"),
        ("snr_aware", {"snr_threshold": 1.5}, "snr_threshold: got 1.5; allowed: a finite number in [0, 1]"),
        ("mirnet", {"activation_checkpointing": True}, "activation_checkpointing: got True; allowed: one of auto"),
        ("llformer", {"heads": "4"}, "heads: got '4'; allowed: a list of 4 items"),
    ],
)
def test_build_model_refuses_a_bad_override_in_one_line(name, overrides, expected):
    with pytest.raises(LumicapError) as info:
        build_model(name, **overrides)
    text = str(info.value)
    assert text.startswith(f"model '{name}': bad override ") and expected in text and "\n" not in text


@torch.no_grad()
def test_zero_counts_where_the_network_allows_them():
    x = torch.rand(1, 3, 20, 24)
    assert build_model("snr_aware", nf=8, front_RBs=0, back_RBs=0, short_range_RBs=0, d_inner=16)(x).shape == x.shape
    assert build_model("llformer", dim=8, num_refinement_blocks=0, checkpoint_above_pixels=0)(x).shape == x.shape
