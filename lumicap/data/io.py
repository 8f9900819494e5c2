"""Image files <-> float tensors (3, H, W) in [0, 1].

Reading goes through Pillow, except 16-bit PNGs: Pillow decodes 48-bit RGB PNGs to 8 bits, so those
are decoded with pypng and keep all 16 bits. Everything a user can hand us that is not a readable
image (missing, empty, truncated, corrupt, not an image, absurdly large) raises one ``ImageReadError``
line that names the file.

Formats: PNG, JPEG, BMP, TIFF and WebP through Pillow; HEIC/HEIF (what phones save) through pillow-heif, the
``heic`` extra (a wheel that bundles libheif), registered with Pillow the first time such a file is opened.
``IMAGE_LIKE_EXTENSIONS`` are pictures lumicap does not read (GIF, camera RAW, ...): a folder scan names them
instead of skipping them in silence.

Conversions: grayscale is repeated to RGB; palette, CMYK and YCbCr images are converted to RGB; an alpha
channel is dropped with an ``AlphaDroppedWarning``; the EXIF orientation tag is applied, so the tensor
is the picture as a viewer shows it (HEIF's own rotation/mirror boxes are applied by libheif). The embedded
ICC colour profile (``image_icc_profile``) is not applied to the pixels: an output is written with its
input's profile, so a Display P3 photo stays a P3 photo.
"""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path

import numpy as np
import torch

from lumicap.errors import ImageReadError, LumicapError, shown
from lumicap.files import atomic_write, remove_stale_partial_files  # noqa: F401  (its old home)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".heic", ".heif")
HEIF_EXTENSIONS = (".heic", ".heif")
# Pictures a folder may hold that lumicap does not read: animated/palette GIFs and camera RAW files (which
# need demosaicing and a camera profile, not a decoder), AVIF, JPEG XL, Photoshop. Scans report them by name.
IMAGE_LIKE_EXTENSIONS = (".gif", ".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".raf", ".orf", ".rw2", ".pef",
                         ".srw", ".raw", ".avif", ".jxl", ".psd")
# ISO-BMFF brands of HEIF still images (HEVC-coded or not), seen at bytes 8..12 of an 'ftyp' box.
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
HEIC_EXTRA_HINT = "HEIC/HEIF photos need pillow-heif: pip install 'lumicap[heic]'"

# Decompression-bomb guard: a file whose header claims more pixels than this is refused before
# decoding. 150 MP is above any camera sensor in the LLIE benchmarks (UHD-LL is 8 MP) with room to spare.
MAX_PIXELS = 150_000_000

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXIF_ORIENTATION_TAG = 0x0112


class AlphaDroppedWarning(UserWarning):
    """An image had an alpha channel; lumicap works on RGB and ignores it."""


def is_image_file(path: str | os.PathLike) -> bool:
    name = os.fspath(path)
    return name.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(name).startswith(".")


def is_unreadable_image_kind(path: str | os.PathLike) -> bool:
    """A picture format lumicap does not read (``IMAGE_LIKE_EXTENSIONS``): worth naming, not worth an error."""
    name = os.fspath(path)
    return name.lower().endswith(IMAGE_LIKE_EXTENSIONS) and not os.path.basename(name).startswith(".")


def _looks_like_heif(path: Path) -> bool:
    if path.suffix.lower() in HEIF_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    return head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS


_HEIF_REGISTERED = False


def _register_heif(path: Path) -> None:
    """Teach Pillow HEIC/HEIF through pillow-heif (the ``heic`` extra), once; missing: one line naming it."""
    global _HEIF_REGISTERED
    if _HEIF_REGISTERED:
        return
    try:
        import pillow_heif
    except ImportError:
        raise ImageReadError(f"{shown(path)}: {HEIC_EXTRA_HINT}") from None
    pillow_heif.register_heif_opener()
    _HEIF_REGISTERED = True


def image_icc_profile(path: str | os.PathLike) -> bytes | None:
    """The ICC colour profile embedded in ``path`` (PNG iCCP, JPEG APP2, TIFF, WebP, HEIF), or None.

    Read from the header (nothing is decoded); an unreadable file raises ``ImageReadError`` as reading does."""
    path = Path(path)
    _check_file(path)
    with _open_pillow(path) as image:
        profile = image.info.get("icc_profile")
    return bytes(profile) if isinstance(profile, (bytes, bytearray)) and profile else None


