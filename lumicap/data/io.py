"""Image files <-> float tensors (3, H, W) in [0, 1].

Reading goes through Pillow, except 16-bit PNGs: Pillow decodes 48-bit RGB PNGs to 8 bits, so those
are decoded with pypng and keep all 16 bits. Everything a user can hand us that is not a readable
image (missing, empty, truncated, corrupt, not an image, absurdly large) raises one ``ImageReadError``
line that names the file.

Conversions: grayscale is repeated to RGB; palette, CMYK and YCbCr images are converted to RGB; an alpha
channel is dropped with an ``AlphaDroppedWarning``; the EXIF orientation tag is applied, so the tensor
is the picture as a viewer shows it.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from lumicap.errors import ImageReadError, LumicapError, shown

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

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
                raise ImageReadError(f"{shown(self.path)}: not an image file (or a format Pillow cannot read)") from None
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
_PILLOW_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}


DEFAULT_JPEG_QUALITY = 95


def write_image(
    path: str | os.PathLike, image: torch.Tensor, bit_depth: int = 8, quality: int = DEFAULT_JPEG_QUALITY
) -> Path:
    """Write a (3, H, W) tensor in [0, 1] (values outside are clamped) to ``path``; format from the suffix.

    Samples are rounded to the nearest 8- or 16-bit level; 16 bits are written only as PNG. ``quality``
    (1-100) applies to JPEG only. The file is
    written to a temporary name in the same folder and renamed over ``path``, so a crash never leaves a
    half-written image and readers never see one. Replaces an existing file: callers decide about that.
    A folder that cannot be written is one ``LumicapError`` naming it.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _PILLOW_FORMATS:
        raise LumicapError(f"{shown(path)}: unsupported output format '{path.suffix}' (use one of {', '.join(IMAGE_EXTENSIONS)})")
    if bit_depth not in (8, 16):
        raise LumicapError(f"{shown(path)}: bit_depth must be 8 or 16, got {bit_depth}")
    if bit_depth == 16 and suffix != ".png":
        raise LumicapError(f"{shown(path)}: 16-bit output is written only as PNG")
    if not (isinstance(quality, int) and 1 <= quality <= 100):
        raise LumicapError(f"{shown(path)}: JPEG quality must be an integer from 1 to 100, got {quality!r}")
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] != 3:
        shape = tuple(image.shape) if hasattr(image, "shape") else type(image).__name__
        raise ValueError(f"write_image expects a (3, H, W) tensor, got {shape}")

    array = _quantize(image, bit_depth)

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The writer's pid is in the name, so a later run can tell a killed writer's leftover from a live one's.
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.lumicap-{os.getpid()}-", suffix=".part")
    except OSError as exc:  # name the folder the user chose, not the hidden temporary file
        raise LumicapError(f"{shown(path)}: cannot write into the folder {shown(path.parent)} "
                           f"({exc.strerror or type(exc).__name__})") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            if bit_depth == 16:
                import png  # pypng

                height, width, _ = array.shape
                png.Writer(width, height, greyscale=False, bitdepth=16).write(fh, array.reshape(height, width * 3))
            else:
                from PIL import Image

                options = {"quality": quality} if _PILLOW_FORMATS[suffix] == "JPEG" else {}
                Image.fromarray(array).save(fh, format=_PILLOW_FORMATS[suffix], **options)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; an output image is an ordinary file
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
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


_PART_FILE = re.compile(r"^\..*\.lumicap-(\d+)-[^.]*\.part$")


def remove_stale_partial_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files ``write_image`` left in ``folder`` when its process was killed.

    Only files whose writing process no longer exists are removed, so a run writing into the same
    folder at the same time keeps its own. Returns the removed paths.
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        names = [entry.name for entry in os.scandir(folder) if entry.is_file(follow_symlinks=False)]
    except OSError:
        return removed
    for name in names:
        match = _PART_FILE.match(name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        try:
            (folder / name).unlink()
        except OSError:
            continue
        removed.append(folder / name)
    return removed


def _process_alive(pid: int) -> bool:
    if os.name != "posix":  # no harmless existence probe elsewhere (os.kill would terminate it): keep the file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True
