"""Command-line options that several commands share, defined once: which model (``--model``/``--weights``),
where it runs (``--device``) and how big photos are split (``--tile``, ``--max-megapixels``, ``--tile-overlap``,
``--network-megapixels``).

The values are checked by the library objects they become (``TileSettings``, ``resolve_device``,
``load_inference_model``), so a command and a library caller are refused the same inputs with the same words.
Parsing stays torch-free: ``lumicap --help`` builds every command's parser.
"""

from __future__ import annotations

import argparse
import re

from lumicap.names import DEVICE_CHOICES

MODEL_FORMS = (
    "'default' (the shipped model), a .safetensors file with its .json sidecar, a lumicap training checkpoint "
    "or run folder (its best.pt), official pretrained weights by name (e.g. retinexformer-lol-v1-official), "
    "a registry network name with --weights, or FILE.onnx; 'lumicap models' lists every name"
)


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


def add_tiling_options(parser: argparse.ArgumentParser) -> None:
    """``--tile N`` or ``--max-megapixels X`` (one of them), ``--tile-overlap``, ``--network-megapixels``."""
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
        "default model; 0: off)",
    )


def tile_settings(args: argparse.Namespace):
    """The ``TileSettings`` of the tiling options; out-of-range values are refused there (one line)."""
    from lumicap.inference import TileSettings  # torch: only when a command runs

    return TileSettings(tile=args.tile, overlap=args.tile_overlap, max_megapixels=args.max_megapixels)
