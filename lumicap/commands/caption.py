"""`lumicap caption IMAGE... --teacher PRESET|PATH`: what the ClipCap teacher says about each image.

Prints one tab-separated line per image: ``path<TAB>caption``; with ``--enhance MODEL`` the image is
also enhanced and the line is ``path<TAB>input caption<TAB>enhanced caption``, which shows what the
teacher (and hence the MFR loss) sees before and after enhancement. An unreadable image gets one error
line on stderr and the rest go on (exit code 1), as in ``lumicap enhance``.
"""

from __future__ import annotations

from lumicap.commands.options import add_device_option, int_in_range
from lumicap.names import PREPROCESS_MODES

MAX_CAPTION_TOKENS = 512  # GPT-2 has 1024 positions, the prefix takes up to 40 of them


def register(sub):
    parser = sub.add_parser(
        "caption",
        help="caption images with the ClipCap teacher (optionally before/after enhancement)",
        description=(
            "Caption each image with a ClipCap teacher: a preset (clipcap-coco, clipcap-conceptual, "
            "clipcap-coco-transformer; weights are downloaded on first use) or a local teacher folder "
            "holding teacher.json. Greedy decoding as ClipCap does it by default, --beam for beam search."
        ),
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders or glob patterns")
    parser.add_argument("--teacher", default="clipcap-coco", metavar="PRESET|PATH", help="default: clipcap-coco")
    parser.add_argument("--beam", action="store_true", help="beam search (width 5, length-normalised)")
    parser.add_argument(
        "--enhance", metavar="MODEL",
        help="also caption the enhanced image: 'default', a .safetensors model with its .json, a training "
        "checkpoint, or a registry model name with --weights",
    )
    parser.add_argument("--weights", metavar="FILE", help="state dict for --enhance NAME")
    parser.add_argument("--preprocess", default="crop", choices=PREPROCESS_MODES,
                        help="how the image is fitted to CLIP's input (default: crop, as CLIP does)")
    parser.add_argument("--max-tokens", type=int_in_range(1, MAX_CAPTION_TOKENS), default=67, metavar="N",
                        help="longest caption in tokens (67)")
    add_device_option(parser)
    parser.add_argument("--cache-dir", metavar="DIR", help="weights cache (default $LUMICAP_CACHE or ~/.cache/lumicap)")
    parser.set_defaults(func=run)


def run(args) -> int:
    import sys

    import torch

    from lumicap.data.io import read_image
    from lumicap.errors import LumicapError, one_line, shown
    from lumicap.inference.batch import collect_inputs
    from lumicap.inference.loading import resolve_device
    from lumicap.teacher import ClipCapTeacher

    if args.max_tokens < 1:
        raise LumicapError("--max-tokens must be at least 1")
    if args.weights and not args.enhance:
        raise LumicapError("--weights belongs to --enhance NAME")
    inputs = collect_inputs(args.images)
    if not inputs:
        raise LumicapError(f"no image files in {', '.join(args.images)}")
    device = resolve_device(args.device)
    teacher = ClipCapTeacher.from_pretrained(args.teacher, device=device, cache_dir=args.cache_dir)
    enhancer = _load_enhancer(args.enhance, args.weights, device) if args.enhance else None

    def describe(image: torch.Tensor) -> str:
        batch = image.unsqueeze(0).to(device)
        return teacher.caption(batch, beam=args.beam, preprocess=args.preprocess, max_tokens=args.max_tokens)[0]

    failed = 0
    for item in inputs:
        try:
            image = read_image(item.path)
        except LumicapError as exc:  # one line and on to the next image, as enhance does
            print(f"lumicap: error: {one_line(str(exc))}", file=sys.stderr, flush=True)
            failed += 1
            continue
        fields = [shown(item.path), describe(image)]
        if enhancer is not None:
            fields.append(describe(enhancer(image)))
        print("\t".join(field.replace("\t", " ").replace("\n", " ") for field in fields), flush=True)
    return 1 if failed else 0


def _load_enhancer(spec: str, weights: str | None, device):
    """A callable (3, H, W) -> (3, H, W) in [0, 1]: the inference engine's loader and tiler."""
    import torch

    from lumicap.inference.batch import TileSettings, enhance_image
    from lumicap.inference.loading import load_inference_model

    model = load_inference_model(spec, device, weights=weights)

    def enhance(image: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return enhance_image(model, image, model.device, TileSettings()).clamp(0.0, 1.0)

    return enhance
