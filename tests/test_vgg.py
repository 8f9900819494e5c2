"""VGG feature extractor / perceptual loss: torchvision checkpoint layout, validation, frozen loss.

The checkpoint used here is a full-size random VGG16 ``features`` state dict (14.7M parameters, ~59 MB on
disk) saved with torchvision's exact key names and shapes, so the real loading code sees the real layout.
The ``classifier.*`` entries of a real file (123M parameters) are replaced by small tensors under the same
keys: the loader ignores them, and writing 470 MB more per test run would only cost CI time.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lumicap.errors import WeightsError
from lumicap.vgg import (
    PERCEPTUAL_PRESETS,
    VGGFeatures,
    VGGPerceptualLoss,
    layer_index,
    layer_names,
    require_vgg,
)

# torchvision vgg16 "D": conv layers sit at these features indices (ReLU after each, pools at 4, 9, 16, 23, 30).
VGG16_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
VGG16_WIDTHS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


def random_vgg16_state() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {}
    in_channels = 3
    for index, width in zip(VGG16_CONV_INDICES, VGG16_WIDTHS):
        fan_in = in_channels * 9
        state[f"features.{index}.weight"] = torch.randn(width, in_channels, 3, 3, generator=generator) * (2 / fan_in) ** 0.5
        state[f"features.{index}.bias"] = torch.randn(width, generator=generator) * 0.01
        in_channels = width
    for index in (0, 3, 6):  # ignored by the loader; small stand-ins for the 4096-wide linear layers
        state[f"classifier.{index}.weight"] = torch.randn(4, 4, generator=generator)
        state[f"classifier.{index}.bias"] = torch.randn(4, generator=generator)
    return state


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory):
    state = random_vgg16_state()
    path = tmp_path_factory.mktemp("vgg") / "vgg16-397923af.pth"
    torch.save(state, path)
    return path, state


def reference_features(state: dict[str, torch.Tensor], x: torch.Tensor, upto: int) -> dict[int, torch.Tensor]:
    """VGG16 features computed directly from the tensors, independent of lumicap.vgg's module layout."""
    out: dict[int, torch.Tensor] = {}
    index = 0
    convs = dict(zip(VGG16_CONV_INDICES, VGG16_WIDTHS))
    while index <= upto:
        if index in convs:
            x = F.conv2d(x, state[f"features.{index}.weight"], state[f"features.{index}.bias"], padding=1)
            out[index] = x
            x = F.relu(x)
            out[index + 1] = x
            index += 2
        else:
            x = F.max_pool2d(x, 2)
            out[index] = x
            index += 1
    return out


def test_layer_names_follow_torchvision_indexing():
    assert len(layer_names("vgg16")) == 31 and len(layer_names("vgg19")) == 37
    assert layer_index("vgg16", "relu1_2") == 3
    assert layer_index("vgg16", "relu2_2") == 8
    assert layer_index("vgg16", "relu3_2") == 13
    assert layer_index("vgg16", "pool5") == 30
    assert layer_index("vgg19", "conv4_4") == 25  # UHDFour's features[:26]
    assert layer_index("vgg19", "relu5_4") == 35
    with pytest.raises(ValueError, match="relu6_1"):
        layer_index("vgg16", "relu6_1")


def test_loaded_features_equal_the_checkpoint_tensors(vgg16_file):
    path, state = vgg16_file
    extractor = VGGFeatures("vgg16", last_layer="relu4_3").load_checkpoint(path)
    x = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(1))
    layers = ["relu1_2", "conv2_2", "relu3_2", "pool3", "relu4_3"]
    with torch.no_grad():
        got = extractor(x, layers)
        want = reference_features(state, x, layer_index("vgg16", "relu4_3"))
    for name in layers:
        torch.testing.assert_close(got[name], want[layer_index("vgg16", name)], rtol=1e-4, atol=1e-5)


def test_perceptual_loss_matches_direct_computation_and_is_frozen(vgg16_file):
    path, state = vgg16_file
    loss = VGGPerceptualLoss.from_preset("rctnet", weights=path)
    loss.train()
    assert not loss.vgg.training, "the frozen VGG must stay in eval mode"
    assert all(not p.requires_grad for p in loss.parameters())

    gen = torch.Generator().manual_seed(2)
    output = torch.rand(1, 3, 32, 32, generator=gen).requires_grad_(True)
    target = torch.rand(1, 3, 32, 32, generator=gen)
    value = loss(output, target)

    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        a = reference_features(state, (output - mean) / std, 13)
        b = reference_features(state, (target - mean) / std, 13)
        expected = sum(F.l1_loss(a[i], b[i]) for i in (3, 8, 13))  # relu1_2, relu2_2, relu3_2
    torch.testing.assert_close(value.detach(), expected, rtol=1e-4, atol=1e-6)

    value.backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    assert loss(target, target).item() == 0.0


def test_require_vgg_accepts_a_valid_path(vgg16_file):
    path, _ = vgg16_file
    assert require_vgg("vgg16", path) == path


def test_wrong_architecture_is_rejected_naming_file_and_key(tmp_path):
    alexnet = {  # torchvision AlexNet features: 11x11 then 5x5 kernels
        "features.0.weight": torch.zeros(64, 3, 11, 11),
        "features.0.bias": torch.zeros(64),
        "features.3.weight": torch.zeros(192, 64, 5, 5),
        "features.3.bias": torch.zeros(192),
    }
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(alexnet, path)
    with pytest.raises(WeightsError) as info:
        VGGPerceptualLoss("vgg16", layers=("relu1_2",), weights=path)
    message = str(info.value)
    assert str(path) in message and "features.0.weight" in message and "(64, 3, 11, 11)" in message
    assert "\n" not in message


def test_vgg16_file_is_rejected_as_vgg19(vgg16_file):
    path, _ = vgg16_file
    with pytest.raises(WeightsError) as info:
        require_vgg("vgg19", path)
    # VGG19 has conv3_4 at features.16, where VGG16 has a ReLU (no weights)
    assert str(path) in str(info.value) and "features.16.weight" in str(info.value)


def test_truncated_checkpoint_is_rejected(vgg16_file, tmp_path):
    path, _ = vgg16_file
    broken = tmp_path / "vgg16-truncated.pth"
    broken.write_bytes(path.read_bytes()[: 1 << 20])
    with pytest.raises(WeightsError) as info:
        require_vgg("vgg16", broken)
    assert str(broken) in str(info.value) and "\n" not in str(info.value)


def test_missing_default_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("LUMICAP_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(WeightsError) as info:
        require_vgg("vgg19")
    message = str(info.value)
    assert "vgg19-dcbb9e9d.pth" in message
    assert "lumicap weights download vgg19-torchvision" in message
    assert "\n" not in message


def test_presets_name_the_official_layers():
    uhdfour = PERCEPTUAL_PRESETS["uhdfour"]
    assert uhdfour["arch"] == "vgg19" and [layer_index("vgg19", name) for name in uhdfour["layers"]] == [25]
    assert uhdfour["criterion"] == "mse" and uhdfour["normalize"] is False
    rctnet = PERCEPTUAL_PRESETS["rctnet"]
    assert [layer_index("vgg16", name) for name in rctnet["layers"]] == [3, 8, 13]
    assert rctnet["criterion"] == "l1"
