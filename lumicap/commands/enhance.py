"""`lumicap enhance INPUT... --out DIR`: brighten dark photos and videos with the shipped (or a given) model."""

from __future__ import annotations

import sys

from lumicap.commands.options import (
    add_device_option,
    add_model_options,
    add_tiling_options,
    finite_float,
    int_in_range,
    tile_settings,
)
from lumicap.limits import CHROMA_GAIN_RANGE
from lumicap.names import TEMPORAL_MODES, VIDEO_CODEC_CHOICES, VIDEO_FORMAT_CHOICES


def register(sub):
    parser = sub.add_parser(
        "enhance",
        help="enhance dark photos and videos (files, folders, globs) with the default or a given model",
        description=(
            "Enhance each input into --out, keeping names (and sub-folders of folder inputs). Inputs: PNG, JPEG, "
            "TIFF, BMP, WebP, and HEIC/HEIF with the heic extra (pip install 'lumicap[heic]'); EXIF orientation is "
            "applied. Pictures a folder holds in other formats (GIF, camera RAW) are named in the summary. Existing "
            "outputs are skipped unless --overwrite. Big images are processed in overlapping, blended tiles. "
            "Videos (.mp4 .m4v .mov .mkv .avi .webm; needs the video extra, pip install 'lumicap[video]') keep "
            "their frames, timing, rotation and sound, and are smoothed over time so they do not flicker. "
            "--demo makes dark versions of bundled sample photos and enhances them (no network needed)."
        ),
    )
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="image or video files, folders or glob patterns")
    parser.add_argument("--out", metavar="DIR", required=True, help="output folder")
    add_model_options(parser)
    add_device_option(parser)
    parser.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders of folder inputs")
    parser.add_argument("--format", default="png", choices=["png", "jpg", "tiff", "webp", "heic"],
                        help="output format (png keeps 16 bits for 16-bit inputs; heic needs lumicap[heic]); "
                        "the input's ICC colour profile is kept")
    parser.add_argument("--quality", type=int_in_range(1, 100), default=95, metavar="Q",
                        help="quality of jpg, webp and heic outputs, 1-100 (default 95)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_tiling_options(parser, videos=True)
    parser.add_argument(
        "--protect-highlights", default="auto", choices=["auto", "on", "off"],
        help="blend the result back towards the photo where the photo is already bright, so skies and lamps do "
        "not clip (auto: the model's setting, on for the default model)",
    )
    parser.add_argument(
        "--chroma-gain", type=finite_float(*CHROMA_GAIN_RANGE), default=None, metavar="X",
        help="scale the result's colours away from grey by X, brightness kept (1: the network's own colours; "
        "default: the model's setting, chosen on validation photos for the default model)",
    )
    videos = parser.add_argument_group("videos")
    videos.add_argument("--video-format", default="mp4", choices=VIDEO_FORMAT_CHOICES,
                        help="container of enhanced videos (default mp4; mkv holds any audio codec)")
    videos.add_argument("--codec", default="h264", choices=VIDEO_CODEC_CHOICES, help="video encoder (default h264)")
    videos.add_argument("--crf", type=int, default=18, metavar="N",
                        help="encoder quality, 0-51, lower is better (default 18: visually lossless)")
    videos.add_argument("--temporal", default="smooth", choices=TEMPORAL_MODES,
                        help="smooth (default): steady the network's answer over time, reset at scene cuts; "
                        "none: each frame on its own (flickers)")
    videos.add_argument("--smooth-seconds", type=float, default=0.5, metavar="S",
                        help="time constant of the smoothing (default 0.5 s)")
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
    from lumicap.files import check_output_folder
    from lumicap.inference import collect_inputs, enhance_files, load_inference_model, plan_outputs
    from lumicap.inference.video import (
        VideoSettings, describe_video_enhancement, is_video_file, require_video_support,
    )

    # Shared numbers are checked by the settings they become (NaN and infinity too), --quality while parsing.
    tiles = tile_settings(args)
    video = VideoSettings(fmt=args.video_format, codec=args.codec, crf=args.crf, temporal=args.temporal,
                          smooth_seconds=args.smooth_seconds, network_megapixels=args.network_megapixels)
    video.check()
    out = Path(args.out)
    check_output_folder(out)  # once, before the model loads (not once per image)
    if args.demo and args.inputs:
        raise LumicapError("--demo makes its own inputs; drop the INPUT arguments or --demo")
    if not args.demo and not args.inputs:
        raise LumicapError("no INPUT given (files, folders or globs; or --demo)")
    unreadable: list = []  # pictures a folder holds in formats lumicap does not read (named in the summary)
    if not args.demo:
        # The inputs first (a typo in a path costs no model load), every output path planned and checked
        # against every input; then the model. Nothing is written before both are known to be fine.
        inputs = collect_inputs(args.inputs, recursive=args.recursive, exclude=out, unreadable=unreadable,
                                videos=True)
        if not inputs:
            _no_inputs(args.inputs, out, unreadable)
        enhanced_dir = out
        plan_outputs(inputs, enhanced_dir, args.format, args.video_format)
        first_video = next((item.path for item in inputs if is_video_file(item.path)), None)
        if first_video is not None:
            require_video_support(first_video, video)  # PyAV and the encoder, before the model is loaded
    protect = {"auto": None, "on": True, "off": False}[args.protect_highlights]
    model = load_inference_model(args.model, args.device, weights=args.weights,
                                 network_megapixels=args.network_megapixels, highlight_protection=protect,
                                 chroma_gain=args.chroma_gain)
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
    if any(is_video_file(item.path) for item in inputs):
        print(f"videos: {describe_video_enhancement(model, video)}")

    captioner = None
    if args.caption:
        from lumicap.inference.captions import CaptionWriter

        captioner = CaptionWriter.open(enhanced_dir, model.device, teacher=args.teacher)
    summary = enhance_files(
        inputs, enhanced_dir, model, model.device, fmt=args.format, overwrite=args.overwrite, tiles=tiles,
        progress=not args.no_progress, on_result=captioner.add if captioner else None, quality=args.quality,
        on_skipped=captioner.add_existing if captioner else None, video=video,
    )
    if captioner is not None:
        captioner.save()
    summary.unreadable = unreadable
    print(summary.line())
    if args.demo:
        _demo_report(out, enhanced_dir, demo, args.overwrite)
    return 1 if summary.failed else 0


def _no_inputs(inputs: list[str], out, unreadable: list) -> None:
    """No image or video to enhance: say why when the output folder swallowed the input folder."""
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
    raise LumicapError(f"no image or video files in {', '.join(map(shown, inputs))} (use -r for sub-folders)")


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
