"""Bad and odd image files for fuzzing ``lumicap enhance`` and ``lumicap eval``.

``generate_cases(count, seed)`` returns ``count`` ``FuzzCase``s cycling through every kind in ``KINDS``
(so each kind appears once the count reaches ``len(KINDS)``) with file names that mix spaces, non-ASCII
letters, upper-case suffixes and newlines; ``case.write(folder)`` writes the file (byte-identical for the same
case). Each kind states what lumicap must do with it:

- ``good``: a valid picture in some format/mode/orientation: it must be processed; ``size`` is the
  (height, width) of the picture as displayed (EXIF orientation applied);
- ``bad``: not a decodable picture (empty, truncated, random bytes, decompression bomb, ...): it must be
  refused with one line naming the file;
- ``odd``: valid containers with damaged or exotic content (corrupted JPEG scan data, float TIFF): either
  outcome is fine, but never a traceback.

Kinds whose expectation depends on the machine are decided when the file is written: a file with
permissions 000 is ``good`` when the process can still read it (root does) and ``bad`` otherwise;
``FuzzCase.note`` says which. Eval cases carry ``gt_size``: the size its reference gets, which differs from
``size`` for the ``mismatched_pair`` kind.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class FuzzCase:
    index: int
    kind: str
    filename: str
    seed: int
    expect: str = "good"  # good | bad | odd (set by write for machine-dependent kinds)
    size: tuple[int, int] | None = None  # displayed (height, width) for decodable pictures
    declared: tuple[int, int] | None = None  # what the header of an undecodable file claims, when known
    gt_size: tuple[int, int] | None = None  # the eval reference's size
    note: str = ""

    @property
    def stem(self) -> str:
        return Path(self.filename).stem

    def write(self, folder: str | os.PathLike) -> "FuzzCase":
        """Write the file into ``folder``; returns the case with machine-dependent fields filled in."""
        path = Path(folder) / self.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(self.seed)
        outcome = _KIND_WRITERS[self.kind](path, rng)
        case = replace(self, expect=outcome.expect, size=outcome.size, declared=outcome.declared, note=outcome.note)
        # The reference matches what the header says, so eval gets past its size check to the pixels.
        gt = outcome.size or outcome.declared
        if self.kind == "mismatched_pair" and gt is not None:
            gt = (gt[0] + 2, gt[1] + 3)
        if gt is not None and gt[0] * gt[1] > 4096 * 4096:
            gt = None  # a bomb's declared size: no such reference is written, any small one will do
        return replace(case, gt_size=gt or (16, 16))


@dataclass(frozen=True)
class _Outcome:
    expect: str
    size: tuple[int, int] | None = None
    note: str = ""
    declared: tuple[int, int] | None = None


# ----------------------------------------------------------------------------------------- helpers
def _pixels(rng, height: int, width: int, channels: int = 3, dtype=np.uint8) -> np.ndarray:
    top = 65535 if dtype == np.uint16 else 255
    shape = (height, width) if channels == 1 else (height, width, channels)
    return rng.integers(0, top + 1, size=shape, dtype=np.int64).astype(dtype)


def _size(rng, low: int = 12, high: int = 48) -> tuple[int, int]:
    return int(rng.integers(low, high + 1)), int(rng.integers(low, high + 1))


def _save_pillow(image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _rgb_image(rng, size=None):
    from PIL import Image

    height, width = size or _size(rng)
    return Image.fromarray(_pixels(rng, height, width))


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def _png_with_header(width: int, height: int, bit_depth: int = 8, colour_type: int = 2, idat: bytes | None = None) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    body = zlib.compress(b"\x00" * 4096) if idat is None else idat
    return _PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def _png16_bytes(array: np.ndarray, interlace: bool = False) -> bytes:
    import png  # pypng

    height, width = array.shape[:2]
    greyscale = array.ndim == 2
    rows = array.reshape(height, -1)
    buffer = io.BytesIO()
    png.Writer(width, height, greyscale=greyscale, bitdepth=16, interlace=interlace).write(buffer, rows)
    return buffer.getvalue()


def _jpeg_set_size(data: bytes, height: int, width: int) -> bytes:
    """Rewrite the frame header (SOFn) of a JPEG to declare another size."""
    out = bytearray(data)
    pos = 2
    while pos + 4 < len(out):
        if out[pos] != 0xFF:
            break
        marker = out[pos + 1]
        length = struct.unpack(">H", out[pos + 2 : pos + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            out[pos + 5 : pos + 9] = struct.pack(">HH", height, width)
            return bytes(out)
        pos += 2 + length
    raise ValueError("no SOF marker found")


def _corrupt(data: bytes, rng, start_fraction: float, count: int) -> bytes:
    out = bytearray(data)
    start = int(len(out) * start_fraction)
    for offset in rng.integers(start, len(out) - 2, size=count):
        out[int(offset)] ^= 0xFF
    return bytes(out)


# ------------------------------------------------------------------------------------------- kinds
def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _good(path: Path, data: bytes, size: tuple[int, int], note: str = "") -> _Outcome:
    _write(path, data)
    return _Outcome("good", size, note)


def _bad(path: Path, data: bytes, note: str = "", declared: tuple[int, int] | None = None) -> _Outcome:
    _write(path, data)
    return _Outcome("bad", None, note, declared)


def k_rgb_png(path, rng):
    image = _rgb_image(rng)
    return _good(path, _save_pillow(image, "PNG"), image.size[::-1])


def k_rgb_jpeg(path, rng):
    image = _rgb_image(rng)
    return _good(path, _save_pillow(image, "JPEG", quality=90), image.size[::-1])


def k_progressive_jpeg(path, rng):
    image = _rgb_image(rng)
    return _good(path, _save_pillow(image, "JPEG", progressive=True), image.size[::-1])


def k_bmp(path, rng):
    image = _rgb_image(rng)
    return _good(path, _save_pillow(image, "BMP"), image.size[::-1])


def k_tiff(path, rng):
    image = _rgb_image(rng)
    return _good(path, _save_pillow(image, "TIFF", compression="tiff_lzw"), image.size[::-1])


def k_png16_rgb(path, rng):
    height, width = _size(rng)
    return _good(path, _png16_bytes(_pixels(rng, height, width, 3, np.uint16)), (height, width))


def k_png16_gray(path, rng):
    height, width = _size(rng)
    return _good(path, _png16_bytes(_pixels(rng, height, width, 1, np.uint16)), (height, width))


def k_png16_interlaced(path, rng):
    height, width = _size(rng)
    return _good(path, _png16_bytes(_pixels(rng, height, width, 3, np.uint16), interlace=True), (height, width))


def k_tiff16_gray(path, rng):
    from PIL import Image

    height, width = _size(rng)
    image = Image.fromarray(_pixels(rng, height, width, 1, np.uint16))
    return _good(path, _save_pillow(image, "TIFF"), (height, width))


def k_gray_png(path, rng):
    from PIL import Image

    height, width = _size(rng)
    return _good(path, _save_pillow(Image.fromarray(_pixels(rng, height, width, 1)), "PNG"), (height, width))


def k_gray_jpeg(path, rng):
    from PIL import Image

    height, width = _size(rng)
    return _good(path, _save_pillow(Image.fromarray(_pixels(rng, height, width, 1)), "JPEG"), (height, width))


def k_bilevel_png(path, rng):
    from PIL import Image

    height, width = _size(rng)
    image = Image.fromarray(_pixels(rng, height, width, 1)).convert("1")
    return _good(path, _save_pillow(image, "PNG"), (height, width))


def k_palette_png(path, rng):
    image = _rgb_image(rng).convert("P", palette=1, colors=16)  # 1 = Image.Palette.ADAPTIVE
    return _good(path, _save_pillow(image, "PNG"), image.size[::-1])


def k_palette_transparent_png(path, rng):
    image = _rgb_image(rng).convert("P", palette=1, colors=16)
    return _good(path, _save_pillow(image, "PNG", transparency=0), image.size[::-1], "alpha dropped")


def k_rgba_png(path, rng):
    from PIL import Image

    height, width = _size(rng)
    image = Image.fromarray(_pixels(rng, height, width, 4))
    return _good(path, _save_pillow(image, "PNG"), (height, width), "alpha dropped")


def k_la_png(path, rng):
    from PIL import Image

    height, width = _size(rng)
    image = Image.frombytes("LA", (width, height), _pixels(rng, height, width, 2).tobytes())
    return _good(path, _save_pillow(image, "PNG"), (height, width), "alpha dropped")


def k_cmyk_jpeg(path, rng):
    from PIL import Image

    height, width = _size(rng)
    image = Image.frombytes("CMYK", (width, height), _pixels(rng, height, width, 4).tobytes())
    return _good(path, _save_pillow(image, "JPEG"), (height, width))


def _exif_bytes(orientation: int) -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def k_exif_rotated_jpeg(path, rng):
    orientation = int(rng.integers(2, 9))
    image = _rgb_image(rng, (int(rng.integers(8, 20)), int(rng.integers(24, 40))))
    height, width = image.size[::-1]
    shown = (width, height) if orientation >= 5 else (height, width)
    return _good(path, _save_pillow(image, "JPEG", exif=_exif_bytes(orientation)), shown, f"orientation {orientation}")


def k_exif_rotated_png(path, rng):
    orientation = int(rng.choice([6, 8]))
    image = _rgb_image(rng, (int(rng.integers(8, 20)), int(rng.integers(24, 40))))
    height, width = image.size[::-1]
    return _good(path, _save_pillow(image, "PNG", exif=_exif_bytes(orientation)), (width, height), f"orientation {orientation}")


def k_png_exif_after_pixels(path, rng):
    """The eXIf chunk after IDAT (PNG allows it anywhere): sizing from the header and decoding must agree."""
    orientation = int(rng.choice([6, 8]))
    image = _rgb_image(rng, (int(rng.integers(8, 20)), int(rng.integers(24, 40))))
    height, width = image.size[::-1]
    data = _save_pillow(image, "PNG")
    iend = data.rindex(b"IEND") - 4
    data = data[:iend] + _png_chunk(b"eXIf", _exif_bytes(orientation)) + data[iend:]
    return _good(path, data, (width, height), f"orientation {orientation} in an eXIf chunk after the pixel data")


def k_exif_invalid_orientation(path, rng):
    image = _rgb_image(rng)
    return _good(path, _save_pillow(image, "JPEG", exif=_exif_bytes(9)), image.size[::-1], "orientation 9 -> ignored")


def k_exif_garbage(path, rng):
    image = _rgb_image(rng)
    junk = b"Exif\x00\x00" + bytes(rng.integers(0, 256, size=64, dtype=np.uint8))
    return _good(path, _save_pillow(image, "JPEG", exif=junk[6:]), image.size[::-1], "unreadable EXIF block")


def k_one_by_one_png(path, rng):
    return _good(path, _save_pillow(_rgb_image(rng, (1, 1)), "PNG"), (1, 1))


def k_one_by_one_jpeg(path, rng):
    return _good(path, _save_pillow(_rgb_image(rng, (1, 1)), "JPEG"), (1, 1))


def k_thin_strip(path, rng):
    size = (1, int(rng.integers(40, 90))) if rng.random() < 0.5 else (int(rng.integers(40, 90)), 1)
    return _good(path, _save_pillow(_rgb_image(rng, size), "PNG"), size)


def k_png_named_jpg(path, rng):
    image = _rgb_image(rng)
    return _good(path, _save_pillow(image, "PNG"), image.size[::-1], "PNG bytes, .jpg name")


def k_jpeg_named_png(path, rng):
    image = _rgb_image(rng)
    return _good(path, _save_pillow(image, "JPEG"), image.size[::-1], "JPEG bytes, .png name")


def k_gif_named_png(path, rng):
    image = _rgb_image(rng).convert("P", palette=1, colors=32)
    return _good(path, _save_pillow(image, "GIF"), image.size[::-1], "GIF bytes, .png name")


def k_trailing_garbage_png(path, rng):
    image = _rgb_image(rng)
    data = _save_pillow(image, "PNG") + bytes(rng.integers(0, 256, size=200, dtype=np.uint8))
    return _good(path, data, image.size[::-1], "junk after IEND")


def k_unreadable_permissions(path, rng):
    image = _rgb_image(rng)
    _write(path, _save_pillow(image, "PNG"))
    os.chmod(path, 0)
    if os.access(path, os.R_OK):
        # root (as in CI containers) reads whatever the mode says: the file is simply good.
        return _Outcome("good", image.size[::-1], "mode 000 but readable by this user (root): permissions not enforced")
    return _Outcome("bad", None, "mode 000: unreadable")


def k_mismatched_pair(path, rng):
    image = _rgb_image(rng)
    return _good(path, _save_pillow(image, "PNG"), image.size[::-1], "eval reference has another size")


def k_zero_bytes(path, rng):
    return _bad(path, b"")


def k_truncated_png(path, rng):
    data = _save_pillow(_rgb_image(rng, (32, 32)), "PNG")
    return _bad(path, data[: int(len(data) * rng.uniform(0.1, 0.9))], declared=(32, 32))


def k_truncated_png16(path, rng):
    data = _png16_bytes(_pixels(rng, 24, 24, 3, np.uint16))
    return _bad(path, data[: int(len(data) * rng.uniform(0.2, 0.9))], declared=(24, 24))


def k_truncated_jpeg(path, rng):
    data = _save_pillow(_rgb_image(rng, (32, 32)), "JPEG")
    # Cut inside the entropy-coded data or the headers: either way the picture is incomplete.
    return _bad(path, data[: int(len(data) * rng.uniform(0.05, 0.6))], declared=(32, 32))


def k_random_bytes(path, rng):
    return _bad(path, bytes(rng.integers(0, 256, size=int(rng.integers(16, 4096)), dtype=np.uint8)))


def k_text_file(path, rng):
    return _bad(path, b"<html><body>this is not a picture</body></html>\n" * int(rng.integers(1, 5)))


def k_png_signature_only(path, rng):
    return _bad(path, _PNG_SIGNATURE)


def k_png_header_no_data(path, rng):
    ihdr = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
    return _bad(path, _PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b""), declared=(16, 16))


def k_png_bad_crc(path, rng):
    data = bytearray(_save_pillow(_rgb_image(rng, (24, 24)), "PNG"))
    idat = data.find(b"IDAT")
    data[idat + 8] ^= 0xFF  # inside the compressed data: the chunk's CRC no longer matches
    return _bad(path, bytes(data), declared=(24, 24))


def k_png_invalid_header(path, rng):
    return _bad(path, _png_with_header(16, 16, bit_depth=16, colour_type=3), declared=(16, 16))  # palette images cannot be 16-bit


def k_png_bomb(path, rng):
    return _bad(path, _png_with_header(100_000, 100_000), "declares 100000x100000 pixels")


def k_png_bomb_near_limit(path, rng):
    return _bad(path, _png_with_header(13_000, 12_000), "declares 156 MP (above lumicap's 150 MP, below Pillow's error)")


def k_jpeg_bomb(path, rng):
    data = _save_pillow(_rgb_image(rng, (16, 16)), "JPEG")
    return _bad(path, _jpeg_set_size(data, 65_000, 65_000), "declares 65000x65000 pixels")


def k_bmp_bomb(path, rng):
    data = bytearray(_save_pillow(_rgb_image(rng, (8, 8)), "BMP"))
    data[18:26] = struct.pack("<ii", 60_000, 60_000)
    return _bad(path, bytes(data), "declares 60000x60000 pixels")


def k_int32_tiff_out_of_range(path, rng):
    from PIL import Image

    array = np.full((8, 8), 1 << 20, dtype=np.int32)
    return _bad(path, _save_pillow(Image.fromarray(array), "TIFF"), "32-bit samples above 65535", declared=(8, 8))


def k_corrupt_jpeg_scan(path, rng):
    data = _save_pillow(_rgb_image(rng, (32, 32)), "JPEG")
    _write(path, _corrupt(data, rng, 0.6, 6))
    return _Outcome("odd", (32, 32), "flipped bytes in the scan data")


def k_float_tiff(path, rng):
    from PIL import Image

    height, width = _size(rng)
    _write(path, _save_pillow(Image.fromarray(rng.random((height, width)).astype(np.float32)), "TIFF"))
    return _Outcome("odd", (height, width), "32-bit float samples")


# (kind, suffix, writer). Suffixes are what the file is named, not necessarily what it holds.
KINDS: list[tuple[str, str, Callable]] = [
    ("rgb_png", ".png", k_rgb_png),
    ("zero_bytes", ".png", k_zero_bytes),
    ("rgb_jpeg", ".jpg", k_rgb_jpeg),
    ("truncated_png", ".png", k_truncated_png),
    ("png16_rgb", ".png", k_png16_rgb),
    ("truncated_jpeg", ".jpg", k_truncated_jpeg),
    ("gray_png", ".png", k_gray_png),
    ("random_bytes", ".jpg", k_random_bytes),
    ("palette_png", ".png", k_palette_png),
    ("png_bomb", ".png", k_png_bomb),
    ("rgba_png", ".png", k_rgba_png),
    ("jpeg_bomb", ".jpeg", k_jpeg_bomb),
    ("cmyk_jpeg", ".jpg", k_cmyk_jpeg),
    ("text_file", ".png", k_text_file),
    ("exif_rotated_jpeg", ".jpg", k_exif_rotated_jpeg),
    ("truncated_png16", ".png", k_truncated_png16),
    ("one_by_one_png", ".png", k_one_by_one_png),
    ("png_bad_crc", ".png", k_png_bad_crc),
    ("mismatched_pair", ".png", k_mismatched_pair),
    ("png_signature_only", ".png", k_png_signature_only),
    ("unreadable_permissions", ".png", k_unreadable_permissions),
    ("png_header_no_data", ".png", k_png_header_no_data),
    ("png16_gray", ".png", k_png16_gray),
    ("png_invalid_header", ".png", k_png_invalid_header),
    ("progressive_jpeg", ".jpg", k_progressive_jpeg),
    ("png_bomb_near_limit", ".png", k_png_bomb_near_limit),
    ("bmp", ".bmp", k_bmp),
    ("bmp_bomb", ".bmp", k_bmp_bomb),
    ("tiff", ".tif", k_tiff),
    ("int32_tiff_out_of_range", ".tiff", k_int32_tiff_out_of_range),
    ("gray_jpeg", ".jpg", k_gray_jpeg),
    ("random_bytes_png", ".png", k_random_bytes),
    ("bilevel_png", ".png", k_bilevel_png),
    ("zero_bytes_jpeg", ".jpg", k_zero_bytes),
    ("palette_transparent_png", ".png", k_palette_transparent_png),
    ("random_bytes_tiff", ".tiff", k_random_bytes),
    ("la_png", ".png", k_la_png),
    ("corrupt_jpeg_scan", ".jpg", k_corrupt_jpeg_scan),
    ("exif_rotated_png", ".png", k_exif_rotated_png),
    ("float_tiff", ".tif", k_float_tiff),
    ("exif_invalid_orientation", ".jpg", k_exif_invalid_orientation),
    ("exif_garbage", ".jpg", k_exif_garbage),
    ("one_by_one_jpeg", ".jpg", k_one_by_one_jpeg),
    ("thin_strip", ".png", k_thin_strip),
    ("png_named_jpg", ".jpg", k_png_named_jpg),
    ("jpeg_named_png", ".png", k_jpeg_named_png),
    ("gif_named_png", ".png", k_gif_named_png),
    ("trailing_garbage_png", ".png", k_trailing_garbage_png),
    ("png16_interlaced", ".png", k_png16_interlaced),
    ("tiff16_gray", ".tif", k_tiff16_gray),
    ("png_exif_after_pixels", ".png", k_png_exif_after_pixels),
]
_KIND_WRITERS = {kind: writer for kind, _, writer in KINDS}

# File-name shapes, cycled: plain, spaces, non-ASCII, upper-case suffix, dots and brackets, emoji, and a
# newline followed by what looks like an error line of its own (messages must quote it, not print it raw).
_NAME_STYLES = (
    "{i:03d}_{kind}{ext}",
    "{i:03d} {kind} with spaces{ext}",
    "{i:03d}_{kind}_éclairé_夜景{ext}",
    "{i:03d}_{kind}{EXT}",
    "{i:03d}-{kind}.v2 (copy) [1]{ext}",
    "{i:03d}_{kind}_Ünïcødé 🌙{ext}",
    "{i:03d}_{kind}\nlumicap: error: forged{ext}",
)


def generate_cases(count: int = 120, seed: int = 0, kinds: list[str] | None = None) -> list[FuzzCase]:
    """``count`` cases cycling through ``KINDS`` (or the named ``kinds``), each with its own seed and name."""
    table = [k for k in KINDS if kinds is None or k[0] in kinds]
    if not table:
        raise ValueError(f"no fuzz kinds selected from {kinds}")
    cases = []
    for i in range(count):
        kind, ext, _ = table[i % len(table)]
        style = _NAME_STYLES[(i // len(table) + i) % len(_NAME_STYLES)]
        name = style.format(i=i, kind=kind, ext=ext, EXT=ext.upper())
        cases.append(FuzzCase(index=i, kind=kind, filename=name, seed=seed * 100_003 + i))
    return cases


def write_cases(cases: list[FuzzCase], folder: str | os.PathLike) -> list[FuzzCase]:
    return [case.write(folder) for case in cases]


def write_reference(case: FuzzCase, folder: str | os.PathLike) -> Path:
    """A plain RGB PNG named after the case's stem with ``case.gt_size``: its eval reference."""
    from PIL import Image

    rng = np.random.default_rng(case.seed + 7)
    height, width = case.gt_size or (16, 16)
    path = Path(folder) / f"{case.stem}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_pixels(rng, height, width)).save(path)
    return path
