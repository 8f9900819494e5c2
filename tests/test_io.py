"""Image I/O: formats, bit depths, conversions, orientation, and every way a file can be unreadable."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import png  # pypng: an independent 16-bit PNG writer/reader for the references
import pytest
import torch
from PIL import Image, ImageOps

from lumicap.data import io as lio
from lumicap.data.io import AlphaDroppedWarning, image_bit_depth, image_size, read_image, read_image_array, write_image
from lumicap.errors import ImageReadError, LumicapError


def _rgb(h=6, w=7, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _as_uint8(tensor: torch.Tensor) -> np.ndarray:
    return torch.round(tensor * 255).to(torch.uint8).permute(1, 2, 0).numpy()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


# ------------------------------------------------------------------------------------------ formats
@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff"])
def test_lossless_8bit_formats_read_exactly(tmp_path, suffix):
    array = _rgb()
    path = tmp_path / f"a{suffix}"
    Image.fromarray(array).save(path)
    tensor = read_image(path)
    assert tensor.dtype == torch.float32 and tensor.shape == (3, 6, 7)
    expected = torch.from_numpy(array).permute(2, 0, 1).float() / 255
    assert torch.equal(tensor, expected)
    assert image_bit_depth(path) == 8


def test_jpeg_matches_pillow_decode(tmp_path):
    path = tmp_path / "a.jpg"
    Image.fromarray(_rgb(16, 16)).save(path, quality=90)
    reference = np.asarray(Image.open(path).convert("RGB"))
    assert np.array_equal(_as_uint8(read_image(path)), reference)


def test_grayscale_is_repeated_to_rgb(tmp_path):
    gray = _rgb()[..., 0]
    path = tmp_path / "g.png"
    Image.fromarray(gray, mode="L").save(path)
    tensor = read_image(path)
    assert tensor.shape == (3, 6, 7)
    for channel in range(3):
        assert np.array_equal(_as_uint8(tensor)[..., channel], gray)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_dropped_with_a_warning(tmp_path, mode):
    rgba = np.dstack([_rgb(), np.full((6, 7), 7, np.uint8)])
    image = Image.fromarray(rgba, mode="RGBA")
    if mode == "LA":
        image = image.convert("LA")
    path = tmp_path / f"{mode}.png"
    image.save(path)
    with pytest.warns(AlphaDroppedWarning, match="alpha"):
        tensor = read_image(path)
    expected = np.asarray(image.convert("RGB"))
    assert np.array_equal(_as_uint8(tensor), expected)


def test_palette_and_cmyk_are_converted(tmp_path):
    source = Image.fromarray(_rgb(8, 8))
    palette = source.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.save(tmp_path / "p.png")
    assert np.array_equal(_as_uint8(read_image(tmp_path / "p.png")), np.asarray(palette.convert("RGB")))

    source.convert("CMYK").save(tmp_path / "c.jpg", quality=100)
    expected = np.asarray(Image.open(tmp_path / "c.jpg").convert("RGB"))
    assert np.array_equal(_as_uint8(read_image(tmp_path / "c.jpg")), expected)


# --------------------------------------------------------------------------------------- 16-bit PNG
def test_16bit_png_keeps_full_precision(tmp_path):
    values = np.random.default_rng(1).integers(0, 65536, (5, 4, 3), dtype=np.uint16)
    values[0, 0] = (1, 257, 65534)  # levels an 8-bit decode would lose
    path = tmp_path / "d.png"
    with open(path, "wb") as fh:  # written by pypng directly, not by lumicap
        png.Writer(4, 5, greyscale=False, bitdepth=16).write(fh, values.reshape(5, -1))
    assert image_bit_depth(path) == 16
    tensor = read_image(path)
    assert tensor.dtype == torch.float32
    recovered = torch.round(tensor.double() * 65535).to(torch.int64).permute(1, 2, 0).numpy()
    assert np.array_equal(recovered, values.astype(np.int64))
    assert read_image_array(path).dtype == np.uint16


def test_16bit_write_then_read_is_exact(tmp_path):
    levels = torch.randint(0, 65536, (3, 5, 6), generator=torch.Generator().manual_seed(2)).double()
    tensor = (levels / 65535).float()
    path = write_image(tmp_path / "out.png", tensor, bit_depth=16)
    # Check the file with pypng (independent of lumicap's reader) ...
    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    assert info["bitdepth"] == 16 and (width, height) == (6, 5)
    stored = np.vstack([np.asarray(r, dtype=np.int64) for r in rows]).reshape(5, 6, 3)
    assert np.array_equal(stored, levels.permute(1, 2, 0).numpy().astype(np.int64))
    # ... and the round trip through lumicap.
    assert torch.equal(read_image(path), tensor)


def test_16bit_grayscale_and_alpha_png(tmp_path):
    gray = np.random.default_rng(3).integers(0, 65536, (4, 5), dtype=np.uint16)
    with open(tmp_path / "g16.png", "wb") as fh:
        png.Writer(5, 4, greyscale=True, bitdepth=16).write(fh, gray)
    tensor = read_image(tmp_path / "g16.png")
    assert tensor.shape == (3, 4, 5)
    assert torch.equal(tensor[0], tensor[2])
    assert np.array_equal(torch.round(tensor[1].double() * 65535).numpy().astype(np.uint16), gray)

    rgba = np.random.default_rng(4).integers(0, 65536, (4, 5, 4), dtype=np.uint16)
    with open(tmp_path / "a16.png", "wb") as fh:
        png.Writer(5, 4, greyscale=False, alpha=True, bitdepth=16).write(fh, rgba.reshape(4, -1))
    with pytest.warns(AlphaDroppedWarning):
        array = read_image_array(tmp_path / "a16.png")
    assert np.array_equal(array, rgba[..., :3])


def test_8bit_write_rounds_to_nearest_level(tmp_path):
    tensor = torch.tensor([0.0, 0.5 / 255 + 1e-4, 1.2, -0.3, 100.4 / 255, 100.6 / 255]).view(3, 1, 2)
    path = write_image(tmp_path / "r.png", tensor)
    stored = np.asarray(Image.open(path)).reshape(-1)  # HWC order: pixel 0 = channels 0..2 at x=0
    expected = np.array([0, 1, 255, 0, 100, 101], dtype=np.uint8).reshape(3, 2).T.reshape(-1)
    assert np.array_equal(stored, expected)


def test_write_refuses_bad_requests(tmp_path):
    image = torch.rand(3, 4, 4)
    with pytest.raises(LumicapError, match="only as PNG"):
        write_image(tmp_path / "x.jpg", image, bit_depth=16)
    with pytest.raises(LumicapError, match="unsupported output format"):
        write_image(tmp_path / "x.gif", image)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        write_image(tmp_path / "x.png", torch.rand(1, 3, 4, 4))


def test_write_is_atomic_when_encoding_fails(tmp_path, monkeypatch):
    path = tmp_path / "keep.png"
    Image.fromarray(_rgb()).save(path)
    before = path.read_bytes()

    def broken_save(self, fp, format=None, **params):
        fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_image(path, torch.rand(3, 6, 7))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]  # no temporary file left behind


def test_write_replaces_existing_file(tmp_path):
    path = tmp_path / "w.bmp"
    write_image(path, torch.zeros(3, 2, 2))
    write_image(path, torch.ones(3, 2, 2))
    assert torch.equal(read_image(path), torch.ones(3, 2, 2))


# -------------------------------------------------------------------------------------- orientation
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_transpose(tmp_path, orientation):
    image = Image.fromarray(_rgb(3, 5, seed=orientation))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    image.save(path, exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    result = read_image_array(path)
    assert np.array_equal(result, expected)
    assert image_size(path) == expected.shape[:2]


def test_exif_orientation_6_turns_clockwise(tmp_path):
    array = np.zeros((2, 3, 3), np.uint8)
    array[0, 0] = 255  # stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # camera held rotated: display = stored turned 90 degrees clockwise
    Image.fromarray(array).save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=100)
    shown = read_image_array(tmp_path / "o.jpg")
    assert shown.shape == (3, 2, 3)
    assert shown[0, 1].min() > 200 and shown[0, 0].max() < 60  # now top-right


# ------------------------------------------------------------------------------------- bad input
def _assert_one_line_naming(exc_info, path):
    message = str(exc_info.value)
    assert str(path) in message and "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="no such file") as exc:
        read_image(tmp_path / "nope.png")
    _assert_one_line_naming(exc, tmp_path / "nope.png")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    with pytest.raises(ImageReadError, match="empty") as exc:
        read_image(path)
    _assert_one_line_naming(exc, path)


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n" * 20)
    with pytest.raises(ImageReadError, match="not an image") as exc:
        read_image(path)
    _assert_one_line_naming(exc, path)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_file(tmp_path, suffix):
    path = tmp_path / f"cut{suffix}"
    Image.fromarray(_rgb(64, 64)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as exc:
        read_image(path)
    _assert_one_line_naming(exc, path)


def test_truncated_16bit_png(tmp_path):
    values = np.random.default_rng(5).integers(0, 65536, (32, 32, 3), dtype=np.uint16)
    path = tmp_path / "cut16.png"
    with open(path, "wb") as fh:
        png.Writer(32, 32, greyscale=False, bitdepth=16).write(fh, values.reshape(32, -1))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as exc:
        read_image(path)
    _assert_one_line_naming(exc, path)


def test_corrupt_png_data(tmp_path):
    path = tmp_path / "bad.png"
    raw = b"".join(b"\x00" + bytes(range(24)) for _ in range(8))
    idat = bytearray(zlib.compress(raw))
    idat[4:12] = b"\xff" * 8  # garbage inside the deflate stream
    header = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", bytes(idat)) + _png_chunk(b"IEND", b""))
    with pytest.raises(ImageReadError) as exc:
        read_image(path)
    _assert_one_line_naming(exc, path)


@pytest.mark.parametrize("side", [13_000, 20_000])  # above lumicap's limit; the second also above Pillow's hard limit
def test_decompression_bomb_is_refused_before_decoding(tmp_path, side):
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1024)  # tiny file claiming side*side pixels
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b""))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may escape either
        with pytest.raises(ImageReadError, match="decompression bomb") as exc:
            read_image(path)
    _assert_one_line_naming(exc, path)


def test_pixel_limit_is_adjustable(tmp_path, monkeypatch):
    path = tmp_path / "small.png"
    Image.fromarray(_rgb(10, 10)).save(path)
    monkeypatch.setattr(lio, "MAX_PIXELS", 99)
    with pytest.raises(ImageReadError, match="exceeds the limit of 99"):
        read_image(path)
    monkeypatch.setattr(lio, "MAX_PIXELS", 100)
    assert read_image(path).shape == (3, 10, 10)


def test_read_from_bytes_like_real_camera_jpeg_with_bad_exif(tmp_path):
    # A malformed EXIF block must not make a good picture unreadable; orientation falls back to 1.
    buffer = io.BytesIO()
    Image.fromarray(_rgb(8, 8)).save(buffer, format="JPEG", exif=b"Exif\x00\x00MM\x00*garbage")
    path = tmp_path / "odd.jpg"
    path.write_bytes(buffer.getvalue())
    assert read_image(path).shape == (3, 8, 8)
