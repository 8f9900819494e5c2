"""Command-line options that several commands share, defined once: which model (``--model``/``--weights``),
where it runs (``--device``) and how big photos are split (``--tile``, ``--max-megapixels``, ``--tile-overlap``,
``--network-megapixels``).

Every number is checked finite and in range before a command creates anything (``nan`` or ``inf`` must not
switch a limit off), with one rule for where: a shared option is checked by the library object it becomes
(``TileSettings``; ``--network-megapixels`` by the check ``load_inference_model`` makes), called first thing by
``tile_settings``, so the library and every command say the same line; a number only one command uses is
checked while parsing, by the argparse types ``finite_float`` and ``int_in_range`` (a usage error, exit 2).
Both use the ranges and the check of ``lumicap.limits``.
``OneLineErrorParser`` is the parser class of the ``lumicap`` command: a usage error is one line, like every
other error. Parsing stays torch-free: ``lumicap --help`` builds every command's parser.

    parser.add_argument("--quality", type=int_in_range(1, 100))
    parser.add_argument("--max-upload-mb", type=finite_float(*MAX_UPLOAD_MB_RANGE, low_open=True))
"""

from __future__ import annotations

import argparse
import math
import re
from typing import Callable

from lumicap.limits import NETWORK_MEGAPIXELS_RANGE, check_finite, describe_range
from lumicap.names import DEVICE_CHOICES

MODEL_FORMS = (
    "'default' (the shipped model), a .safetensors file with its .json sidecar, a lumicap training checkpoint "
    "or run folder (its best.pt), official pretrained weights by name (e.g. retinexformer-lol-v1-official), "
    "a registry network name with --weights, or FILE.onnx; 'lumicap models' lists every name"
)


def finite_float(
    low: float | None = None, high: float | None = None, *, low_open: bool = False
) -> Callable[[str], float]:
    """An argparse ``type``: a finite float in [low, high] (``(low, high]`` with ``low_open``)."""

    def parse(text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        allowed = describe_range(low, high, low_open)
        if not math.isfinite(number):
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: give a finite number, {allowed}")
        try:
            return check_finite(number, low, high, low_open=low_open)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text} is outside the allowed range: {allowed}") from None

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
    """An ``ArgumentParser`` whose usage errors are one line (``lumicap: error: argument --quality: ...``)
    pointing at the command's ``--help``, instead of the usage block followed by the message: every error lumicap
    prints is one ``lumicap: error:`` line (a file name holding a newline is escaped, see
    ``lumicap.errors.one_line``)."""

    def error(self, message: str):
        from lumicap.errors import one_line

        self.exit(2, f"lumicap: error: {one_line(message)} (see '{self.prog} --help')\n")


def add_model_options(parser: argparse.ArgumentParser, *, several: bool = False) -> None:
    """``--model`` (one, default 'default'; or, with ``several``, repeatable for a menu) and ``--weights``."""
    if several:
        parser.add_argument(
            "--model", metavar="default|NAME|FILE|RUN_DIR", action="append",
            help="model(s) for the page's menu; the first is preselected (default: the shipped model). "
            "Repeat to offer several; cached registry weights are offered too. Each is " + MODEL_FORMS,
        )
    else:
        parser.add_argument("--model", metavar="NAME|FILE", default="default", help=MODEL_FORMS)
    parser.add_argument("--weights", metavar="FILE",
                        help="weights for --model NAME: a lumicap or official checkpoint of that model"
                        + (" (with a single --model)" if several else ""))


def device_choice(text: str) -> str:
    """argparse type of ``--device``: auto, cpu, cuda or cuda:N (which GPU)."""
    if text in DEVICE_CHOICES or re.fullmatch(r"cuda:\d+", text):
        return text
    raise argparse.ArgumentTypeError(f"invalid device '{text}' (choose {', '.join(DEVICE_CHOICES)} or cuda:N)")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", type=device_choice, metavar="auto|cpu|cuda[:N]",
                        help="where the network runs (default: auto, cuda if available)")


def add_tiling_options(parser: argparse.ArgumentParser, *, videos: bool = False) -> None:
    """``--tile N`` or ``--max-megapixels X`` (one of them), ``--tile-overlap``, ``--network-megapixels`` (with
    ``videos``, its help also gives the size videos use); their ranges are checked by ``tile_settings``."""
    tiling = parser.add_mutually_exclusive_group()
    tiling.add_argument("--tile", type=int, metavar="N", help="always process in N x N tiles")
    tiling.add_argument("--max-megapixels", type=float, metavar="X",
                        help="tile images larger than X megapixels (default 2 on CPU, 4 on CUDA)")
    parser.add_argument("--tile-overlap", type=int, default=64, metavar="N",
                        help="tile overlap in pixels (default 64); automatic tiles are 512 px, or twice the overlap "
                        "if larger")
    parser.add_argument(
        "--network-megapixels", type=float, metavar="X",
        help="networks that predict a transform (IAT, the default model): run the network on at most X MP and "
        "apply its transform at full resolution instead of tiling (default: the model's setting, 1 for the "
        "default model; 0: off)" + (". Videos: default 0.1 (speed), 0: whole frames" if videos else ""),
    )


def tile_settings(args: argparse.Namespace):
    """The ``TileSettings`` of the tiling options, and ``--network-megapixels`` checked as ``load_inference_model``
    checks it; an out-of-range or non-finite value is one ``LumicapError`` line, before the command does anything."""
    from lumicap.errors import LumicapError
    from lumicap.inference import TileSettings  # torch: only when a command runs

    if args.network_megapixels is not None:
        try:
            check_finite(args.network_megapixels, *NETWORK_MEGAPIXELS_RANGE, what="--network-megapixels")
        except ValueError as exc:
            raise LumicapError(f"{exc} (0: off)") from None
    return TileSettings(tile=args.tile, overlap=args.tile_overlap, max_megapixels=args.max_megapixels)
