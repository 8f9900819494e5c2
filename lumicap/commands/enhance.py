"""`lumicap enhance INPUT... --out DIR`: brighten dark photos with the shipped (or a given) model."""

from __future__ import annotations

import sys

from lumicap.commands.options import add_device_option, add_model_options, add_tiling_options, tile_settings


def register(sub):
    parser = sub.add_parser(
        "enhance",
        help="enhance dark photos (files, folders, globs) with the default or a given model",
        description=(
            "Enhance each input into --out, keeping names (and sub-folders of folder inputs). Inputs: PNG, JPEG, "
            "TIFF, BMP, WebP, and HEIC/HEIF with the heic extra (pip install 'lumicap[heic]'); EXIF orientation is "
            "applied. Pictures a folder holds in other formats (GIF, camera RAW) are named in the summary. Existing "
            "outputs are skipped unless --overwrite. Big images are processed in overlapping, blended tiles. "
            "--demo makes dark versions of bundled sample photos and enhances them (no network needed)."
        ),
    )
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders or glob patterns")
    parser.add_argument("--out", metavar="DIR", required=True, help="output folder")
    add_model_options(parser)
    add_device_option(parser)
    parser.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders of folder inputs")
    parser.add_argument("--format", default="png", choices=["png", "jpg", "tiff", "webp", "heic"],
                        help="output format (png keeps 16 bits for 16-bit inputs; heic needs lumicap[heic]); "
                        "the input's ICC colour profile is kept")
    parser.add_argument("--quality", type=int, default=95, metavar="Q",
                        help="quality of jpg, webp and heic outputs, 1-100 (default 95)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_tiling_options(parser)
    parser.add_argument(
        "--protect-highlights", default="auto", choices=["auto", "on", "off"],
        help="blend the result back towards the photo where the photo is already bright, so skies and lamps do "
        "not clip (auto: the model's setting, on for the default model)",
    )
    parser.add_argument("--caption", action="store_true",
                        help="caption each input and output with the ClipCap teacher; writes OUT/captions.json")
    parser.add_argument("--teacher", default="clipcap-coco", metavar="NAME|DIR",
                        help="teacher for --caption: a preset (default clipcap-coco) or a folder with teacher.json")
    parser.add_argument("--demo", action="store_true",
                        help="enhance dark versions of bundled sample photos: OUT/{low,enhanced,reference,report}")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from lumicap.errors import LumicapError
    from lumicap.inference import collect_inputs, enhance_files, load_inference_model, plan_outputs

    tiles = tile_settings(args)
    if not 1 <= args.quality <= 100:
        raise LumicapError(f"--quality {args.quality} is outside 1-100")
    out = Path(args.out)
    if args.demo and args.inputs:
        raise LumicapError("--demo makes its own inputs; drop the INPUT arguments or --demo")
    if not args.demo and not args.inputs:
        raise LumicapError("no INPUT given (files, folders or globs; or --demo)")
    unreadable: list = []  # pictures a folder holds in formats lumicap does not read (named in the summary)
    if not args.demo:
        # The inputs first (a typo in a path costs no model load), every output path planned and checked
        # against every input; then the model. Nothing is written before both are known to be fine.
        inputs = collect_inputs(args.inputs, recursive=args.recursive, exclude=out, unreadable=unreadable)
        if not inputs:
            _no_inputs(args.inputs, out, unreadable)
        enhanced_dir = out
        plan_outputs(inputs, enhanced_dir, args.format)
    protect = {"auto": None, "on": True, "off": False}[args.protect_highlights]
    model = load_inference_model(args.model, args.device, weights=args.weights,
                                 network_megapixels=args.network_megapixels, highlight_protection=protect)
    print(f"model: {model.describe()}")
    if model.note:
        print(f"note: {model.note}")
    if args.demo:
        from lumicap.report.demo import write_demo_inputs

        demo = write_demo_inputs(out)
        print(
            f"demo inputs: {len(demo.names)} darkened sample photos in {demo.low_dir} (references in "
            f"{demo.reference_dir})"
        )
        inputs = collect_inputs([demo.low_dir])
        enhanced_dir = out / "enhanced"
        plan_outputs(inputs, enhanced_dir, args.format)

    captioner = None
    if args.caption:
        from lumicap.inference.captions import CaptionWriter

        captioner = CaptionWriter.open(enhanced_dir, model.device, teacher=args.teacher)
    summary = enhance_files(
        inputs, enhanced_dir, model, model.device, fmt=args.format, overwrite=args.overwrite, tiles=tiles,
        progress=not args.no_progress, on_result=captioner.add if captioner else None, quality=args.quality,
        on_skipped=captioner.add_existing if captioner else None,
    )
    if captioner is not None:
        captioner.save()
    summary.unreadable = unreadable
    print(summary.line())
    if args.demo:
        _demo_report(out, enhanced_dir, demo, args.overwrite)
    return 1 if summary.failed else 0


def _no_inputs(inputs: list[str], out, unreadable: list) -> None:
    """No image to enhance: say why when the output folder swallowed the input folder."""
    from pathlib import Path

    from lumicap.errors import LumicapError, shown

    out = out.expanduser().resolve()
    for item in inputs:
        folder = Path(item).expanduser()
        if folder.is_dir() and folder.resolve().is_relative_to(out):
            raise LumicapError(
                f"--out {shown(out)} is (or contains) the input folder {shown(item)}; images inside the output folder "
                "are never read as inputs (outputs must not replace them), so nothing is left to enhance: "
                "choose an --out outside the input folder"
            )
    if unreadable:
        from lumicap.inference.batch import unreadable_note

        raise LumicapError(
            f"no image files lumicap reads in {', '.join(map(shown, inputs))}: {unreadable_note(unreadable)}"
        )
    raise LumicapError(f"no image files in {', '.join(map(shown, inputs))} (use -r for sub-folders)")


def _demo_report(out, enhanced_dir, demo, overwrite: bool) -> None:
    from lumicap.errors import LumicapError
    from lumicap.report import build_report

    try:
        report = build_report(
            enhanced_dir, out / "report", low_dir=demo.low_dir, gt_dir=demo.reference_dir, overwrite=overwrite,
            title="lumicap demo: darkened sample photos",
        )
    except LumicapError as exc:
        print(f"lumicap: report not written: {exc}", file=sys.stderr)
        return
    print(report.summary_line())
    print(f"contact sheet: {report.sheets[0]}")