# --------------------------------------------------------------------------------------------- reading
def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Decode ``path`` to a float32 tensor (3, H, W) in [0, 1] (16-bit files keep 16-bit precision)."""
    array = read_image_array(path)
    scale = 65535.0 if array.dtype == np.uint16 else 255.0
    return torch.from_numpy(array).permute(2, 0, 1).to(torch.float32).div_(scale).contiguous()


def read_image_array(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` to an (H, W, 3) ``uint8`` or ``uint16`` array, oriented and alpha-free.

    Datasets keep these integer arrays in memory (a quarter of the float32 size) and convert per sample.
    """
    path = Path(path)
    _check_file(path)
    png_header = _png_header(path)
    if png_header is not None and png_header[0] == 16:
        # Pillow opens the header only (no decode) so the size check and EXIF tag come from one place.
        with _open_pillow(path) as image:
            check_pixel_count(path, image.size)
            orientation = _orientation(image, path)
        array = _decode_png16(path)
    else:
        with _open_pillow(path) as image:
            check_pixel_count(path, image.size)
            array = _pillow_to_array(path, image)
            orientation = _orientation(image, path)  # after decoding: PNG's getexif() would decode and hide errors
    array = np.ascontiguousarray(_apply_orientation(array, orientation))
    return array if array.flags.writeable else array.copy()  # Pillow's buffers are read-only


def image_bit_depth(path: str | os.PathLike) -> int:
    """8 or 16: the precision of the samples stored in ``path`` (from the header; nothing is decoded)."""
    path = Path(path)
    _check_file(path)
    png_header = _png_header(path)
    if png_header is not None:
        return 16 if png_header[0] == 16 else 8
    with _open_pillow(path) as image:
        return 16 if image.mode.startswith("I;16") or image.mode == "I" else 8


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of the image as displayed (EXIF orientation applied), read from the header only."""
    path = Path(path)
    _check_file(path)
    with _open_pillow(path) as image:
        width, height = image.size
        if _orientation(image, path) in (5, 6, 7, 8):  # these orientations swap width and height
            width, height = height, width
    return height, width


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImageReadError(f"{shown(path)}: no such file")
    if not path.is_file():
        raise ImageReadError(f"{shown(path)}: not a file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{shown(path)}: empty file (0 bytes)")


def check_pixel_count(path: Path, size: tuple[int, int]) -> None:
    """``ImageReadError`` when a (width, height) from a header is above ``MAX_PIXELS`` (a decompression bomb)."""
    width, height = size
    if width * height > MAX_PIXELS:
        raise ImageReadError(
            f"{shown(path)}: {width}x{height} pixels exceeds the limit of {MAX_PIXELS:,} "
            f"(possible decompression bomb; lumicap.data.io.MAX_PIXELS raises it)"
        )


def _png_header(path: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR chunk, or None when the file is not a PNG."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if not head.startswith(_PNG_SIGNATURE):
        return None
    if len(head) < 26 or head[12:16] != b"IHDR":
        raise ImageReadError(f"{shown(path)}: corrupt PNG (no IHDR header)")
    bit_depth, colour_type = struct.unpack(">BB", head[24:26])
    return bit_depth, colour_type


class _open_pillow:
    """``with _open_pillow(path) as image``: Pillow's open with every failure mapped to ImageReadError."""

    def __init__(self, path: Path):
        self.path = path
        self.image = None

    def __enter__(self):
        from PIL import Image, UnidentifiedImageError

        if _looks_like_heif(self.path):
            _register_heif(self.path)
        with warnings.catch_warnings():
            # Pillow warns between its own limit and twice that; our MAX_PIXELS check decides instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # A broken EXIF block is not worth a warning per file: orientation then falls back to 1.
            warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning)
            try:
                self.image = Image.open(self.path)
            except Image.DecompressionBombError:
                raise ImageReadError(
                    f"{shown(self.path)}: image is too large (possible decompression bomb; limit {MAX_PIXELS:,} pixels)"
                ) from None
            except UnidentifiedImageError:
                raise ImageReadError(
                    f"{shown(self.path)}: not an image file (or not in a format lumicap reads: PNG, JPEG, TIFF, BMP, "
                    f"WebP, HEIC)"
                ) from None
            except (OSError, SyntaxError, ValueError, struct.error) as exc:
                raise ImageReadError(f"{shown(self.path)}: cannot open image ({_first_line(exc)})") from None
        return self.image

    def __exit__(self, *exc_info):
        if self.image is not None:
            self.image.close()
        return False


