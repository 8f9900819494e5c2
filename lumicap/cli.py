"""The ``lumicap`` command: one entry point, one module per subcommand under ``lumicap.commands``.

Each command module defines ``register(subparsers)`` which adds its parser and sets ``func``.
Command modules import heavy libraries (torch, transformers) inside their ``run`` functions so that
``lumicap --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from lumicap import __version__
from lumicap.errors import LumicapError

# Order is the order shown by ``lumicap --help``.
COMMAND_MODULES = [
    "enhance",
    "train",
    "config",
    "eval",
    "compare",
    "caption",
    "report",
    "models",
    "weights",
    "export",
    "serve",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lumicap",
        description="Low-light image enhancement with caption-guided multimodal feature regularization.",
    )
    parser.add_argument("--version", action="version", version=f"lumicap {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"lumicap.commands.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        result = args.func(args)
    except LumicapError as exc:
        for line in str(exc).splitlines() or [""]:
            print(f"lumicap: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lumicap: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
