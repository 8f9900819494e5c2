"""`lumicap eval` (placeholder until its issue lands; the owning module replaces this file)."""

from lumicap.errors import LumicapError


def register(sub):
    parser = sub.add_parser("eval", help="(not yet available)")
    parser.set_defaults(func=run)


def run(args):
    raise LumicapError("'lumicap eval' is not available yet")
