"""Chroma gain: colours pushed away from grey with the luma kept, chosen on validation PSNR, read from the sidecar
(and checked) by the loader, applied before highlight protection, and off for export."""

from __future__ import annotations

import pytest
import torch

from lumicap.cli import main
from lumicap.data.io import read_image_array, write_image
from lumicap.errors import WeightsError
from lumicap.inference import load_inference_model
from lumicap.inference.chroma import LUMA_WEIGHTS, ChromaGain, choose_gain, scale_chroma
from lumicap.inference.highlights import HighlightProtection
from lumicap.inference.loading import save_inference_model
from lumicap.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


def _luma(x: torch.Tensor) -> torch.Tensor:
    return (x * torch.tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)).sum(dim=1)


def test_gain_scales_the_distance_from_grey_and_keeps_the_luma():
    x = torch.tensor([[0.30, 0.40, 0.20], [0.5, 0.5, 0.5], [0.10, 0.12, 0.30]]).T.reshape(1, 3, 1, 3).contiguous()
    with torch.no_grad():
        y = scale_chroma(x.clone(), 1.5)
    assert torch.allclose(_luma(y), _luma(x), atol=1e-6)
    luma = _luma(x).unsqueeze(1)
    assert torch.allclose(y - luma, 1.5 * (x - luma), atol=1e-6)
    assert torch.equal(y[..., 1], x[..., 1])  # grey stays grey
    with torch.no_grad():
        assert torch.equal(scale_chroma(x.clone(), 1.0), x)


def test_gain_clips_to_the_valid_range_and_has_gradients():
    x = torch.tensor([0.95, 0.2, 0.1]).view(1, 3, 1, 1).requires_grad_(True)
    y = scale_chroma(x, 2.0)
    assert y.min() >= 0 and y.max() <= 1 and y[0, 0] == 1.0 and y[0, 2] == 0.0
    inside = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1).requires_grad_(True)
    scale_chroma(inside, 2.0)[0, 0].sum().backward()  # R = Y + 2 (R - Y): dR/dR = 2 - 0.299
    assert torch.allclose(inside.grad[0, 0], torch.tensor(2 - 0.299))


def test_choose_gain_is_the_largest_within_tolerance_of_the_best():
    table = {1.0: 20.80, 1.2: 20.90, 1.3: 20.92, 1.5: 20.88, 1.6: 20.86, 1.8: 20.70}
    assert choose_gain(table) == 1.5
    assert choose_gain(table, tolerance_db=0.0) == 1.3
    assert choose_gain({1.0: 20.0, 1.5: 19.0}) == 1.0  # a gain that costs fidelity is not taken
    with pytest.raises(ValueError):
        choose_gain({})


def _saved_iat(tmp_path, **record):
    torch.manual_seed(1)
    net = build_model("iat")
    return save_inference_model(tmp_path / "m.safetensors", "iat", net.state_dict(), {}, **record)[0]


def test_the_sidecar_sets_the_gain_before_highlight_protection_and_export_drops_it(tmp_path):
    path = _saved_iat(tmp_path, inference={"chroma_gain": 1.4, "highlight_protection": True})
    model = load_inference_model(path, "cpu")
    assert isinstance(model.module, HighlightProtection) and isinstance(model.module.module, ChromaGain)
    assert model.module.module.gain == 1.4 and "chroma x1.4" in model.describe()
    bare = load_inference_model(path, "cpu", highlight_protection=False, chroma_gain=1)
    x = torch.rand(1, 3, 20, 28) * 0.3
    with torch.no_grad():
        expected = scale_chroma(bare(x), 1.4)
        protected = HighlightProtection(torch.nn.Identity())
        expected = x + protected.weight(x) * (expected - x)
        assert torch.allclose(model(x), expected, atol=1e-6)
    assert not isinstance(load_inference_model(_saved_iat(tmp_path / "b"), "cpu").module, ChromaGain)
    forced = load_inference_model(tmp_path / "b" / "m.safetensors", "cpu", chroma_gain=1.2)
    assert isinstance(forced.module, ChromaGain) and forced.module.gain == 1.2


@pytest.mark.parametrize("value", [-0.5, 4, "1.2", True, [1.2]])
def test_a_bad_sidecar_gain_is_one_line(tmp_path, value):
    path = _saved_iat(tmp_path, inference={"chroma_gain": value})
    with pytest.raises(WeightsError, match="chroma_gain") as info:
        load_inference_model(path, "cpu")
    message = str(info.value)
    assert "\n" not in message and ("m.safetensors" in message or "m.json" in message)


def test_enhance_chroma_gain_flag(tmp_path, capsys):
    path = _saved_iat(tmp_path, inference={"chroma_gain": 1.5})
    photo = tmp_path / "in" / "p.png"
    photo.parent.mkdir()
    torch.manual_seed(2)
    write_image(photo, torch.rand(3, 17, 23) * 0.3)
    assert main(["enhance", str(photo), "--model", str(path), "--out", str(tmp_path / "sidecar"), "--no-progress"]) == 0
    assert "chroma x1.5" in capsys.readouterr().out
    assert main(["enhance", str(photo), "--model", str(path), "--out", str(tmp_path / "off"), "--no-progress",
                 "--chroma-gain", "1"]) == 0
    with_gain, without = read_image_array(tmp_path / "sidecar" / "p.png"), read_image_array(tmp_path / "off" / "p.png")
    assert with_gain.shape == without.shape and (with_gain != without).any()
    with pytest.raises(SystemExit):
        main(["enhance", str(photo), "--out", str(tmp_path / "bad"), "--chroma-gain", "inf"])
    assert "--chroma-gain" in capsys.readouterr().err
