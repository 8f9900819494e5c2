"""The photos people have: WebP and HEIC/HEIF in, EXIF orientation and ICC profiles kept, the output format asked
for, pictures lumicap cannot read named once in the summary, and inputs checked before the model is loaded.

Photos are made here with Pillow (WebP) and pillow-heif (HEIC, the ``heic`` extra, part of ``[test]``) in their
real containers; the profile is a real sRGB ICC profile from Pillow's littleCMS bindings.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from lumicap.cli import main
from lumicap.data import io as image_io


@pytest.fixture
def tiny_model_file(tiny_model):
    return tiny_model  # conftest's tiny network, saved as .safetensors + sidecar


@pytest.fixture(scope="module")
def icc_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _heif():
    pillow_heif = pytest.importorskip("pillow_heif", reason="HEIC needs pillow-heif (pip install -e '.[test]')")
    pillow_heif.register_heif_opener()
    return pillow_heif


def _pixels(height=24, width=36, seed=0) -> np.ndarray:
    # A gradient plus noise: orientation errors change it, lossy coding keeps it recognisable.
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 80, width)[None, :, None] + np.linspace(0, 40, height)[:, None, None]
    return np.clip(ramp + rng.integers(0, 10, size=(height, width, 3)), 0, 255).astype(np.uint8)


def _exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def _enhance(*args) -> int:
    return main(["enhance", *map(str, args), "--no-progress"])


@pytest.mark.parametrize("suffix", [".webp", ".heic", ".heif"])
def test_webp_and_heic_are_read_oriented_with_their_profile(tmp_path, suffix, icc_profile):
    if suffix != ".webp":
        _heif()
    stored = _pixels()
    path = tmp_path / f"photo{suffix}"
    # Orientation 6: stored turned 90 degrees counter-clockwise, shown turned clockwise (phones do this).
    Image.fromarray(stored).save(path, quality=100, exif=_exif_orientation(6), icc_profile=icc_profile)
    assert image_io.is_image_file(path)
    array = image_io.read_image_array(path)
    assert array.shape == (36, 24, 3)  # width and height swapped, as a viewer shows it
    assert image_io.image_size(path) == (36, 24)
    shown = np.rot90(stored, k=-1).astype(float)
    assert np.abs(array.astype(float) - shown).mean() < 6  # lossy codecs, same picture
    assert np.abs(array.astype(float) - np.rot90(stored, k=1)).mean() > 15  # not the other way round
    assert image_io.image_icc_profile(path) == icc_profile


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp", "tiff", "heic"])
def test_enhance_writes_the_format_asked_for_with_the_input_profile(tmp_path, tiny_model_file, fmt, icc_profile):
    if fmt == "heic":
        _heif()
    src = tmp_path / "in" / "photo.webp"
    src.parent.mkdir()
    Image.fromarray(_pixels()).save(src, lossless=True, icc_profile=icc_profile)
    assert _enhance(src, "--out", tmp_path / "out", "--model", tiny_model_file, "--format", fmt, "--quality", "90") == 0
    out = tmp_path / "out" / f"photo.{fmt}"
    with Image.open(out) as written:
        assert written.size == (36, 24)
        assert written.info.get("icc_profile") == icc_profile
        assert written.format == {"png": "PNG", "jpg": "JPEG", "webp": "WEBP", "tiff": "TIFF", "heic": "HEIF"}[fmt]


def test_sixteen_bit_png_output_keeps_the_profile(tmp_path, tiny_model_file, icc_profile):
    import torch

    src = tmp_path / "deep.png"
    image = torch.from_numpy(_pixels()).permute(2, 0, 1).float() / 255
    image_io.write_image(src, image, bit_depth=16, icc_profile=icc_profile)  # pypng + our iCCP chunk
    assert image_io.image_bit_depth(src) == 16 and image_io.image_icc_profile(src) == icc_profile
    assert _enhance(src, "--out", tmp_path / "out", "--model", tiny_model_file) == 0
    out = tmp_path / "out" / "deep.png"
    assert image_io.image_bit_depth(out) == 16
    assert image_io.image_icc_profile(out) == icc_profile
    import png

    assert png.Reader(filename=str(out)).read()[3]["bitdepth"] == 16  # pypng accepts the chunk we inserted


def test_pictures_lumicap_cannot_read_are_named_once_in_the_summary(tmp_path, tiny_model_file, capsys):
    folder = tmp_path / "phone"
    folder.mkdir()
    Image.fromarray(_pixels()).save(folder / "a.jpg")
    Image.fromarray(_pixels(seed=1)).save(folder / "b.webp", lossless=True)
    Image.fromarray(_pixels(seed=2)).save(folder / "anim.gif")
    (folder / "raw.DNG").write_bytes(b"II*\x00" + bytes(64))
    (folder / "notes.txt").write_text("not a picture")
    assert _enhance(folder, "--out", tmp_path / "out", "--model", tiny_model_file) == 0
    out = capsys.readouterr()
    summary = out.out.strip().splitlines()[-1]
    assert summary.startswith("enhanced 2 images")
    assert "not read: 2 pictures in formats lumicap does not read (.dng, .gif)" in summary
    assert summary.count("anim.gif") == 1 and summary.count("raw.DNG") == 1 and "notes.txt" not in summary
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == ["a.png", "b.png"]
    # Only such pictures: one error line that names them, not "no image files".
    only = tmp_path / "gifs"
    only.mkdir()
    Image.fromarray(_pixels()).save(only / "x.gif")
    assert _enhance(only, "--out", tmp_path / "out2", "--model", tiny_model_file) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "x.gif" in err[0] and "formats lumicap does not read" in err[0]


def test_heic_without_pillow_heif_is_one_line_naming_the_extra(tmp_path, monkeypatch, tiny_model_file, capsys):
    _heif()
    path = tmp_path / "photo.heic"
    Image.fromarray(_pixels()).save(path)
    monkeypatch.setattr(image_io, "_HEIF_REGISTERED", False)
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # as if the extra were not installed
    with pytest.raises(image_io.ImageReadError, match=r"photo\.heic: .*pip install 'lumicap\[heic\]'"):
        image_io.read_image_array(path)
    Image.fromarray(_pixels()).save(tmp_path / "ok.png")
    assert _enhance(path, tmp_path / "ok.png", "--out", tmp_path / "out", "--model", tiny_model_file) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if "photo.heic" in line] == [
        f"lumicap: error: {path}: HEIC/HEIF photos need pillow-heif: pip install 'lumicap[heic]'"
    ]
    assert (tmp_path / "out" / "ok.png").is_file()


def test_inputs_are_checked_before_the_model_is_loaded(tmp_path, capsys):
    # A typo in the input and a model file that does not exist: the input is what gets reported (no model
    # load happened), in one line.
    assert _enhance(tmp_path / "phtos", "--out", tmp_path / "out", "--model", tmp_path / "missing.safetensors") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "phtos: no such file or folder" in err[0]
    # An output that would replace an input is refused before the model too.
    Image.fromarray(_pixels()).save(tmp_path / "a.png")
    assert _enhance(tmp_path / "a.png", "--out", tmp_path, "--model", tmp_path / "missing.safetensors") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "would replace the input itself" in err[0]