def _orientation(image, path: Path) -> int:
    """EXIF orientation 1..8 (1 when absent or unreadable), the same whether or not pixels were decoded.

    PNG: the eXIf chunk may come before or after the pixel data (PNG allows both). Pillow's ``getexif`` sees
    a late one only by decoding the whole image, so the chunk list is walked instead (headers and seeks,
    no decompression): ``image_size`` and ``read_image_array`` then always agree on the picture's shape.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about corrupt EXIF; we fall back to 1 instead
            if image.format == "PNG":
                raw = _png_exif_chunk(path)
                if raw is None:
                    return 1
                exif = Image.Exif()
                exif.load(raw)
            else:
                exif = image.getexif()
            value = exif.get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:  # a malformed EXIF block must not make an otherwise fine picture unreadable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _png_exif_chunk(path: Path, max_chunks: int = 100_000) -> bytes | None:
    """The data of a PNG's eXIf chunk wherever it is, read by walking the chunk headers; None if absent."""
    with open(path, "rb") as fh:
        if fh.read(8) != _PNG_SIGNATURE:
            return None
        for _ in range(max_chunks):
            header = fh.read(8)
            if len(header) < 8:
                return None
            length, kind = struct.unpack(">I4s", header)
            if kind == b"eXIf":
                data = fh.read(min(length, 1 << 20))
                return bytes(data) if len(data) == min(length, 1 << 20) else None
            if kind == b"IEND":
                return None
            fh.seek(length + 4, os.SEEK_CUR)  # data and CRC
    return None


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels (H, W, C) into the displayed picture for EXIF orientation 1..8."""
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return array.transpose(1, 0, 2)
    if orientation == 6:
        return np.rot90(array, k=-1)  # stored rotated 90 degrees counter-clockwise: turn clockwise
    if orientation == 7:
        return array[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:
        return np.rot90(array, k=1)
    return array


def _pillow_to_array(path: Path, image) -> np.ndarray:
    try:
        image.load()
    except Exception as exc:  # truncated data, broken compressed stream, bad palette, ...
        raise ImageReadError(f"{shown(path)}: cannot decode image ({_first_line(exc)})") from None
    mode = image.mode
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "RGBa", "La"):
        warnings.warn(f"{shown(path)}: alpha channel dropped (lumicap works on RGB)", AlphaDroppedWarning, stacklevel=3)
        image = image.convert("RGB") if mode in ("RGBA", "RGBa") else image.convert("L")
        mode = image.mode
    if mode == "1":
        image = image.convert("L")
        mode = "L"
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGB")
        mode = "RGB"
    if mode == "RGB":
        return np.asarray(image, dtype=np.uint8)
    if mode == "L":
        return np.repeat(np.asarray(image, dtype=np.uint8)[..., None], 3, axis=2)
    if mode.startswith("I;16") or mode == "I":
        gray = np.asarray(image).astype(np.int64)
        if gray.min() < 0 or gray.max() > 65535:
            raise ImageReadError(f"{shown(path)}: integer samples outside 0..65535 are not supported")
        return np.repeat(gray.astype(np.uint16)[..., None], 3, axis=2)
    raise ImageReadError(f"{shown(path)}: unsupported pixel mode '{mode}'")


def _decode_png16(path: Path) -> np.ndarray:
    import png  # pypng

    try:
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        array = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    except Exception as exc:
        raise ImageReadError(f"{shown(path)}: cannot decode 16-bit PNG ({_first_line(exc)})") from None
    planes = int(info["planes"])
    if array.shape != (height, width * planes):
        raise ImageReadError(f"{shown(path)}: truncated 16-bit PNG ({array.shape[0]} of {height} rows)")
    array = array.reshape(height, width, planes)
    if planes in (2, 4):
        warnings.warn(f"{shown(path)}: alpha channel dropped (lumicap works on RGB)", AlphaDroppedWarning, stacklevel=3)
        array = array[..., : planes - 1]
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return array


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


# --------------------------------------------------------------------------------------------- writing
_PILLOW_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
                   ".webp": "WEBP", ".heic": "HEIF", ".heif": "HEIF"}
# Formats whose encoder is lossy and takes a quality (1-100); the others are lossless.
_QUALITY_FORMATS = ("JPEG", "WEBP", "HEIF")


DEFAULT_JPEG_QUALITY = 95


def write_image(
    path: str | os.PathLike,
    image: torch.Tensor,
    bit_depth: int = 8,
    quality: int = DEFAULT_JPEG_QUALITY,
    icc_profile: bytes | None = None,
) -> Path:
    """Write a (3, H, W) tensor in [0, 1] (values outside are clamped) to ``path``; format from the suffix.

    Samples are rounded to the nearest 8- or 16-bit level; 16 bits are written only as PNG. ``quality``
    (1-100) applies to the lossy formats (JPEG, WebP, HEIC). ``icc_profile`` (the input's, from
    ``image_icc_profile``) is embedded so the pixels keep their colour space. HEIC needs the ``heic`` extra.
    The file is
    written to a temporary name in the same folder and renamed over ``path``, so a crash never leaves a
    half-written image and readers never see one. Replaces an existing file: callers decide about that.
    A folder that cannot be written is one ``LumicapError`` naming it.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _PILLOW_FORMATS:
        raise LumicapError(
            f"{shown(path)}: unsupported output format '{path.suffix}' (use one of {', '.join(IMAGE_EXTENSIONS)})"
        )
    if bit_depth not in (8, 16):
        raise LumicapError(f"{shown(path)}: bit_depth must be 8 or 16, got {bit_depth}")
    if bit_depth == 16 and suffix != ".png":
        raise LumicapError(f"{shown(path)}: 16-bit output is written only as PNG")
    if not (isinstance(quality, int) and 1 <= quality <= 100):
        raise LumicapError(f"{shown(path)}: JPEG quality must be an integer from 1 to 100, got {quality!r}")
    if _PILLOW_FORMATS[suffix] == "HEIF":
        _register_heif(path)
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] != 3:
        shape = tuple(image.shape) if hasattr(image, "shape") else type(image).__name__
        raise ValueError(f"write_image expects a (3, H, W) tensor, got {shape}")

    array = _quantize(image, bit_depth)

    def encode(handle) -> None:
        if bit_depth == 16:
            import png  # pypng

            height, width, _ = array.shape
            writer = png.Writer(width, height, greyscale=False, bitdepth=16)
            if icc_profile:
                import io

                buffer = io.BytesIO()
                writer.write(buffer, array.reshape(height, width * 3))
                handle.write(_with_iccp_chunk(buffer.getvalue(), icc_profile))
            else:
                writer.write(handle, array.reshape(height, width * 3))
        else:
            from PIL import Image

            kind = _PILLOW_FORMATS[suffix]
            options = {"quality": quality} if kind in _QUALITY_FORMATS else {}
            if icc_profile and kind != "BMP":
                options["icc_profile"] = icc_profile
            Image.fromarray(array).save(handle, format=kind, **options)

    # Through a temporary file named with the writer's pid, so a later run can tell a killed writer's
    # leftover from a live one's (remove_stale_partial_files).
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, encode)
    except OSError as exc:
        if exc.filename is None:  # the encoder's own failure (a full disk): passed on as it is
            raise
        # The file system refused a path (a read-only folder): name the folder the user chose, not the temporary.
        raise LumicapError(f"{shown(path)}: cannot write into the folder {shown(path.parent)} "
                           f"({exc.strerror or type(exc).__name__})") from None
    return path


