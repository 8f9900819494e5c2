"""Inference latency and peak memory of every model at 600x400 (LOL) and 3840x2160 (4K), tiled where needed.

One call is what ``lumicap enhance`` does with an image already decoded: the (3,H,W) float image on the
CPU goes to the device whole (``run_whole``) or in blended tiles (``run_tiled``), and the clamped result
comes back to the CPU; so the figure includes the host-device copies but not file decoding/encoding.
Whole or tiled follows the project's rule (``TileSettings``: tiles of 512 px above 4 MP on CUDA and 2 MP on
the CPU; ``--tile N`` forces tiles, ``--tile none`` forces whole images); a whole-image pass that runs out of
memory is timed again in tiles, and the row says so. Random weights (latency does not depend on them).
Figures: median of ``--repeats`` calls after ``--warmup`` calls, CUDA-synchronised (see ``_common``).

    python benchmarks/bench_inference.py --device cuda                   # every model, 600x400 and 3840x2160
    python benchmarks/bench_inference.py --device cuda --amp bf16 --models retinexformer
    python benchmarks/bench_inference.py --cpu-small                      # CPU latency at 600x400, small models
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import Column  # noqa: E402

BENCHMARK = "inference"
DEFAULT_SIZES = "600x400,3840x2160"
# The models a laptop CPU runs in seconds at 600x400 (MACs at 600x400, counted by lumicap.models.flops:
# rctnet 1.9 G, iat 5.26 G, retinexformer 61 G, retinexnet 68 G; the others are 94-1758 G with 16-39 M parameters).
CPU_SMALL_MODELS = ("iat", "rctnet", "retinexformer", "retinexnet")
AMP_DTYPES = {"none": None, "bf16": torch.bfloat16}
COLUMNS = [
    Column("model", "model"),
    Column("size", "size (WxH)"),
    Column("mode", "mode"),
    Column("amp", "amp"),
    Column("ms", "ms/image", "{:.1f}"),
    Column("peak_mib", "peak MiB", "{:.0f}"),
    Column("error", "error"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="all", help="comma list of registered models (default: all)")
    parser.add_argument("--sizes", default=None, help=f"comma list of WxH (default: {DEFAULT_SIZES})")
    parser.add_argument("--cpu-small", action="store_true",
                        help=f"CPU latency at 600x400 of {', '.join(CPU_SMALL_MODELS)} (unless --models/--sizes say otherwise)")
    parser.add_argument("--amp", default="none", choices=list(AMP_DTYPES), help="autocast dtype of the network")
    parser.add_argument("--tile", default="auto", help="auto (the project's rule), none (whole images) or a tile size")
    parser.add_argument("--overlap", type=int, default=None, help="tile overlap in pixels (default: the project's)")
    parser.add_argument("--max-megapixels", type=float, default=None, help="auto tiling above this size (default: per device)")
    _common.add_common_arguments(parser)
    return parser


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"600x400,3840x2160"`` -> [(400, 600), (2160, 3840)] as (height, width)."""
    from lumicap.errors import LumicapError

    sizes = []
    for item in text.split(","):
        parts = item.strip().lower().split("x")
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise LumicapError(f"--sizes: '{item}' is not WIDTHxHEIGHT (e.g. 600x400)")
        sizes.append((int(parts[1]), int(parts[0])))
    return sizes


