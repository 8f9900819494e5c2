"""Numeric options: finite, in range; argparse types for the command line and the same check for the library.

``type=float`` takes ``nan`` and ``inf``, and comparisons with NaN are always false, so a check such as
``if value <= 0: refuse`` lets NaN through: ``--max-upload-megapixels nan`` switched the limit off. These
types refuse such values before a command creates anything (argparse reports them as usage errors, exit 2)::

    parser.add_argument("--max-megapixels", type=finite_float(0, 10_000, low_open=True))
    parser.add_argument("--tile", type=int_in_range(16, 65_536))

The library checks the same ranges where it takes these settings (``TileSettings``), so a caller that does
not go through the command line is refused the same inputs. ``OneLineErrorParser`` is the parser class of the
``lumicap`` command: a usage error is one line, like every other error.
"""

from __future__ import annotations

import argparse
import math
from typing import Callable

# Ranges of the options lumicap enhance and lumicap serve share (the library checks the same: TileSettings,
# FullResolutionTransform). Kept here, away from torch, so building the parsers stays cheap.
TILE_RANGE = (16, 65_536)
OVERLAP_RANGE = (0, 8_192)
MAX_MEGAPIXELS_RANGE = (0.0, 10_000.0)  # above 0; beyond any photo the decoder accepts (data.io.MAX_PIXELS)
NETWORK_MEGAPIXELS_RANGE = (0.0, 1_000.0)  # 0 turns the full-resolution transform off


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
    def number(value: float) -> str:
        return str(value) if isinstance(value, int) else f"{value:g}"

    parts = []
    if low is not None:
        parts.append(f"{'above' if low_open else 'at least'} {number(low)}")
    if high is not None:
        parts.append(f"at most {number(high)}")
    return " and ".join(parts) or "a finite number"


def finite_float(low: float | None = None, high: float | None = None, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite float in [low, high] (``(low, high]`` with ``low_open``)."""

    def parse(text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(number):
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: give a finite number, {describe_range(low, high, low_open)}")
        try:
            return check_finite(number, low, high, low_open=low_open)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text} is outside the allowed range: {describe_range(low, high, low_open)}") from None

    parse.__name__ = "finite number"  # argparse names the type in its messages
    return parse


def int_in_range(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: a whole number in [low, high]."""

    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if (low is not None and number < low) or (high is not None and number > high):
            raise argparse.ArgumentTypeError(f"{number} is outside the allowed range: {describe_range(low, high)}")
        return number

    parse.__name__ = "whole number"
    return parse


class OneLineErrorParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (``lumicap enhance: error: argument --quality: ...``)
    pointing at ``--help``, instead of the usage block followed by the message: every error lumicap prints is
    one line (a file name holding a newline is escaped, see ``lumicap.errors.one_line``)."""

    def error(self, message: str):
        from lumicap.errors import one_line

        self.exit(2, f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')\n")
