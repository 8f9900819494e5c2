"""PSNR, SSIM and GT-mean: hand-computed values, scikit-image's reference SSIM, and the real LOL pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from lumicap.data.io import read_image, read_image_array
from lumicap.data.pairing import find_pairs
from lumicap.metrics import gaussian_window, gt_mean_scale, mean_gray, psnr, ssim, ssim_matlab


def skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """The reference configuration the low-light papers' MATLAB SSIM corresponds to."""
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1
    )


def to_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1).float() / 255


def random_pair(seed: int, h: int = 24, w: int = 31) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    noisy = np.clip(gt * 0.6 + rng.normal(0, 20, gt.shape) + 10, 0, 255).round().astype(np.uint8)
    return noisy, gt


# --------------------------------------------------------------------------------------------- PSNR
def test_psnr_of_a_constant_offset():
    gt = torch.full((3, 4, 4), 0.5)
    assert psnr(gt + 0.1, gt).item() == pytest.approx(20.0, abs=1e-5)  # MSE 0.01 (up to float32 rounding of 0.6)
    assert psnr(gt + 0.01, gt).item() == pytest.approx(40.0, abs=1e-4)


def test_psnr_float_convention_clamps_before_measuring():
    gt = torch.ones(3, 2, 2)
    assert psnr(gt * 1.7, gt).item() == math.inf  # 1.7 clamps to 1
    pred = torch.full((3, 2, 2), -0.5)  # clamps to 0: MSE 1
    assert psnr(pred, gt).item() == pytest.approx(0.0, abs=1e-12)


def test_psnr_uint8_convention_rounds_first():
    gt = torch.zeros(3, 2, 2)
    pred = torch.full((3, 2, 2), 0.4 / 255)  # rounds to level 0
    assert psnr(pred, gt, convention="uint8").item() == math.inf
    pred = torch.full((3, 2, 2), 2.6 / 255)  # rounds to level 3: MSE 9
    assert psnr(pred, gt, convention="uint8").item() == pytest.approx(10 * math.log10(255**2 / 9), abs=1e-9)
    assert psnr(pred, gt).item() == pytest.approx(10 * math.log10(1 / (2.6 / 255) ** 2), abs=1e-5)
    with pytest.raises(ValueError, match="convention"):
        psnr(pred, gt, convention="matlab")


def test_psnr_is_per_image_in_a_batch():
    gt = torch.zeros(2, 3, 4, 4)
    pred = torch.stack([torch.full((3, 4, 4), 0.1), torch.full((3, 4, 4), 0.01)])
    values = psnr(pred, gt)
    assert values.shape == (2,)
    assert values.tolist() == pytest.approx([20.0, 40.0], abs=1e-4)


def test_shape_errors_show_what_was_received():
    with pytest.raises(ValueError, match=r"\(3, 4, 4\) and gt \(3, 4, 5\)"):
        psnr(torch.zeros(3, 4, 4), torch.zeros(3, 4, 5))
    with pytest.raises(ValueError, match=r"at least 11x11"):
        ssim_matlab(torch.zeros(3, 8, 20), torch.zeros(3, 8, 20))


# --------------------------------------------------------------------------------------------- SSIM
def test_gaussian_window_is_scipy_shaped():
    taps = gaussian_window().numpy()
    x = np.arange(11) - 5
    expected = np.exp(-(x**2) / (2 * 1.5**2))
    assert np.allclose(taps, expected / expected.sum(), atol=1e-15)


@pytest.mark.parametrize("seed", range(3))
def test_ssim_matlab_equals_skimage_reference(seed):
    a, b = random_pair(seed)
    assert ssim_matlab(to_tensor(a), to_tensor(b)).item() == pytest.approx(skimage_ssim(a, b), abs=1e-6)


def test_ssim_matlab_batches_and_identity():
    pairs = [random_pair(s, 16, 16) for s in range(3)]
    pred = torch.stack([to_tensor(a) for a, _ in pairs])
    gt = torch.stack([to_tensor(b) for _, b in pairs])
    batched = ssim_matlab(pred, gt)
    assert batched.shape == (3,)
    assert batched.tolist() == pytest.approx([skimage_ssim(a, b) for a, b in pairs], abs=1e-6)
    assert ssim_matlab(gt, gt).tolist() == pytest.approx([1.0] * 3, abs=1e-12)


