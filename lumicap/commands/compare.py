"""`lumicap compare RUN_DIR...`: the paper-style results table of baselines and their +MFR runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from lumicap.commands.options import int_in_range


def register(sub) -> None:
    parser = sub.add_parser(
        "compare",
        help="results table: baseline vs +MFR, mean ± std over seeds, paired bootstrap 95%% CI",
        description="Collects the test results of training runs (run folders, group folders or any parent "
        "folder) and prints a markdown table; --out also writes table.md, table.csv and table.tex.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run, group or parent folders")
    parser.add_argument("--out", help="folder for table.md, table.csv, table.tex")
    parser.add_argument("--overwrite", action="store_true", help="replace existing tables in --out")
    parser.add_argument(
        "--resamples", type=int_in_range(100, 10_000_000), default=10_000, help="bootstrap resamples (default 10000)"
    )
    parser.add_argument(
        "--bootstrap-seed", type=int_in_range(0, 2**63 - 1), default=0, help="bootstrap RNG seed (default 0)"
    )
    parser.add_argument(
        "--allow-mixed", action="store_true", help="keep runs trained/measured under different protocols, flagged"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lumicap.engine.compare import build_table, collect, to_csv, to_latex, to_markdown
    from lumicap.errors import LumicapError

    if args.resamples < 100:
        raise LumicapError(f"--resamples must be >= 100, got {args.resamples}")
    if args.out:
        from lumicap.files import check_output_folder

        check_output_folder(args.out)
    records, notes = collect(args.runs)
    rows, more_notes = build_table(
        records, resamples=args.resamples, seed=args.bootstrap_seed, allow_mixed=args.allow_mixed
    )
    markdown = to_markdown(rows, args.resamples, args.bootstrap_seed)
    print(markdown, end="")
    for note in notes + more_notes:
        print(f"note: {note}")
    if args.out:
        out = Path(args.out)
        files = {
            "table.md": markdown,
            "table.csv": to_csv(rows),
            "table.tex": to_latex(rows, args.resamples, args.bootstrap_seed),
        }
        existing = [str(out / name) for name in files if (out / name).exists()]
        if existing and not args.overwrite:
            raise LumicapError(f"{', '.join(existing)} already exist; pass --overwrite to replace")
        try:
            out.mkdir(parents=True, exist_ok=True)
            for name, text in files.items():
                (out / name).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise LumicapError(f"--out {out}: cannot write the tables ({exc.strerror or exc})") from None
        print(f"wrote {', '.join(str(out / name) for name in files)}")
    return 0
