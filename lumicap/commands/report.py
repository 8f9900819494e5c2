"""`lumicap report PRED_DIR [--low DIR] [--gt DIR] [--captions FILE] [--compare LABEL=DIR] [--niqe-mode gray|y|off]
--out DIR`: contact sheet + HTML page."""

from __future__ import annotations

from lumicap.names import NIQE_REPORT_CHOICES


def register(sub):
    parser = sub.add_parser(
        "report",
        help="contact sheet and sortable HTML page of enhanced images (with metrics against references)",
        description=(
            "Write OUT/index.html (a table sortable by PSNR, SSIM, brightness, clipped pixels, NIQE, "
            "colourfulness and LOE: worst first on the first click), OUT/contact_sheet.png (dark input | enhanced | "
            "reference per image) and OUT/metrics.csv. Images match across folders by relative path without the suffix."
        ),
    )
    parser.add_argument("pred_dir", metavar="PRED_DIR", help="folder of enhanced images")
    parser.add_argument("--low", metavar="DIR", help="folder of the dark inputs")
    parser.add_argument("--gt", metavar="DIR", help="folder of reference images (adds PSNR/SSIM)")
    parser.add_argument(
        "--captions", metavar="FILE",
        help="JSON captions {image: caption or {label: caption}} (default: PRED_DIR/captions.json if present)",
    )
    parser.add_argument(
        "--compare", metavar="LABEL=DIR", action="append", default=[],
        help="another folder of enhanced images of the same inputs (e.g. another model's), shown and measured "
        "beside PRED_DIR under LABEL; repeat for several",
    )
    parser.add_argument("--niqe-mode", default="gray", choices=NIQE_REPORT_CHOICES,
                        help="NIQE on gray (default) or on the Y of YCbCr, or off (it takes about 2 s per 12-MP "
                        "image on one core)")
    parser.add_argument("--out", metavar="DIR", required=True, help="report folder")
    parser.add_argument("--title", help="page title")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report in --out")
    parser.set_defaults(func=run)


def run(args) -> int:
    from lumicap.report import build_report

    import sys

    from lumicap.errors import LumicapError, one_line

    compare = {}
    for item in args.compare:
        label, sep, folder = item.partition("=")
        if not sep or not label or not folder:
            raise LumicapError(f"--compare {item!r}: expected LABEL=DIR (e.g. --compare old=runs/old-model/enhanced)")
        if label in compare:
            raise LumicapError(f"--compare {item!r}: the label {label!r} is used twice")
        compare[label] = folder
    from lumicap.files import check_output_folder

    check_output_folder(args.out)  # before measuring every image, not after
    report = build_report(
        args.pred_dir, args.out, low_dir=args.low, gt_dir=args.gt, captions=args.captions,
        overwrite=args.overwrite, title=args.title, compare=compare, niqe_mode=args.niqe_mode,
    )
    for line in report.notes:
        print(f"note: {one_line(line)}")
    for line in report.failed:
        print(f"lumicap: error: {one_line(line)}; left out of the report", file=sys.stderr)
    print(report.summary_line() + (f"; {len(report.failed)} unreadable, left out" if report.failed else ""))
    return 1 if report.failed else 0
