"""`lumicap weights` (placeholder until its issue lands; the owning module replaces this file)."""

from lumicap.errors import LumicapError


def register(sub):
    parser = sub.add_parser("weights", help="(not yet available)")
    parser.set_defaults(func=run)


def run(args):
    raise LumicapError("'lumicap weights' is not available yet")
