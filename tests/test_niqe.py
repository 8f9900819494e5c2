"""NIQE against the reference values measured with BasicSR's code (``../shared/metrics/niqe/README.md``),
and its pieces against facts that do not come from our own code (MATLAB's resize of a ramp, the shape of
known distributions)."""

from __future__ import annotations

import hashlib
import math
import shutil

import numpy as np
import pytest
from skimage import data

from lumicap.data.io import read_image_array
from lumicap.metrics import niqe
from lumicap.metrics import niqe as niqe_function
from lumicap.metrics.niqe import PARAMS_PATH, PARAMS_SHA256, aggd_fit, matlab_imresize_half, pristine_model

# BasicSR 1.4.2 calculate_niqe(img_bgr, crop_border=0, convert_to=...), read from ../shared/metrics/niqe/README.md
SKIMAGE_REFERENCES = {
    "astronaut": {"y": 3.064948, "gray": 3.061004},
    "coffee": {"y": 4.115242, "gray": 4.059338},
    "chelsea": {"y": 2.625524, "gray": 2.572083},
    "rocket": {"y": 6.969155, "gray": 7.036617},
}
SHARED_REFERENCES = {
    "unpaired/DICM/01.jpg": {"y": 3.3568, "gray": 3.2266},
    "unpaired/LIME/1.bmp": {"y": 4.0030, "gray": 3.9234},
    "lol-v1/eval15/high/1.png": {"y": 5.0822, "gray": 5.1579},
}
TOLERANCE = 1e-3  # the bar; measured: within 1e-6 of the six-decimal values, 4e-5 of the others


@pytest.mark.parametrize("mode", ["y", "gray"])
@pytest.mark.parametrize("name", sorted(SKIMAGE_REFERENCES))
def test_niqe_meets_basicsr_reference_values_on_scikit_image_photos(name, mode):
    image = getattr(data, name)()
    assert niqe_function(image, mode=mode) == pytest.approx(SKIMAGE_REFERENCES[name][mode], abs=TOLERANCE)


@pytest.mark.parametrize("relative", sorted(SHARED_REFERENCES))
def test_niqe_meets_basicsr_reference_values_on_low_light_photos(shared_data, relative):
    image = read_image_array(shared_data / relative)
    for mode, expected in SHARED_REFERENCES[relative].items():
        assert niqe_function(image, mode=mode) == pytest.approx(expected, abs=TOLERANCE), mode


def test_shipped_parameters_are_the_pinned_file():
    assert hashlib.sha256(PARAMS_PATH.read_bytes()).hexdigest() == PARAMS_SHA256
    model = pristine_model()
    assert model.mean.shape == (36,) and model.cov.shape == (36, 36) and model.window.shape == (7, 7)
    assert model.window.sum() == pytest.approx(1.0)
    assert (PARAMS_PATH.parent / "LICENSE-basicsr.txt").is_file() and (PARAMS_PATH.parent / "README.md").is_file()


def test_a_changed_parameter_file_is_refused(tmp_path):
    changed = tmp_path / "niqe_pris_params.npz"
    shutil.copy(PARAMS_PATH, changed)
    with open(changed, "r+b") as fh:
        fh.seek(200)
        byte = fh.read(1)
        fh.seek(200)
        fh.write(bytes([byte[0] ^ 1]))
    with pytest.raises(RuntimeError, match="sha256"):
        pristine_model(changed)


def test_crop_border_drops_the_edges_first():
    image = data.astronaut()
    assert niqe(image, crop_border=40) == pytest.approx(niqe(np.ascontiguousarray(image[40:-40, 40:-40])), abs=1e-12)


def test_niqe_refuses_what_it_cannot_measure():
    with pytest.raises(ValueError, match="96x96"):
        niqe(np.zeros((95, 200, 3), np.uint8))
    with pytest.raises(ValueError, match="mode"):
        niqe(data.astronaut(), mode="rgb")
    with pytest.raises(ValueError, match="float"):
        niqe(data.astronaut().astype(np.float32))
    with pytest.raises(ValueError, match="RGB"):
        niqe(data.camera())


def test_a_photo_without_texture_has_no_niqe():
    flat = np.full((192, 192, 3), 7, np.uint8)  # every block's MSCN coefficients are 0: no distribution to fit
    assert math.isnan(niqe(flat))


def test_sixteen_bit_photos_are_measured_on_their_8_bit_levels():
    image = data.astronaut()
    assert niqe(image.astype(np.uint16) * 257) == niqe(image)


def test_matlab_resize_reproduces_a_ramp_away_from_the_edges():
    # MATLAB's bicubic reproduces linear functions; output pixel j (0-based) sits at input coordinate 2j + 0.5.
    ramp = np.tile(np.arange(32, dtype=np.float32), (32, 1))
    half = matlab_imresize_half(ramp)
    assert half.shape == (16, 16)
    expected = 2 * np.arange(16) + 0.5
    np.testing.assert_allclose(half[:, 3:-3], np.tile(expected[3:-3], (16, 1)), atol=1e-5)
    np.testing.assert_allclose(matlab_imresize_half(np.full((10, 14), 3.0, np.float32)), 3.0, atol=1e-6)


@pytest.mark.parametrize("shape, draw", [(2.0, "normal"), (1.0, "laplace")])
def test_aggd_fit_finds_the_shape_of_known_distributions(shape, draw):
    rng = np.random.default_rng(0)
    samples = getattr(rng, draw)(size=(3, 200_000))
    alpha, left, right = aggd_fit(samples)
    np.testing.assert_allclose(alpha, shape, atol=0.05)
    np.testing.assert_allclose(left, right, rtol=0.02)
