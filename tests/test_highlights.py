"""Highlight protection: pixels that were already bright keep their value, dark ones get the network's result,
the same on tiles as whole, and the sidecar setting is read (and checked) by the loader."""

from __future__ import annotations


import pytest
import torch
from torch import nn

from lumicap.errors import WeightsError
from lumicap.inference import load_inference_model
from lumicap.inference.highlights import HighlightProtection
from lumicap.inference.loading import save_inference_model
from lumicap.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


class Brighten(nn.Module):
    """A stand-in network that multiplies by 4 (and clips later, as a real one would)."""

    def forward(self, x):
        return x * 4.0


def test_bright_pixels_keep_their_value_and_dark_ones_get_the_network_result():
    protect = HighlightProtection(Brighten(), 0.5, 0.9)
    x = torch.tensor([0.05, 0.2, 0.5, 0.7, 0.9, 0.97]).view(1, 1, 2, 3).expand(1, 3, 2, 3).clone()
    x[0, 2, 0, 0] = 0.95  # a pixel with one bright channel counts as bright (a blue sky)
    with torch.no_grad():
        y = protect(x)
    flat_x, flat_y = x[0, 0].flatten(), y[0, 0].flatten()
    assert torch.allclose(flat_y[1:3], 4 * flat_x[1:3])  # below start: the network's result
    assert torch.allclose(flat_y[4:], flat_x[4:])  # from end up: the input, unchanged
    assert torch.allclose(flat_y[3], torch.tensor(0.7 + 0.5 * (2.8 - 0.7)))  # halfway along the ramp
    assert torch.allclose(y[0, :, 0, 0], x[0, :, 0, 0])  # max channel 0.95: kept as it was


def test_protection_is_per_pixel_so_tiles_equal_the_whole_photo():
    torch.manual_seed(0)
    protect = HighlightProtection(nn.Conv2d(3, 3, 1))  # a per-pixel network: only the blend could break tiling
    x = torch.rand(1, 3, 24, 32)
    with torch.no_grad():
        whole = protect(x)
        tiled = torch.cat([protect(x[..., :16]), protect(x[..., 16:])], dim=-1)
    assert torch.equal(tiled, whole)
    assert not torch.allclose(whole, protect.module(x))  # and the blend did something on this input


def test_gradients_flow_through_the_blend():
    protect = HighlightProtection(Brighten())
    x = torch.rand(1, 3, 4, 4, requires_grad=True)
    protect(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def _saved_iat(tmp_path, **record):
    torch.manual_seed(1)
    net = build_model("iat")
    return save_inference_model(tmp_path / "m.safetensors", "iat", net.state_dict(), {}, **record)[0]


def test_the_sidecar_turns_it_on_and_the_caller_can_turn_it_off(tmp_path):
    path = _saved_iat(tmp_path, inference={"highlight_protection": [0.4, 0.8]})
    model = load_inference_model(path, "cpu")
    assert isinstance(model.module, HighlightProtection) and (model.module.start, model.module.end) == (0.4, 0.8)
    bare = load_inference_model(path, "cpu", highlight_protection=False)
    assert not isinstance(bare.module, HighlightProtection)
    plain = load_inference_model(_saved_iat(tmp_path / "b"), "cpu")
    assert not isinstance(plain.module, HighlightProtection)  # not asked for: the network alone
    forced = load_inference_model(tmp_path / "b" / "m.safetensors", "cpu", highlight_protection=True)
    assert (forced.module.start, forced.module.end) == (0.5, 0.9)


@pytest.mark.parametrize("value", [[0.9, 0.5], [0.5], "yes", [0.5, 1.5], 3])
def test_a_bad_sidecar_setting_is_one_line(tmp_path, value):
    path = _saved_iat(tmp_path, inference={"highlight_protection": value})
    with pytest.raises(WeightsError, match="highlight_protection") as info:
        load_inference_model(path, "cpu")
    message = str(info.value)
    assert "\n" not in message and ("m.safetensors" in message or "m.json" in message)
