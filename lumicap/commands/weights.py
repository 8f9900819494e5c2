"""`lumicap weights list|download|path|verify`: the pretrained files lumicap knows and their cache."""

from __future__ import annotations

import argparse
import sys


def register(sub):
    parser = sub.add_parser(
        "weights",
        help="list, download, locate and verify pretrained weight files",
        description=(
            "Known weight files (teacher CLIP/GPT-2/ClipCap, LPIPS, VGG) and the cache "
            "($LUMICAP_CACHE or ~/.cache/lumicap, or --cache-dir). Without network access, download "
            "a file by hand from its source and put it at the path 'lumicap weights path NAME' prints."
        ),
    )
    parser.add_argument("--cache-dir", metavar="DIR", help="cache folder (default $LUMICAP_CACHE or ~/.cache/lumicap)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="name, size, whether cached, source")
    for name, text in (
        ("download", "download NAME into the cache (with progress) and check its sha256"),
        ("path", "print where NAME lives in the cache (exit 1 when it is not there yet)"),
        ("verify", "check the cached NAME against its published or recorded sha256"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("name", metavar="NAME")
        # Accepted after the action too; SUPPRESS keeps a --cache-dir given before it.
        action.add_argument("--cache-dir", metavar="DIR", default=argparse.SUPPRESS, help="cache folder")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from lumicap.errors import LumicapError
    from lumicap.weights import cached_path, get_known, known_weights, resolve_weights, verify_file

    root = Path(args.cache_dir).expanduser() if getattr(args, "cache_dir", None) else None
    action = getattr(args, "action", None) or "list"
    if action == "list":
        rows = [("NAME", "SIZE", "CACHED", "SOURCE")]
        for name, entry in sorted(known_weights().items()):
            cached = "yes" if cached_path(entry, root).is_file() else "no"
            rows.append((name, _human_size(entry.size), cached, entry.source))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
        return 0
    entry = get_known(args.name)
    target = cached_path(entry, root)
    if action == "path":
        print(target)
        if not target.is_file():
            print(f"lumicap: '{entry.name}' is not downloaded yet (source: {entry.source})", file=sys.stderr)
            return 1
        return 0
    if action == "verify":
        if not target.is_file():
            raise LumicapError(f"'{entry.name}' is not in the cache ({target}); run 'lumicap weights download {entry.name}'")
        digest = verify_file(entry, target)
        pinned = "published" if entry.sha256 else "recorded at download"
        print(f"{entry.name}: ok  sha256 {digest} ({pinned})  {target}")
        return 0
    if action == "download":
        already = target.is_file()
        path = resolve_weights(entry.name, download=True, root=root)
        print(f"{entry.name}: {'already cached' if already else 'downloaded'}  {path}")
        return 0
    raise LumicapError(f"unknown action '{action}'")


def _human_size(size: int | None) -> str:
    if not size:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return "?"