def test_ssim_matlab_rounds_to_8bit_levels():
    a, b = random_pair(5)
    nudged = to_tensor(a) + 0.3 / 255  # stays on the same 8-bit levels after rounding
    assert ssim_matlab(nudged, to_tensor(b)).item() == pytest.approx(skimage_ssim(a, b), abs=1e-6)


def test_differentiable_ssim_matches_and_has_gradients():
    a, b = random_pair(7)
    pred, gt = to_tensor(a).requires_grad_(True), to_tensor(b)
    value = ssim(pred, gt)  # SSIM is scale-invariant when the constants scale with data_range
    assert value.item() == pytest.approx(skimage_ssim(a, b), abs=1e-5)
    value.sum().backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    assert ssim(gt * 255, gt * 255, data_range=255.0).item() == pytest.approx(1.0, abs=1e-6)


# ------------------------------------------------------------------------------------------ GT-mean
def test_mean_gray_uses_bt601_weights():
    red = torch.zeros(3, 2, 2)
    red[0] = 1
    green = torch.zeros(3, 2, 2)
    green[1] = 1
    assert mean_gray(red).item() == pytest.approx(0.299)
    assert mean_gray(green).item() == pytest.approx(0.587)
    assert mean_gray(red, weights=(0.114, 0.587, 0.299)).item() == pytest.approx(0.114)


def test_gt_mean_scale_rescales_brightness_and_clamps():
    pred = torch.full((3, 2, 2), 0.2)
    pred[:, 0, 0] = 0.6  # mean gray 0.3
    gt = torch.full((3, 2, 2), 0.6)  # mean gray 0.6 -> factor 2
    scaled = gt_mean_scale(pred, gt)
    assert scaled[:, 0, 0].tolist() == pytest.approx([1.0] * 3)  # 1.2 clamped
    assert scaled[:, 1, 1].tolist() == pytest.approx([0.4] * 3)
    batch = gt_mean_scale(torch.stack([pred, pred * 2]), torch.stack([gt, gt]))
    assert torch.allclose(batch[1], scaled)  # per image: a brighter output gets a smaller factor
    assert torch.equal(gt_mean_scale(torch.zeros(3, 2, 2), gt), torch.zeros(3, 2, 2))  # black stays black


# ------------------------------------------------------------------------------- real LOL images
@pytest.fixture(scope="module")
def eval15_images(shared_data):
    """(name, low, high) uint8 arrays of the 15 LOL-v1 eval pairs, decoded once for the module."""
    root = shared_data / "lol-v1" / "eval15"
    pairs = find_pairs(root / "low", root / "high")
    return [(p.name, read_image_array(p.low), read_image_array(p.high)) for p in pairs]


def test_ssim_equals_skimage_on_real_lol_pairs(eval15_images):
    assert len(eval15_images) == 15
    for name, low, high in eval15_images:
        ours = ssim_matlab(to_tensor(low), to_tensor(high)).item()
        assert abs(ours - skimage_ssim(low, high)) < 1e-6, name


def test_psnr_equals_textbook_formula_on_real_lol_pairs(eval15_images, shared_data):
    # The tensors come from lumicap's reader here, so the file-to-tensor path is part of the check.
    root = shared_data / "lol-v1" / "eval15"
    for name, low_u8, high_u8 in eval15_images:
        low, high = low_u8.astype(np.float64) / 255, high_u8.astype(np.float64) / 255
        textbook = 10 * np.log10(1.0 / np.mean((low - high) ** 2))
        pred, gt = read_image(root / "low" / f"{name}.png"), read_image(root / "high" / f"{name}.png")
        # 1e-6 dB: the tensors hold k/255 in float32, the textbook value uses float64
        assert psnr(pred, gt).item() == pytest.approx(textbook, abs=1e-6), name
        # on 8-bit files both conventions agree: the levels are already integers
        uint8 = 10 * np.log10(255.0**2 / np.mean((low * 255 - high * 255) ** 2))
        assert psnr(pred, gt, convention="uint8").item() == pytest.approx(uint8, abs=1e-9), name
