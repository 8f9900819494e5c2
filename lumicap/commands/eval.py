"""`lumicap eval`: measure enhanced images against references (PSNR, SSIM, optional LPIPS and GT-mean).

    lumicap eval --pred OUT_DIR --gt REF_DIR
    lumicap eval --pred OUT_DIR --data LOL_ROOT --split test [--layout lol-v1]

Writes ``per_image.csv`` and ``summary.json`` (default folder ``eval_results/<name of --pred>``) and prints
the means with the protocol that produced them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lumicap.commands.options import add_device_option
from lumicap.names import LAYOUTS, PSNR_CONVENTIONS

_METRIC_LABELS = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "lpips": "LPIPS",
    "psnr_gtmean": "PSNR GT-mean (dB)",
    "ssim_gtmean": "SSIM GT-mean",
    "lpips_gtmean": "LPIPS GT-mean",
}


def register(sub):
    parser = sub.add_parser(
        "eval",
        help="measure predictions against references (PSNR, SSIM, LPIPS, GT-mean)",
        description="Measure enhanced images against their normal-light references. Files are matched by "
        "stem; every missing partner, duplicate or size mismatch is reported at once.",
    )
    parser.add_argument("--pred", required=True, metavar="DIR", help="folder of enhanced images")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--gt", metavar="DIR", help="folder of reference images (matched to --pred by file stem)")
    source.add_argument("--data", metavar="ROOT", help="dataset root of a known layout (use with --split)")
    parser.add_argument("--split", metavar="NAME", help="split of --data: train, test, or a folder name like eval15")
    parser.add_argument(
        "--layout", default="auto", choices=["auto", *LAYOUTS],
        help="layout of --data (default: detected)",
    )
    parser.add_argument(
        "--psnr",
        default="float",
        choices=PSNR_CONVENTIONS,
        help="PSNR convention: float RGB in [0,1] clamped (default, Retinexformer/BasicSR) or 8-bit levels",
    )
    parser.add_argument("--gt-mean", action="store_true",
                        help="also report every metric after GT-mean brightness scaling (keys *_gtmean)")
    parser.add_argument("--lpips", action="store_true", help="also compute LPIPS (AlexNet, v0.1 heads)")
    parser.add_argument("--alex-weights", default="alexnet-torchvision", metavar="PATH|NAME",
                        help="torchvision AlexNet checkpoint for LPIPS (default: %(default)s, cached/downloaded)")
    parser.add_argument("--lpips-weights", default="lpips-alex-v0.1", metavar="PATH|NAME",
                        help="LPIPS linear-head file (default: %(default)s, cached/downloaded)")
    parser.add_argument("--no-download", action="store_true", help="use cached or local weight files only")
    parser.add_argument("--out", metavar="DIR", help="results folder (default: eval_results/<name of --pred>)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing per_image.csv / summary.json")
    parser.add_argument("--per-image", action="store_true", help="print one row per image as well")
    add_device_option(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from lumicap.data.pairing import resolve_split
    from lumicap.engine.evaluate import evaluate_folders, evaluate_pairs, match_predictions, write_results
    from lumicap.errors import LumicapError
    from lumicap.inference.loading import resolve_device

    pred_dir = Path(args.pred)
    if not pred_dir.is_dir():
        raise LumicapError(f"{pred_dir}: no such folder (--pred)")
    if args.data and not args.split:
        raise LumicapError("--data needs --split (e.g. --split test)")
    if args.split and not args.data:
        raise LumicapError("--split goes with --data; with --gt, give the reference folder itself")
    out_dir = Path(args.out) if args.out else Path("eval_results") / pred_dir.resolve().name
    # Refuse before spending minutes on measuring; write_results checks again.
    existing = [p for p in (out_dir / "per_image.csv", out_dir / "summary.json") if p.exists()]
    if existing and not args.overwrite:
        raise LumicapError(f"{existing[0]} already exists; pass --overwrite to replace it or --out to write elsewhere")

    device = resolve_device(args.device)
    lpips, lpips_status = None, "not requested"
    if args.lpips:
        from lumicap.metrics.lpips import try_load_lpips

        lpips, reason = try_load_lpips(args.alex_weights, args.lpips_weights, download=not args.no_download)
        lpips_status = "alexnet v0.1" if lpips is not None else f"unavailable: {reason}"
        if lpips is None:
            print(f"LPIPS unavailable: {reason}", file=sys.stderr)

    options = dict(psnr_convention=args.psnr, lpips_status=lpips_status, device=device, progress=sys.stderr.isatty())
    if args.gt:
        rows, summary = evaluate_folders(pred_dir, args.gt, lpips=lpips, gt_mean=args.gt_mean, **options)
        reference = str(args.gt)
    else:
        pairs = resolve_split(args.data, args.split, layout=args.layout)
        matched = match_predictions(pred_dir, pairs)
        rows, summary = evaluate_pairs(
            [pred for pred, _ in matched], [pair.high for _, pair in matched], lpips=lpips, gt_mean=args.gt_mean,
            names=[pair.name for _, pair in matched], **options,
        )
        summary["pred_dir"], summary["data"], summary["split"] = str(pred_dir), str(args.data), args.split
        reference = f"{args.data} (split {args.split})"

    csv_path, json_path = write_results(out_dir, rows, summary, overwrite=args.overwrite)
    print(format_report(rows, summary, pred=str(pred_dir), reference=reference, per_image=args.per_image))
    where = (
        ""
        if args.out
        else " (the default folder eval_results/<name of --pred> in the current folder; --out DIR elsewhere)"
    )
    print(f"wrote {csv_path} and {json_path}{where}")
    return 0


def format_report(rows: list[dict], summary: dict, pred: str, reference: str, per_image: bool = False) -> str:
    """The printed table: protocol line, one mean per metric, optionally one row per image."""
    from lumicap.engine.evaluate import metric_keys

    keys = metric_keys(rows)
    proto = summary["protocol"]
    lines = [
        f"eval: {summary['count']} image(s), pred {pred} vs {reference}",
        f"protocol: PSNR {proto['psnr']}; SSIM {proto['ssim_details']}; "
        f"GT-mean {'on' if proto['gt_mean'] else 'off'}; LPIPS {proto['lpips']}",
    ]
    if per_image:
        name_width = max(4, *(len(r["name"]) for r in rows))
        lines.append("")
        lines.append(f"{'name':<{name_width}}  " + "  ".join(f"{k:>12}" for k in keys))
        for row in rows:
            lines.append(f"{row['name']:<{name_width}}  " + "  ".join(f"{row[k]:>12.4f}" for k in keys))
    lines.append("")
    label_width = max(len(_METRIC_LABELS.get(k, k)) for k in keys)
    lines.append(f"{'metric':<{label_width}}  {'mean':>9}")
    for key in keys:
        lines.append(f"{_METRIC_LABELS.get(key, key):<{label_width}}  {summary[key]:>9.4f}")
    if proto["lpips"].startswith("unavailable"):
        lines.append(f"{'LPIPS':<{label_width}}  unavailable (see protocol)")
    return "\n".join(lines)
