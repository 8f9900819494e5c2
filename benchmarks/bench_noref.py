"""No-reference quality of several models on unpaired dark photos (NIQE both modes, LOE, clipping,
colourfulness), and the speed of NIQE itself.

Each model enhances every photo under ``--photos`` (default ``../shared/data/unpaired``: the 8 DICM/LIME
photos) through ``lumicap enhance`` (same command, same PNG outputs as a user gets); then, per photo,
``lumicap.metrics`` measures the output (and the dark input once): NIQE gray and Y, LOE against the input,
the share of pixels with a channel >= 250 and colourfulness. The table gives the means over the photos and
the worst clipping; the JSON keeps every photo's numbers.

The speed part times ``lumicap.metrics.niqe`` (gray) on one 600x400 photo and on the same photo upscaled
to 4000x3000 (12 MP), on one core (one torch thread; numpy/scipy run single-threaded here), median of 3
after one warm-up. Run it from the lead checkout (``../shared`` beside the repository) or pass ``--shared``.

    python benchmarks/bench_noref.py                      # default, retinexformer-lumicap, the authors' IAT
    python benchmarks/bench_noref.py --models default,my-model.safetensors --no-speed
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import Column  # noqa: E402

SHARED = _common.REPO_ROOT.parent / "shared"
PHOTOS = Path("data") / "unpaired"  # under --shared
SPEED_PHOTO = Path("data") / "lol-v1" / "eval15" / "high" / "1.png"
# The authors' IAT LOL-v1 weights, when this machine has them (no download needed).
OFFICIAL_IAT = Path("official-weights") / "iat" / "best_Epoch_lol_v1.pth"
DEFAULT_MODELS = "default,retinexformer-lumicap,iat-lol-v1-official"

QUALITY_COLUMNS = [
    Column("model", "model"),
    Column("photos", "photos"),
    Column("niqe_gray", "NIQE gray", "{:.3f}"),
    Column("niqe_y", "NIQE Y", "{:.3f}"),
    Column("loe", "LOE", "{:.1f}"),
    Column("clipped_pct", "clipped % (mean)", "{:.1f}"),
    Column("clipped_worst", "clipped % (worst photo)", "{:.1f}"),
    Column("colourfulness", "colourfulness", "{:.1f}"),
    Column("error", "error"),
]
SPEED_COLUMNS = [
    Column("size", "photo"),
    Column("s", "NIQE s (gray, 1 core)", "{:.2f}"),
    Column("s_y", "NIQE s (Y, 1 core)", "{:.2f}"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS, help="comma list of --model values (default: %(default)s)")
    parser.add_argument("--weights", action="append", default=[], metavar="MODEL=FILE",
                        help="weights file for one of --models (as `lumicap enhance --model MODEL --weights FILE`); "
                        f"iat-lol-v1-official defaults to SHARED/{OFFICIAL_IAT} when present")
    parser.add_argument("--shared", default=str(SHARED),
                        help="the shared data folder beside the repository (default: %(default)s)")
    parser.add_argument("--photos", default=None, help=f"folder of dark photos, searched recursively (default: SHARED/{PHOTOS})")
    parser.add_argument("--no-speed", action="store_true", help="skip the NIQE timing")
    parser.add_argument("--speed-sizes", default="600x400,4000x3000", help="WxH photos for the NIQE timing (default: %(default)s)")
    parser.add_argument("--no-quality", action="store_true", help="only the NIQE timing")
    _common.add_common_arguments(parser)
    return parser


def weights_by_model(entries: list[str], shared: Path) -> dict[str, str]:
    from lumicap.errors import LumicapError

    official = shared / OFFICIAL_IAT
    weights = {"iat-lol-v1-official": str(official)} if official.is_file() else {}
    for entry in entries:
        model, sep, path = entry.partition("=")
        if not sep or not model or not path:
            raise LumicapError(f"--weights {entry!r}: expected MODEL=FILE")
        weights[model] = path
    return weights


def measure_photo(low, enhanced) -> dict[str, float]:
    from lumicap.metrics import clipped_share, colourfulness, loe, niqe

    return {
        "niqe_gray": niqe(enhanced, "gray"),
        "niqe_y": niqe(enhanced, "y"),
        "loe": loe(low, enhanced),
        "clipped_pct": 100 * clipped_share(enhanced),
        "colourfulness": colourfulness(enhanced),
    }


def summary_row(label: str, per_photo: dict[str, dict[str, float]]) -> dict[str, Any]:
    row: dict[str, Any] = {"model": label, "photos": len(per_photo), "error": None, "per_photo": per_photo}
    for key in ("niqe_gray", "niqe_y", "loe", "clipped_pct", "colourfulness"):
        row[key] = statistics.fmean(values[key] for values in per_photo.values())
    worst = max(per_photo, key=lambda name: per_photo[name]["clipped_pct"])
    row["clipped_worst"] = per_photo[worst]["clipped_pct"]
    row["clipped_worst_photo"] = worst
    return row


def run_quality(args: argparse.Namespace, record) -> dict[str, Any]:
    from lumicap.cli import main as lumicap_main
    from lumicap.data.io import is_image_file, read_image_array
    from lumicap.errors import LumicapError

    photos_dir = Path(args.photos) if args.photos else Path(args.shared) / PHOTOS
    photos = sorted(p for p in photos_dir.rglob("*") if p.is_file() and is_image_file(p))
    if not photos:
        raise LumicapError(f"{photos_dir}: no photos (pass --photos DIR)")
    specs = [s.strip() for s in args.models.split(",") if s.strip()]
    weights = weights_by_model(args.weights, Path(args.shared))
    names = [p.relative_to(photos_dir).with_suffix("").as_posix() for p in photos]
    lows = {name: read_image_array(path) for name, path in zip(names, photos)}
    inputs = {name: measure_photo(low, low) for name, low in lows.items()}
    record(summary_row("dark inputs (no enhancement)", inputs))
    print(f"  dark inputs: NIQE gray {statistics.fmean(v['niqe_gray'] for v in inputs.values()):.3f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="lumicap-bench-noref-") as scratch:
        for spec in specs:
            out = Path(scratch) / spec.replace("/", "_")
            argv = ["enhance", str(photos_dir), "-r", "--out", str(out), "--model", spec, "--device", "cpu", "--no-progress"]
            if spec in weights:
                argv += ["--weights", weights[spec]]
            label = spec if spec not in weights else f"{spec} --weights {Path(weights[spec]).name}"
            start = time.perf_counter()
            try:
                code = lumicap_main(argv)
                if code != 0:
                    raise LumicapError(f"lumicap enhance exited with {code}")
                per_photo = {}
                for name in names:
                    enhanced = read_image_array(out / f"{name}.png")
                    per_photo[name] = measure_photo(lows[name], enhanced)
            except Exception as exc:  # one model failing (weights missing) keeps the others' rows
                record({"model": label, "photos": 0, "error": _common.one_line(exc)})
                print(f"  {label}: {_common.one_line(exc)}", flush=True)
                continue
            row = summary_row(label, per_photo)
            record(row)
            print(f"  {label}: NIQE gray {row['niqe_gray']:.3f}, Y {row['niqe_y']:.3f}, LOE {row['loe']:.1f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    return {"models": specs, "weights": weights, "photos": str(photos_dir), "photo_names": names}


def run_speed(args: argparse.Namespace, repeats: int, warmup: int, record) -> dict[str, Any]:
    import numpy as np
    from PIL import Image

    from lumicap.metrics import niqe

    speed_photo = Path(args.shared) / SPEED_PHOTO
    if speed_photo.is_file():
        base = Image.open(speed_photo).convert("RGB")
        source = str(speed_photo)
    else:
        from skimage import data

        base = Image.fromarray(data.coffee())  # 600x400, bundled with scikit-image
        source = "scikit-image coffee"
    photos = {}
    for size in args.speed_sizes.split(","):
        width, height = (int(v) for v in size.strip().split("x"))
        label = f"{width}x{height}" + (f" ({width * height / 1e6:.0f} MP)" if width * height >= 5e6 else "")
        photos[label] = np.asarray(base if base.size == (width, height) else base.resize((width, height), Image.BICUBIC))
    for size, photo in photos.items():
        seconds = {}
        for mode in ("gray", "y"):
            timing = _common.time_function(lambda: niqe(photo, mode), torch.device("cpu"), repeats, warmup)
            seconds[mode] = timing.median_ms / 1000
        record({"size": size, "s": seconds["gray"], "s_y": seconds["y"]})
        print(f"  NIQE {size}: {seconds['gray']:.2f} s gray, {seconds['y']:.2f} s Y", flush=True)
    return {"speed_photo": source, "repeats": repeats, "warmup": warmup}


def main(argv: list[str] | None = None):
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads or 1)
    device = torch.device("cpu")
    repeats, warmup = _common.repeats_and_warmup(args, device)
    env = _common.environment(device)
    print(_common.describe_environment(env), flush=True)
    written = []
    if not args.no_quality:
        rows: list[dict[str, Any]] = []
        settings = _common.run_or_exit(lambda a: run_quality(a, _common.row_recorder(rows, a.rows_out)), args)
        notes = [f"photos: {settings['photos']} ({len(settings['photo_names'])}: {', '.join(settings['photo_names'])}); "
                 "each model through `lumicap enhance -r` (PNG outputs); means over the photos",
                 "NIQE: lumicap.metrics.niqe (BasicSR 1.4.2's algorithm and pristine model; lower is better); "
                 "LOE: Wang et al. 2013's LOE.m grid (lower is better); clipped: pixels with a channel >= 250",
                 "implementations of NIQE differ by up to about 0.3 on the same photo: compare within one implementation"]
        written.append(_common.report("noref", args, env, settings, QUALITY_COLUMNS, rows, notes))
    if not args.no_speed:
        rows = []
        settings = run_speed(args, repeats, warmup, _common.row_recorder(rows, args.rows_out))
        notes = [f"lumicap.metrics.niqe on {settings['speed_photo']} (and its bicubic upscale), median of "
                 f"{settings['repeats']} after {settings['warmup']} warm-up, {torch.get_num_threads()} torch thread"]
        written.append(_common.report("niqe_speed", args, env, settings, SPEED_COLUMNS, rows, notes))
    return written


if __name__ == "__main__":
    main()
