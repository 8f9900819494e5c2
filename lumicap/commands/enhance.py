"""`lumicap enhance INPUT... --out DIR`: brighten dark photos with the shipped (or a given) model."""

from __future__ import annotations

import sys

from lumicap.options import (
    MAX_MEGAPIXELS_RANGE,
    NETWORK_MEGAPIXELS_RANGE,
    OVERLAP_RANGE,
    TILE_RANGE,
    finite_float,
    int_in_range,
)


def register(sub):
    parser = sub.add_parser(
        "enhance",
        help="enhance dark photos (files, folders, globs) with the default or a given model",
        description=(
            "Enhance each input into --out, keeping names (and sub-folders of folder inputs). Existing outputs "
            "are skipped unless --overwrite. Big images are processed in overlapping, blended tiles. "
            "--demo makes dark versions of bundled sample photos and enhances them (no network needed)."
        ),
    )
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders or glob patterns")
    parser.add_argument("--out", metavar="DIR", required=True, help="output folder")
    parser.add_argument(
        "--model", metavar="NAME|FILE", default="default",
        help="'default' (the shipped model), a .safetensors file with its .json sidecar, a lumicap training "
        "checkpoint or run folder (its best.pt), official pretrained weights by name (e.g. "
        "retinexformer-lol-v1-official, see 'lumicap weights list'), or a registry model name with --weights",
    )
    parser.add_argument("--weights", metavar="FILE",
                        help="weights for --model NAME: a lumicap or official checkpoint of that model")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: cuda if available")
    parser.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders of folder inputs")
    parser.add_argument("--format", default="png", choices=["png", "jpg", "tiff"],
                        help="output format (png keeps 16 bits for 16-bit inputs)")
    parser.add_argument("--quality", type=int_in_range(1, 100), default=95, metavar="Q", help="JPEG quality 1-100 (default 95)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    tiling = parser.add_mutually_exclusive_group()
    tiling.add_argument("--tile", type=int_in_range(*TILE_RANGE), metavar="N", help="always process in N x N tiles")
    tiling.add_argument(
        "--max-megapixels", type=finite_float(*MAX_MEGAPIXELS_RANGE, low_open=True), metavar="X",
        help="tile images larger than X megapixels (default 2 on CPU, 4 on CUDA)",
    )
    parser.add_argument("--tile-overlap", type=int_in_range(*OVERLAP_RANGE), default=64, metavar="N",
                        help="tile overlap in pixels (default 64); automatic tiles are 512 px, or twice the overlap if larger")
    parser.add_argument(
        "--network-megapixels", type=finite_float(*NETWORK_MEGAPIXELS_RANGE), metavar="X",
        help="networks that predict a transform (IAT, the default model): run the network on at most X MP and "
        "apply its transform at full resolution instead of tiling (default: the model's setting, 1 for the "
        "default model; 0: off)",
    )
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
    from lumicap.inference import TileSettings, collect_inputs, enhance_files, load_inference_model, plan_outputs
    from lumicap.userfiles import check_output_folder

    # Each number was checked finite and in range by the parser (lumicap.options); TileSettings checks again.
    if args.tile is not None and args.tile_overlap > args.tile // 2:
        raise LumicapError(f"--tile-overlap {args.tile_overlap} is more than half of --tile {args.tile}")
    tiles = TileSettings(tile=args.tile, overlap=args.tile_overlap, max_megapixels=args.max_megapixels)
    out = Path(args.out)
    check_output_folder(out)  # once, before the model loads (not once per image)
    if args.demo and args.inputs:
        raise LumicapError("--demo makes its own inputs; drop the INPUT arguments or --demo")
    if not args.demo and not args.inputs:
        raise LumicapError("no INPUT given (files, folders or globs; or --demo)")
    # The model first: a missing or broken model file is reported before anything is written.
    protect = {"auto": None, "on": True, "off": False}[args.protect_highlights]
    model = load_inference_model(args.model, args.device, weights=args.weights,
                                 network_megapixels=args.network_megapixels, highlight_protection=protect)
    print(f"model: {model.describe()}")
    if model.note:
        print(f"note: {model.note}")
    if args.demo:
        from lumicap.demo import write_demo_inputs

        demo = write_demo_inputs(out)
        print(f"demo inputs: {len(demo.names)} darkened sample photos in {demo.low_dir} (references in {demo.reference_dir})")
        inputs = collect_inputs([demo.low_dir])
        enhanced_dir = out / "enhanced"
    else:
        inputs = collect_inputs(args.inputs, recursive=args.recursive, exclude=out)
        enhanced_dir = out
    if not inputs:
        _no_inputs(args.inputs, out)
    # Every output path is known (and checked against every input) before anything is written.
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
    print(summary.line())
    if args.demo:
        _demo_report(out, enhanced_dir, demo, args.overwrite)
    return 1 if summary.failed else 0


def _no_inputs(inputs: list[str], out) -> None:
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
