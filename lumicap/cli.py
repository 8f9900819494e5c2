"""The ``lumicap`` command: one entry point, one module per subcommand under ``lumicap.commands``.

Each command module defines ``register(subparsers)`` which adds its parser and sets ``func``.
Command modules import heavy libraries (torch, transformers) inside their ``run`` functions so that
``lumicap --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from lumicap import __version__
from lumicap.errors import LumicapError, file_system_refusal, one_line
from lumicap.commands.options import OneLineErrorParser

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
    "convert",
]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="lumicap",
        description="Low-light image enhancement with caption-guided multimodal feature regularization.",
    )
    parser.add_argument("--version", action="version", version=f"lumicap {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"lumicap.commands.{name}")
        module.register(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning is one line for the user (no source file, line number or code line)."""
    print(f"lumicap: warning: {one_line(str(message))}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            result = args.func(args)
    except LumicapError as exc:
        # One line per problem (a config error lists every problem of its file); each line escaped so a
        # file name holding a newline cannot start a forged message of its own.
        for line in getattr(exc, "problems", None) or [str(exc)]:
            print(f"lumicap: error: {one_line(str(line))}", file=sys.stderr)
        return 2
    except OSError as exc:
        # The file system refused something the command did not word itself (a folder that cannot be
        # written, a full disk): still one line naming the file, as for every error a user can cause.
        print(f"lumicap: error: {one_line(file_system_refusal(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lumicap: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
