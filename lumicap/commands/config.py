"""`lumicap config show|check|schema`: look at experiment configs without training.

    lumicap config show CONFIG [KEY=VALUE ...]   the resolved config (base chain, overrides, defaults) as YAML
    lumicap config check CONFIG|DIR ... [--full] validate; one line per problem; exit 1 when any file has one
    lumicap config schema [--out FILE]           JSON Schema of config files (editor completion and checks)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lumicap.commands.train import _IntermixedParser


def register(sub) -> None:
    parser = sub.add_parser(
        "config",
        help="show a resolved config, check configs without training, or write the config JSON Schema",
        description="Experiment configs without training: show, check, schema.",
    )
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION")

    show = actions.add_parser(
        "show", help="print the resolved config (base chain, overrides, every default filled in)",
        description="Print CONFIG as lumicap train would use it: its base: chain merged, KEY=VALUE overrides "
        "applied, every default filled in.",
    )
    show.__class__ = _IntermixedParser
    show.add_argument("config", help="YAML config file")
    show.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. train.amp=bf16")
    show.set_defaults(func=_show)

    check = actions.add_parser(
        "check", help="validate config files (folders: every *.yaml below them); exit 1 on any problem",
        description="Validate config files against the schema and the registered models, one line per problem. "
        "With --full also check what lumicap train checks before starting on this machine: the dataset, "
        "init weights, VGG weights, the MFR teacher and the output folder.",
    )
    check.add_argument("paths", nargs="+", metavar="CONFIG", help="YAML config files or folders of them")
    check.add_argument("--full", action="store_true", help="also check data, weights, teacher and output folder")
    check.set_defaults(func=_check)

    schema = actions.add_parser(
        "schema", help="write the JSON Schema of config files (for editors)",
        description="Write the JSON Schema of lumicap config files. Editors with the YAML language server "
        "complete keys and flag wrong values in files whose first line is "
        "'# yaml-language-server: $schema=PATH/TO/SCHEMA.json'.",
    )
    schema.add_argument("--out", help="file to write (default: standard output)")
    schema.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    schema.set_defaults(func=_schema)
    parser.set_defaults(func=lambda args: parser.print_help() or 0)


def _show(args: argparse.Namespace) -> int:
    from lumicap.config import load_config, resolved_yaml

    sys.stdout.write(resolved_yaml(load_config(Path(args.config), list(args.overrides))))
    return 0


def _config_files(paths: list[str]) -> list[Path]:
    from lumicap.errors import LumicapError

    files: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = sorted(path.rglob("*.yaml")) + sorted(path.rglob("*.yml"))
            if not found:
                raise LumicapError(f"{path}: no *.yaml files below this folder")
            files += found
        else:
            files.append(path)
    return files


def _check(args: argparse.Namespace) -> int:
    from lumicap.config import load_config
    from lumicap.errors import LumicapError

    files = _config_files(args.paths)
    bad = 0
    for path in files:
        lines: list[str] = []
        try:
            cfg = load_config(path)
        except LumicapError as exc:
            lines = str(exc).splitlines()
        else:
            if args.full:
                from lumicap.engine.preflight import check_run

                try:
                    check_run(cfg)
                except LumicapError as exc:
                    lines = [f"{path}: {line}" for line in str(exc).splitlines()]
        bad += bool(lines)
        for line in lines:
            print(line)
    extra = " (with data, weights, teacher and output folder)" if args.full else ""
    print(f"{len(files)} config file(s) checked{extra}: {len(files) - bad} ok, {bad} with problems")
    return 1 if bad else 0


def _schema(args: argparse.Namespace) -> int:
    from lumicap.config import json_schema

    from lumicap.errors import LumicapError

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.out:
        out = Path(args.out)
        # As every --out of lumicap: an existing file is replaced only when asked, and never half-written.
        if out.exists() and not args.overwrite:
            raise LumicapError(f"{out}: already exists (pass --overwrite to replace it)")
        from lumicap.files import atomic_write, check_output_file

        check_output_file(out)
        try:
            atomic_write(out, text)
        except OSError as exc:
            raise LumicapError(f"{out}: cannot write the schema ({exc.strerror or exc})") from None
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
