"""`lumicap eval`: measure enhanced images against references (PSNR, SSIM, optional LPIPS and GT-mean)
and without them (NIQE, exposure and colour, optionally the captioner's distances).

    lumicap eval --pred OUT_DIR --gt REF_DIR [--low DARK_DIR]
    lumicap eval --pred OUT_DIR --data LOL_ROOT --split test [--layout lol-v1]
    lumicap eval --pred OUT_DIR [--low DARK_DIR] [--niqe-mode gray|y] [--teacher clipcap-coco|DIR]

Writes ``per_image.csv`` and ``summary.json`` (default folder ``eval_results/<name of --pred>``) and prints
the means with the protocol that produced them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lumicap.commands.options import add_device_option
from lumicap.names import LAYOUTS, NIQE_MODES, PSNR_CONVENTIONS

_METRIC_LABELS = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "lpips": "LPIPS",
    "psnr_gtmean": "PSNR GT-mean (dB)",
    "ssim_gtmean": "SSIM GT-mean",
    "lpips_gtmean": "LPIPS GT-mean",
    "niqe_gray": "NIQE gray (lower is better)",
    "niqe_y": "NIQE Y (lower is better)",
    "niqe_gray_low": "NIQE gray of the dark input",
    "niqe_y_low": "NIQE Y of the dark input",
    "brightness": "brightness (mean RGB, 0-1)",
    "brightness_low": "brightness of the dark input",
    "clipped_pct": "clipped % (a channel >= 250)",
    "clipped_pct_low": "clipped % of the dark input",
    "clipped_pct_change": "clipped % change from the input",
    "colourfulness": "colourfulness (Hasler-Suesstrunk)",
    "loe": "LOE (lower is better)",
    "teacher_clip_vs_ref": "teacher CLIP distance to reference",
    "teacher_prefix_vs_ref": "teacher prefix distance to reference",
    "teacher_gpt_vs_ref": "teacher GPT-2 distance to reference",
    "teacher_clip_vs_low": "teacher CLIP distance to dark input",
    "teacher_prefix_vs_low": "teacher prefix distance to dark input",
    "teacher_gpt_vs_low": "teacher GPT-2 distance to dark input",
}


def register(sub):
    parser = sub.add_parser(
        "eval",
        help="measure predictions: against references (PSNR, SSIM, LPIPS, GT-mean) and without (NIQE, exposure)",
        description="Measure enhanced images against their normal-light references (--gt or --data) and, with "
        "or without references, by no-reference measures: NIQE, brightness, clipped pixels, colourfulness, LOE "
        "(with the dark inputs), and the ClipCap teacher's distances (--teacher). Files are matched by stem; "
        "every missing partner, duplicate or size mismatch is reported at once.",
    )
    parser.add_argument("--pred", required=True, metavar="DIR", help="folder of enhanced images")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--gt", metavar="DIR", help="folder of reference images (matched to --pred by file stem); "
                        "without --gt and --data only the no-reference measures are taken")
    source.add_argument("--data", metavar="ROOT", help="dataset root of a known layout (use with --split)")
    parser.add_argument("--split", metavar="NAME", help="split of --data: train, test, or a folder name like eval15")
    parser.add_argument(
        "--layout", default="auto", choices=["auto", *LAYOUTS],
        help="layout of --data (default: detected)",
    )
    parser.add_argument("--low", metavar="DIR", help="the dark inputs the predictions were made from (matched by "
                        "stem; with --data the split's own): LOE, change of clipping, NIQE of the dark photo, and "
                        "the teacher's distance to it")
    parser.add_argument("--no-ref", action="store_true",
                        help="no-reference measures only, even with --gt/--data (no PSNR/SSIM)")
    parser.add_argument("--niqe-mode", default="gray", choices=NIQE_MODES,
                        help="NIQE on MATLAB-style gray (default; closest to the authors' release) or on the Y of "
                        "YCbCr (BasicSR's default, what most low-light papers ran): they differ by 0.05-0.14")
    parser.add_argument("--teacher", metavar="NAME|DIR",
                        help="also the ClipCap teacher's three MFR distances (no gradient) to the reference and to "
                        "the dark input: a preset (clipcap-coco) or a folder with teacher.json")
    parser.add_argument("--captions", action="store_true", help="with --teacher: also the captions (CSV columns)")
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
    from lumicap.data.pairing import find_pairs, list_images, resolve_split
    from lumicap.engine.evaluate import (
        evaluate_folders,
        evaluate_no_reference,
        evaluate_pairs,
        match_predictions,
        write_results,
    )
    from lumicap.errors import LumicapError
    from lumicap.inference.loading import resolve_device

    pred_dir = Path(args.pred)
    if not pred_dir.is_dir():
        raise LumicapError(f"{pred_dir}: no such folder (--pred)")
    if args.data and not args.split:
        raise LumicapError("--data needs --split (e.g. --split test)")
    if args.split and not args.data:
        raise LumicapError("--split goes with --data; with --gt, give the reference folder itself")
    if args.low and args.data:
        raise LumicapError("--low goes with --gt or with no reference; --data brings the split's own dark inputs")
    if args.captions and not args.teacher:
        raise LumicapError("--captions needs --teacher (the captioner that writes them)")
    with_reference = bool(args.gt or args.data) and not args.no_ref
    if not with_reference and (args.lpips or args.gt_mean):
        option = "--lpips" if args.lpips else "--gt-mean"
        raise LumicapError(f"{option} needs a reference (--gt or --data, without --no-ref)")
    out_dir = Path(args.out) if args.out else Path("eval_results") / pred_dir.resolve().name
    # Refuse before spending minutes on measuring; write_results checks again.
    existing = [p for p in (out_dir / "per_image.csv", out_dir / "summary.json") if p.exists()]
    if existing and not args.overwrite:
        raise LumicapError(f"{existing[0]} already exists; pass --overwrite to replace it or --out to write elsewhere")
    from lumicap.files import check_output_folder

    check_output_folder(out_dir)

    device = resolve_device(args.device)
    judges = _judges(args, device)
    lpips, lpips_status = None, "not requested"
    if args.lpips:
        from lumicap.metrics.lpips import try_load_lpips

        lpips, reason = try_load_lpips(args.alex_weights, args.lpips_weights, download=not args.no_download)
        lpips_status = "alexnet v0.1" if lpips is not None else f"unavailable: {reason}"
        if lpips is None:
            print(f"LPIPS unavailable: {reason}", file=sys.stderr)

    progress = sys.stderr.isatty()
    options = dict(psnr_convention=args.psnr, lpips_status=lpips_status, device=device, progress=progress,
                   judges=judges)
    if args.data:
        pairs = resolve_split(args.data, args.split, layout=args.layout)
        matched = match_predictions(pred_dir, pairs)
        preds, names = [pred for pred, _ in matched], [pair.name for _, pair in matched]
        lows = [pair.low for _, pair in matched]
        reference = f"{args.data} (split {args.split})"
        if with_reference:
            rows, summary = evaluate_pairs(preds, [pair.high for _, pair in matched], lpips=lpips, gt_mean=args.gt_mean,
                                           names=names, low_paths=lows, **options)
        else:
            rows, summary = evaluate_no_reference(preds, judges, names=names, low_paths=lows, progress=progress)
        summary["pred_dir"], summary["data"], summary["split"] = str(pred_dir), str(args.data), args.split
    else:
        lows = None
        if args.low:
            low_pairs = find_pairs(pred_dir, args.low, check_sizes=False, labels=("pred", "low"))
            lows = {pair.low: pair.high for pair in low_pairs}  # prediction path -> its dark input
        if with_reference:
            preds = [pair.low for pair in find_pairs(pred_dir, args.gt, check_sizes=False, labels=("pred", "gt"))]
            if lows is not None:
                options["low_paths"] = [lows[path] for path in preds]
            rows, summary = evaluate_folders(pred_dir, args.gt, lpips=lpips, gt_mean=args.gt_mean, **options)
            reference = str(args.gt)
        else:
            preds = list(lows) if lows is not None else list_images(pred_dir)
            if not preds:
                raise LumicapError(f"{pred_dir}: no images to evaluate")
            rows, summary = evaluate_no_reference(preds, judges, low_paths=list(lows.values()) if lows else None,
                                                  progress=progress)
            summary["pred_dir"] = str(pred_dir)
            reference = None
        if args.low:
            summary["low_dir"] = str(args.low)

    csv_path, json_path = write_results(out_dir, rows, summary, overwrite=args.overwrite)
    print(format_report(rows, summary, pred=str(pred_dir), reference=reference, per_image=args.per_image))
    where = (
        ""
        if args.out
        else " (the default folder eval_results/<name of --pred> in the current folder; --out DIR elsewhere)"
    )
    print(f"wrote {csv_path} and {json_path}{where}")
    return 0


def _judges(args, device) -> list:
    """NIQE and the exposure measures always; the captioner with --teacher (one-line error if it cannot load)."""
    from lumicap.errors import LumicapError
    from lumicap.metrics.judges import ExposureJudge, NiqeJudge, TeacherJudge

    judges = [NiqeJudge(args.niqe_mode), ExposureJudge()]
    if args.teacher:
        try:
            judges.append(TeacherJudge(args.teacher, captions=args.captions, device=device,
                                       download=not args.no_download))
        except LumicapError as exc:
            raise LumicapError(f"--teacher: teacher '{args.teacher}' is not available ({exc})") from None
    return judges


def format_report(rows: list[dict], summary: dict, pred: str, reference: str | None, per_image: bool = False) -> str:
    """The printed table: protocol lines, one mean per numeric column, optionally one row per image."""
    import math

    from lumicap.engine.evaluate import numeric_keys

    keys = numeric_keys(rows)
    proto = summary["protocol"]
    if reference is None:
        lines = [f"eval: {summary['count']} image(s) in {pred}, no reference: no-reference measures only"]
    else:
        lines = [
            f"eval: {summary['count']} image(s), pred {pred} vs {reference}",
            f"protocol: PSNR {proto['psnr']}; SSIM {proto['ssim_details']}; "
            f"GT-mean {'on' if proto['gt_mean'] else 'off'}; LPIPS {proto['lpips']}",
        ]
    lines += [f"{name}: {text}" for name, text in proto.get("judges", {}).items()]
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
    if proto.get("lpips", "").startswith("unavailable"):
        lines.append(f"{'LPIPS':<{label_width}}  unavailable (see protocol)")
    for key in (k for k in keys if k.startswith("niqe_")):
        undefined = sum(1 for row in rows if math.isnan(row[key]))
        if undefined:
            lines.append(f"{key}: {undefined} image(s) under 96x96 or without texture have no NIQE; "
                         "left out of the mean")
    return "\n".join(lines)
