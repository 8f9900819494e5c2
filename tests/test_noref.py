"""Exposure and colour measures (lumicap.metrics.noref) on images whose answer is known by hand, and LOE
against a direct, loop-by-loop reading of the authors' LOE.m."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lumicap.metrics import as_uint8_rgb, border_frame, clipped_share, colourfulness, loe, mean_brightness


def test_clipped_share_counts_pixels_with_any_channel_at_the_threshold():
    image = np.zeros((4, 4, 3), np.uint8)
    image[0, 0] = (250, 0, 0)  # one channel at the threshold
    image[1, 1] = (0, 0, 255)
    image[2, 2] = (251, 251, 251)
    image[3, 3] = (249, 249, 249)  # just below: not clipped
    assert clipped_share(image) == 3 / 16
    assert clipped_share(image, threshold=255) == 1 / 16
    with pytest.raises(ValueError, match="threshold"):
        clipped_share(image, threshold=256)


def test_mean_brightness_is_the_mean_sample_over_255():
    image = np.zeros((2, 2, 3), np.uint8)
    image[0] = 255
    assert mean_brightness(image) == 0.5


def test_colourfulness_of_a_grey_and_of_a_two_pixel_image():
    assert colourfulness(np.full((5, 7, 3), 128, np.uint8)) == 0.0
    image = np.array([[[255, 0, 0], [0, 0, 0]]], np.uint8)
    # rg = (255, 0): mean 127.5, std 127.5; yb = (127.5, 0): mean 63.75, std 63.75
    expected = math.hypot(127.5, 63.75) + 0.3 * math.hypot(127.5, 63.75)
    assert colourfulness(image) == pytest.approx(expected, rel=1e-12)


def test_border_frame_measures_the_first_step_against_the_next():
    rng = np.random.default_rng(0)
    image = np.full((20, 30, 3), 100, np.uint8)
    image[0] = 160  # a bright top line: |row0 - row1| = 60, |row1 - row2| = 0
    image[:, -1] = 90  # a darker right column: 10 levels (the top-right pixel is 90 too)
    frame = border_frame(image)
    assert frame["top"] == pytest.approx(60 * 29 / 30)  # the last column is 90 in rows 0 and 1 alike
    assert frame["bottom"] == 0.0 and frame["left"] == pytest.approx(0.0)
    assert frame["right"] == pytest.approx((10 * 19 + 70) / 20)  # row 0: |90 - 160|
    noise = rng.integers(0, 256, (400, 40, 3), dtype=np.uint8)
    assert abs(border_frame(noise)["left"]) < 10  # no frame: the first step is like the next
    with pytest.raises(ValueError, match="3x3"):
        border_frame(np.zeros((2, 9, 3), np.uint8))


def _loe_by_the_definition(low: np.ndarray, enhanced: np.ndarray) -> float:
    """LOE.m read line by line: local maxima with getextpic's mirroring, the step grid, the xor count
    (the local maximum is computed only where the grid samples it)."""
    m, n = low.shape[:2]
    step = max(1, min(m, n) // 50)
    points = [(i * step - 1, j * step - 1) for i in range(1, m // step + 1) for j in range(1, n // step + 1)]

    def sampled_local_max(lightness):
        values = []
        for i, j in points:
            best = 0
            for di in range(-7, 8):
                for dj in range(-7, 8):
                    y, x = i + di, j + dj
                    y = -y if y < 0 else (2 * (m - 1) - y if y >= m else y)  # mirror, edge not repeated
                    x = -x if x < 0 else (2 * (n - 1) - x if x >= n else x)
                    best = max(best, int(lightness[y, x]))
            values.append(best)
        return np.array(values)

    a = sampled_local_max(low.max(axis=2))
    b = sampled_local_max(enhanced.max(axis=2))
    total = sum(int(((a >= a[k]) != (b >= b[k])).sum()) for k in range(len(points)))
    return total / len(points)


@pytest.mark.parametrize("size", [(18, 23), (104, 100)])  # every pixel sampled; step 2 (a 52 x 50 grid)
def test_loe_follows_the_authors_definition(size):
    rng = np.random.default_rng(1)
    low = rng.integers(0, 60, (*size, 3), dtype=np.uint8)
    enhanced = np.clip(low.astype(int) * 3 + rng.integers(-40, 40, low.shape), 0, 255).astype(np.uint8)
    assert loe(low, enhanced) == pytest.approx(_loe_by_the_definition(low, enhanced))
    assert loe(low, low) == 0.0
    assert loe(low, (low.astype(int) * 2 + 5).clip(0, 255).astype(np.uint8)) == 0.0  # order kept


def test_loe_refuses_images_of_different_sizes():
    with pytest.raises(ValueError, match="shape"):
        loe(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 11, 3), np.uint8))


def test_tensors_and_16_bit_arrays_become_8_bit_levels():
    tensor = torch.tensor([[[0.0, 1.0]], [[0.5, 1.2]], [[0.2, -0.1]]])  # (3, 1, 2)
    np.testing.assert_array_equal(as_uint8_rgb(tensor), np.array([[[0, 128, 51], [255, 255, 0]]], np.uint8))
    np.testing.assert_array_equal(as_uint8_rgb(np.array([[[65535, 257, 0]]], np.uint16)), [[[255, 1, 0]]])
    with pytest.raises(ValueError, match="float"):
        as_uint8_rgb(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(TypeError):
        as_uint8_rgb([[0, 0, 0]])
