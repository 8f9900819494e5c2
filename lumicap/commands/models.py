"""`lumicap models` (placeholder until its issue lands; the owning module replaces this file)."""

from lumicap.errors import LumicapError


def register(sub):
    parser = sub.add_parser("models", help="(not yet available)")
    parser.set_defaults(func=run)


def run(args):
    raise LumicapError("'lumicap models' is not available yet")
