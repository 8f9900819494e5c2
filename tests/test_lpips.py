"""LPIPS: random weights saved in the two real file formats, loaded through the real code, and compared
with a direct functional computation written here from the paper's definition."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lumicap.errors import WeightsError
from lumicap.metrics.lpips import LPIPS, load_lpips, try_load_lpips

# torchvision AlexNet ``features`` convolutions: index -> (out, in, k, stride, padding)
ALEX_CONVS = {0: (64, 3, 11, 4, 2), 3: (192, 64, 5, 1, 2), 6: (384, 192, 3, 1, 1), 8: (256, 384, 3, 1, 1), 10: (256, 256, 3, 1, 1)}
HEAD_CHANNELS = (64, 192, 384, 256, 256)


def alexnet_checkpoint(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights with torchvision's key names and feature shapes (alexnet-owt-7be5be79.pth)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for index, (out_c, in_c, k, _, _) in ALEX_CONVS.items():
        fan_in = in_c * k * k
        state[f"features.{index}.weight"] = torch.randn(out_c, in_c, k, k, generator=g) * (2 / fan_in) ** 0.5
        state[f"features.{index}.bias"] = torch.randn(out_c, generator=g) * 0.01
    # The real file also holds the classifier (4096-wide); LPIPS ignores it, so tiny stand-ins suffice.
    for index in (1, 4, 6):
        state[f"classifier.{index}.weight"] = torch.randn(8, 8, generator=g)
        state[f"classifier.{index}.bias"] = torch.randn(8, generator=g)
    return state


def lpips_heads(seed: int = 1) -> dict[str, torch.Tensor]:
    """Random non-negative heads with the keys and shapes of PerceptualSimilarity's weights/v0.1/alex.pth."""
    g = torch.Generator().manual_seed(seed)
    return {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for i, c in enumerate(HEAD_CHANNELS)}


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lpips")
    alex, heads = alexnet_checkpoint(), lpips_heads()
    torch.save(alex, folder / "alexnet-owt-7be5be79.pth")
    torch.save(heads, folder / "alex.pth")
    return folder / "alexnet-owt-7be5be79.pth", folder / "alex.pth", alex, heads


def reference_lpips(x0, x1, alex, heads) -> torch.Tensor:
    """LPIPS v0.1 written out directly: scale to [-1,1], shift/scale, AlexNet relu1..5, unit-normalise,
    weighted squared difference, spatial mean, sum over layers."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def features(x):
        x = ((2 * x - 1) - shift) / scale
        taps = []
        for index, (_, _, _, stride, padding) in ALEX_CONVS.items():
            if index in (3, 6):  # max-pool 3x3 / 2 before conv2 and conv3
                x = F.max_pool2d(x, 3, 2)
            x = F.relu(F.conv2d(x, alex[f"features.{index}.weight"], alex[f"features.{index}.bias"], stride, padding))
            taps.append(x)
        return taps

    total = 0
    for layer, (f0, f1) in enumerate(zip(features(x0), features(x1))):
        n0 = f0 / (f0.norm(dim=1, keepdim=True) + 1e-10)
        n1 = f1 / (f1.norm(dim=1, keepdim=True) + 1e-10)
        weights = heads[f"lin{layer}.model.1.weight"].view(1, -1, 1, 1)
        total = total + ((n0 - n1) ** 2 * weights).sum(dim=1).mean(dim=(1, 2))
    return total


def test_loaded_lpips_matches_direct_computation(weight_files):
    alex_path, heads_path, alex, heads = weight_files
    model = load_lpips(alex_path, heads_path)
    g = torch.Generator().manual_seed(3)
    x0, x1 = torch.rand(2, 3, 48, 56, generator=g), torch.rand(2, 3, 48, 56, generator=g)
    ours = model(x0, x1)
    assert ours.shape == (2,)
    expected = reference_lpips(x0, x1, alex, heads)
    assert torch.allclose(ours, expected, rtol=1e-5, atol=1e-6)
    assert ours.min() > 0
    assert model(x0, x0).abs().max() < 1e-6
    assert torch.allclose(model(x0[1], x1[1]), ours[1:], rtol=1e-5)  # (3,H,W) input, batch-independent


def test_lpips_is_frozen_but_passes_gradients_to_inputs(weight_files):
    model = load_lpips(*weight_files[:2])
    assert not any(p.requires_grad for p in model.parameters())
    x = torch.rand(1, 3, 40, 40, requires_grad=True)
    model(x, torch.rand(1, 3, 40, 40)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_unknown_classifier_keys_are_ignored_but_features_are_required(tmp_path, weight_files):
    _, heads_path, alex, _ = weight_files
    broken = dict(alex)
    del broken["features.8.weight"]
    torch.save(broken, tmp_path / "a.pth")
    with pytest.raises(WeightsError, match=r"not a torchvision AlexNet checkpoint: missing features\.8\.weight"):
        load_lpips(tmp_path / "a.pth", heads_path)


def test_wrong_shapes_are_named(tmp_path, weight_files):
    alex_path, _, _, heads = weight_files
    bad = dict(heads)
    bad["lin2.model.1.weight"] = torch.rand(1, 256, 1, 1)  # a VGG-sized head in an AlexNet file
    torch.save(bad, tmp_path / "vgg_like.pth")
    model, reason = try_load_lpips(alex_path, tmp_path / "vgg_like.pth")
    assert model is None
    assert "lin2.model.1.weight has shape (1, 256, 1, 1), expected (1, 384, 1, 1)" in reason and "\n" not in reason


def test_unavailable_weights_give_a_one_line_reason(tmp_path, monkeypatch, weight_files):
    model, reason = try_load_lpips(tmp_path / "missing_alexnet.pth", weight_files[1])
    assert model is None and "missing_alexnet.pth: no such file" in reason
    # Known names with an empty cache and downloads off: the reason says where to put the file.
    monkeypatch.setenv("LUMICAP_CACHE", str(tmp_path / "cache"))
    model, reason = try_load_lpips("alexnet-torchvision", "lpips-alex-v0.1", download=False)
    assert model is None and "not in the cache" in reason and "downloads disabled" in reason and "\n" not in reason


def test_pickles_that_run_code_are_refused(tmp_path, weight_files):
    class Payload:
        def __reduce__(self):
            return (print, ("owned",))

    torch.save({"lin0.model.1.weight": Payload()}, tmp_path / "evil.pth")
    model, reason = try_load_lpips(weight_files[0], tmp_path / "evil.pth")
    assert model is None and "refused" in reason


def test_module_state_dict_round_trip(weight_files):
    model = load_lpips(*weight_files[:2])
    clone = LPIPS()
    clone.load_state_dict(model.state_dict())
    x0, x1 = torch.rand(1, 3, 36, 36), torch.rand(1, 3, 36, 36)
    assert torch.equal(model(x0, x1), clone(x0, x1))
    with pytest.raises(ValueError, match="at least 32x32"):
        model(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