def resolve_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Device, models, sizes and tiling the run uses (``--cpu-small`` fills in what the user left open)."""
    from lumicap.errors import LumicapError
    from lumicap.inference import DEFAULT_OVERLAP, TileSettings
    from lumicap.models import list_models

    from lumicap.inference.loading import SHIPPED_MODELS

    # Registry names get random weights; shipped names ("default") load the package's model as enhance does
    # (with its inference setting, e.g. the default's full-resolution transform).
    known = [info.name for info in list_models()] + [name.replace("-", "_") for name in SHIPPED_MODELS]
    models_arg, sizes_arg, device_arg = args.models, args.sizes, args.device
    if args.cpu_small:
        if device_arg == "cuda":
            raise LumicapError("--cpu-small measures the CPU; leave out --device cuda")
        device_arg = "cpu"
        models_arg = ",".join(CPU_SMALL_MODELS) if models_arg == "all" else models_arg
        sizes_arg = sizes_arg or "600x400"
    if args.tile == "auto":
        forced = None
    elif args.tile == "none":
        forced = 0
    elif args.tile.isdigit() and int(args.tile) >= 16:
        forced = int(args.tile)
    else:
        raise LumicapError(f"--tile must be auto, none or a size of at least 16 pixels, got '{args.tile}'")
    overlap = args.overlap if args.overlap is not None else DEFAULT_OVERLAP
    return {
        "device": _common.resolve_device(device_arg),
        "models": _common.parse_list(models_arg, known, "model"),
        "sizes": parse_sizes(sizes_arg or DEFAULT_SIZES),
        "tiles": TileSettings(tile=forced or None, overlap=overlap, max_megapixels=args.max_megapixels),
        "whole_only": forced == 0,
    }


def tiling_for(settings: dict[str, Any], height: int, width: int, device: torch.device, model=None) -> int | None:
    """Tile size the project would use for this image (None: whole image, or a model that bounds its work)."""
    from lumicap.inference.batch import planned_tile

    if settings["whole_only"]:
        return None
    return planned_tile(model, settings["tiles"], height, width, device)


def mode_label(tile: int | None, height: int, width: int, overlap: int) -> str:
    from lumicap.inference import plan_tiles

    if tile is None:
        return "whole"
    plan = plan_tiles(height, width, tile, overlap)
    return f"{plan.count} tile{'s' if plan.count != 1 else ''} of {plan.tile_w}x{plan.tile_h}"


def measure(model, image, tile, overlap, device, amp, repeats, warmup) -> tuple[_common.Timing, _common.PeakMemory]:
    from lumicap.inference import run_tiled, run_whole

    dtype = AMP_DTYPES[amp]

    def call() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            if tile is None:
                run_whole(model, image, device)
            else:
                run_tiled(model, image, tile=tile, overlap=overlap, device=device)

    for _ in range(warmup):
        call()
    with _common.PeakMemory(device) as peak:
        timing = _common.time_function(call, device, repeats, warmup=0)
    return timing, peak


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from lumicap.inference import DEFAULT_TILE, load_inference_model
    from lumicap.inference.loading import SHIPPED_MODELS
    from lumicap.models import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = resolve_settings(args)
    device = settings["device"]
    repeats, warmup = _common.repeats_and_warmup(args, device)
    overlap = settings["tiles"].overlap
    env = _common.environment(device)
    print(_common.describe_environment(env), flush=True)
    rows: list[dict[str, Any]] = []
    record = _common.row_recorder(rows, args.rows_out)
    for name in settings["models"]:
        torch.manual_seed(0)
        try:
            shipped = {key.replace("-", "_"): key for key in SHIPPED_MODELS}
            if name in shipped:
                model = load_inference_model(shipped[name], device)
            else:
                model = build_model(name).eval().to(device)
        except Exception as exc:
            model, build_error = None, f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
        for height, width in settings["sizes"]:
            tile = tiling_for(settings, height, width, device, model)
            mode = mode_label(tile, height, width, overlap)
            limit = getattr(getattr(model, "module", None), "network_megapixels", None)
            if tile is None and limit and height * width > limit * 1e6:
                mode = f"{limit:g} MP + full-res transform"
            row = {"model": name, "size": f"{width}x{height}", "mode": mode,
                   "amp": args.amp, "ms": None, "ms_min": None, "samples_ms": None, "peak_mib": None, "error": None}
            if model is None:
                row["error"] = build_error
                record(row)
                continue
            image = torch.rand(3, height, width, generator=torch.Generator().manual_seed(1))
            try:
                try:
                    timing, peak = measure(model, image, tile, overlap, device, args.amp, repeats, warmup)
                except Exception as exc:
                    if tile is not None or not _common.is_out_of_memory(exc):
                        raise
                    # The project's enhance does the same: a whole image that does not fit goes through tiles.
                    _common.release_memory(device)
                    tile = DEFAULT_TILE
                    row["mode"] = mode_label(tile, height, width, overlap) + " (whole: out of memory)"
                    timing, peak = measure(model, image, tile, overlap, device, args.amp, repeats, warmup)
                row.update(ms=timing.median_ms, ms_min=timing.min_ms, samples_ms=list(timing.samples_ms),
                           peak_mib=peak.mib, memory=peak.kind)
            except Exception as exc:  # one model failing must not end a GPU run
                row["error"] = "out of memory" if _common.is_out_of_memory(exc) else f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
            finally:
                _common.release_memory(device)
            record(row)
            status = f"{row['ms']:.1f} ms, peak {row['peak_mib']:.0f} MiB" if row["ms"] else row["error"]
            print(f"  {name:14} {row['size']:>10} {row['mode']:24}: {status}", flush=True)
        model = None
        _common.release_memory(device)
    recorded = {
        "models": settings["models"], "sizes": [f"{w}x{h}" for h, w in settings["sizes"]], "amp": args.amp,
        "tile": args.tile, "overlap": overlap, "max_megapixels": settings["tiles"].budget(device),
        "repeats": repeats, "warmup": warmup, "device": str(device), "cpu_small": args.cpu_small,
    }
    return rows, {"env": env, "settings": recorded}


def main(argv: list[str] | None = None):
    args = build_parser().parse_args(argv)
    rows, meta = _common.run_or_exit(run, args)
    s = meta["settings"]
    notes = [
        "one call = a decoded (3,H,W) CPU image through the network (whole or tiled) and back to the CPU",
        f"median of {s['repeats']} timed calls after {s['warmup']} warm-up calls; random weights (shipped names such as "
        "'default': the package's model, loaded as enhance loads it)",
        f"tiles of 512 px (overlap {s['overlap']}) above {s['max_megapixels']:g} MP unless --tile says otherwise",
        f"peak memory: {rows[0].get('memory', 'see JSON') if rows else '-'}",
    ]
    return _common.report(BENCHMARK, args, meta["env"], s, COLUMNS, rows, notes)


if __name__ == "__main__":
    main()
