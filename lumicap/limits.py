"""Numeric settings: their ranges, and the one check that a value is finite and inside its range.

``float`` takes ``nan`` and ``inf``, and comparisons with NaN are always false, so a check such as
``if value <= 0: refuse`` lets NaN through: ``--max-upload-megapixels nan`` switched the limit off. The library
objects that take these settings (``TileSettings``, serve's upload ``Limits``, the full-resolution transform)
call ``check_finite`` with the ranges below, and the command line's argparse types
(``lumicap.commands.options.finite_float``/``int_in_range``) refuse the same values while parsing, before a
command creates anything. Torch-free and import-free, so building the parsers stays cheap.
"""

from __future__ import annotations

import math

# Ranges of the options lumicap enhance and lumicap serve share.
TILE_RANGE = (16, 65_536)
OVERLAP_RANGE = (0, 8_192)
MAX_MEGAPIXELS_RANGE = (0.0, 10_000.0)  # above 0; beyond any photo the decoder accepts (data.io.MAX_PIXELS)
NETWORK_MEGAPIXELS_RANGE = (0.0, 1_000.0)  # 0 turns the full-resolution transform off
# lumicap serve's upload limits
MAX_UPLOAD_MB_RANGE = (0.0, 100_000.0)  # above 0; 100 GB is far beyond any photo
MAX_UPLOAD_MEGAPIXELS_RANGE = (0.0, 150.0)  # above 0; the image reader refuses more (lumicap.data.io.MAX_PIXELS)
# The chroma gain after a network (lumicap.inference.chroma): 0 is grey, 1 the network's own colours
CHROMA_GAIN_RANGE = (0.0, 3.0)


def check_finite(value: float, low: float | None = None, high: float | None = None, *, low_open: bool = False,
                 what: str = "value") -> float:
    """``value`` as a float when it is finite and in [low, high] (``(low, high]`` with ``low_open``);
    otherwise ``ValueError`` with one line saying what is allowed."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number, got {value}")
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and number > high
    if too_low or too_high:
        raise ValueError(f"{what} must be {describe_range(low, high, low_open)}, got {value:g}")
    return number


def describe_range(low: float | None, high: float | None, low_open: bool = False) -> str:
    """``at least 16 and at most 65536``, ``above 0``: a range in words, for messages and help texts."""

    def number(value: float) -> str:
        return str(value) if isinstance(value, int) else f"{value:g}"

    parts = []
    if low is not None:
        parts.append(f"{'above' if low_open else 'at least'} {number(low)}")
    if high is not None:
        parts.append(f"at most {number(high)}")
    return " and ".join(parts) or "a finite number"
