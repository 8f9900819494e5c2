"""`lumicap weights list|download|path|verify|bundle|import`: the pretrained files lumicap knows and their cache."""

from __future__ import annotations

import argparse
import sys


def register(sub):
    parser = sub.add_parser(
        "weights",
        help="list, download, locate, verify, bundle and import pretrained weight files",
        description=(
            "Known weight files (teacher CLIP/GPT-2/ClipCap, LPIPS, VGG) and named sets of them (a teacher "
            "preset's name gives every file it needs), and the cache ($LUMICAP_CACHE or ~/.cache/lumicap, or "
            "--cache-dir). For a machine without network: 'bundle' on a connected machine, carry the bundle "
            "over, 'import' it there. LUMICAP_OFFLINE=1 or HF_HUB_OFFLINE=1: no download is ever attempted."
        ),
    )
    parser.add_argument("--cache-dir", metavar="DIR", help="cache folder (default $LUMICAP_CACHE or ~/.cache/lumicap)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="every known file (name, size, cached or not, source) and set")
    for name, text in (
        ("download", "download NAME... (files or sets) into the cache, with progress, and check them"),
        ("path", "print where the files of NAME... live in the cache (exit 1 when one is not there yet)"),
        ("verify", "check the cached files of NAME... against their published or recorded sha256 "
                   "(exit 1 when one is missing or unverified: not downloaded by lumicap)"),
        ("bundle", "gather every file NAME... needs (from the cache, downloading what is missing) into a "
                   "bundle with a manifest, for a machine without network"),
    ):
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument("names", nargs="+", metavar="NAME")
        if name == "bundle":
            action.add_argument("--out", required=True, metavar="DIR|FILE.tar", help="a new folder or .tar file")
        # Accepted after the action too; SUPPRESS keeps a --cache-dir given before it.
        action.add_argument("--cache-dir", metavar="DIR", default=argparse.SUPPRESS, help="cache folder")
    text = ("check every file of a bundle against its manifest and the catalogue and install them all into "
            "the cache, or refuse and install none; a cached file is never overwritten")
    action = actions.add_parser("import", help=text, description=text)
    action.add_argument("bundle", metavar="BUNDLE", help="a folder or .tar written by 'lumicap weights bundle'")
    action.add_argument("--cache-dir", metavar="DIR", default=argparse.SUPPRESS, help="cache folder")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    root = Path(args.cache_dir).expanduser() if getattr(args, "cache_dir", None) else None
    if root is not None and root.exists() and not root.is_dir():
        from lumicap.errors import WeightsError

        raise WeightsError(f"--cache-dir {root}: exists and is not a folder")
    action = getattr(args, "action", None) or "list"
    handler = {
        "list": _list,
        "download": _download,
        "path": _path,
        "verify": _verify,
        "bundle": _bundle,
        "import": _import,
    }
    return handler[action](args, root)


def _list(args, root) -> int:
    from lumicap.weights import cached_path, known_sets, known_weights

    rows = [("NAME", "SIZE", "CACHED", "SOURCE")]
    for name, entry in sorted(known_weights().items()):
        cached = "yes" if cached_path(entry, root).is_file() else "no"
        rows.append((name, _human_size(entry.size), cached, entry.source))
    _table(rows)
    print()
    _table([("SET", "FILES")] + [(name, " ".join(s.members)) for name, s in sorted(known_sets().items())])
    from lumicap.inference.loading import SHIPPED_MODELS

    print(f"\nshipped inside the package (no download): {', '.join(SHIPPED_MODELS)}; "
          "'lumicap models' lists every name --model takes")
    return 0


def _download(args, root) -> int:
    from lumicap.weights import cached_path, ensure_weights, expand_names

    entries = expand_names(args.names)
    already = {e.name for e in entries if cached_path(e, root).is_file()}
    paths = ensure_weights([e.name for e in entries], download=True, root=root, fetch_names=args.names)
    for entry in entries:
        print(f"{entry.name}: {'already cached' if entry.name in already else 'downloaded'}  {paths[entry.name]}")
    return 0


def _path(args, root) -> int:
    from lumicap.weights import cached_path, expand_names

    code = 0
    for entry in expand_names(args.names):
        target = cached_path(entry, root)
        print(target)
        if not target.is_file():
            print(f"lumicap: '{entry.name}' is not downloaded yet (source: {entry.source})", file=sys.stderr)
            code = 1
    return code


def _verify(args, root) -> int:
    from lumicap.errors import WeightsError
    from lumicap.weights import cached_path, check_file, expand_names

    code, problems, unverified = 0, [], []
    for entry in expand_names(args.names):
        target = cached_path(entry, root)
        if not target.is_file():
            print(f"{entry.name}: missing  {target}  (run 'lumicap weights download {entry.name}')")
            code = 1
            continue
        result = check_file(entry, target)
        if result.problem:
            problems.append(result.problem)
        elif result.trusted_by is None:
            # Nothing vouches for a file placed by hand (or by anything else): say so, never bless it.
            print(f"{entry.name}: unverified: not downloaded by lumicap  sha256 {result.sha256}  {target}")
            unverified.append(entry.name)
            code = 1
        else:
            print(f"{entry.name}: ok  sha256 {result.sha256} ({result.trusted_by})  {target}")
    if problems:
        raise WeightsError("; ".join(problems))
    if unverified:
        print(
            "lumicap: unverified files are used as they are; to have one checked, delete it and run "
            f"'lumicap weights download {' '.join(unverified)}' (or compare its sha256 with one you trust)",
            file=sys.stderr,
        )
    return code


def _bundle(args, root) -> int:
    from lumicap.weights.bundle import make_bundle

    files = make_bundle(args.names, args.out, root=root)
    for item in files:
        print(f"{item.entry.name}: bundled  {_human_size(item.size)}  sha256 {item.sha256}")
    total = sum(item.size for item in files)
    print(f"wrote {args.out}: {len(files)} files, {_human_size(total)}; on the machine without network: "
          f"lumicap weights import {args.out}")
    return 0


def _import(args, root) -> int:
    from lumicap.weights import cached_path

    from lumicap.weights.bundle import import_bundle

    for item in import_bundle(args.bundle, root=root):
        print(f"{item.entry.name}: {item.status}  {cached_path(item.entry, root)}")
    return 0


def _table(rows) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])


def _human_size(size: int | None) -> str:
    if not size:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return "?"