def _quantize(image: torch.Tensor, bit_depth: int) -> np.ndarray:
    """(H, W, 3) integer levels of a (3, H, W) image in [0, 1], rounded to nearest.

    Converted a strip of rows at a time into one integer array: the clamped, scaled and rounded float copies
    then exist for a strip, not for the whole photo (writing a 48 MP photo peaked 24 bytes per pixel above the
    result with whole-photo copies, 4 this way)."""
    levels = 65535.0 if bit_depth == 16 else 255.0
    source = image.detach()
    height, width = source.shape[1:]
    array = np.empty((height, width, 3), dtype=np.uint16 if bit_depth == 16 else np.uint8)
    rows = max(1, (1 << 21) // max(1, width))  # about 2 million pixels per strip
    for top in range(0, height, rows):
        strip = source[:, top : top + rows].to("cpu", torch.float32).clamp(0.0, 1.0).mul_(levels).round_()
        array[top : top + rows] = strip.permute(1, 2, 0).numpy()  # whole numbers already: the cast is exact
    return array


def _with_iccp_chunk(png_bytes: bytes, icc_profile: bytes) -> bytes:
    """``png_bytes`` with an iCCP chunk (the profile, zlib-compressed) right after IHDR, where PNG wants it
    (before the pixel data); pypng writes 16-bit files but has no option for a profile."""
    import zlib

    data = b"ICC profile\0\0" + zlib.compress(icc_profile)  # name, NUL, compression method 0 (deflate)
    chunk = struct.pack(">I", len(data)) + b"iCCP" + data + struct.pack(">I", zlib.crc32(b"iCCP" + data) & 0xFFFFFFFF)
    ihdr_end = 8 + 8 + 13 + 4  # signature, IHDR length+type, IHDR data, CRC
    return png_bytes[:ihdr_end] + chunk + png_bytes[ihdr_end:]
