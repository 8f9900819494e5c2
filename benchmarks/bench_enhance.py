"""End-to-end ``lumicap enhance`` per photo (decode, network, encode), several models side by side.

What a laptop user waits for: ``enhance_files`` on one photo, as the command runs it (model already loaded),
timed in one process with the models interleaved round by round (a busy machine slows every model alike),
median over ``--repeats`` warm rounds after one warm-up round. Peak memory is measured apart, one child
process per (model, photo) running the real command line, as the peak resident set size of that process.

Photos: a 600x400 LOL-v1 eval15 dark photo when ``../shared/data`` is present (else a darkened bundled sample
photo), and the same photo upscaled to 4000x3000 (12 MP) and saved as a JPEG, as a phone would give it.
Outputs are PNG (the command's default).

    python benchmarks/bench_enhance.py --threads 2                                    # default vs Retinexformer
    python benchmarks/bench_enhance.py --models default,F.onnx --sizes 600x400 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import Column  # noqa: E402

BENCHMARK = "enhance"
SHARED_PHOTO = _common.REPO_ROOT.parent / "shared" / "data" / "lol-v1" / "eval15" / "low" / "1.png"
COLUMNS = [
    Column("model", "model"),
    Column("size", "photo"),
    Column("mode", "network"),
    Column("s", "s/photo", "{:.2f}"),
    Column("ratio", "x first model", "{:.2f}"),
    Column("peak_mib", "peak RSS MiB", "{:.0f}"),
    Column("error", "error"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="default,retinexformer-lumicap",
                        help="comma list of --model values (default: the shipped default and the shipped Retinexformer)")
    parser.add_argument("--sizes", default="600x400,4000x3000", help="comma list of WxH photos (default 600x400,4000x3000)")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-process peak RSS runs")
    _common.add_common_arguments(parser)
    return parser


def make_photos(folder: Path, sizes: list[tuple[int, int]]) -> dict[str, Path]:
    """{"WxH": path}: the base photo at 600x400 as PNG; other sizes resampled from it, saved as JPEG."""
    import numpy as np
    from PIL import Image

    if SHARED_PHOTO.is_file():
        base = Image.open(SHARED_PHOTO).convert("RGB")
    else:
        from lumicap.report.demo import write_demo_inputs

        demo = write_demo_inputs(folder / "demo")
        base = Image.open(sorted(demo.low_dir.glob("*.png"))[0]).convert("RGB")
    photos = {}
    for height, width in sizes:
        key = f"{width}x{height}"
        if (width, height) == base.size:
            path = folder / f"photo_{key}.png"
            base.save(path)
        else:
            path = folder / f"photo_{key}.jpg"
            base.resize((width, height), Image.BICUBIC).save(path, quality=92)
        photos[key] = path
    np.asarray(base)  # decoded once here, so a broken source fails before timing
    return photos


def time_enhance(model, photo: Path, out: Path) -> float:
    from lumicap.inference import TileSettings, collect_inputs, enhance_files

    inputs = collect_inputs([photo])
    start = time.perf_counter()
    summary = enhance_files(inputs, out, model, model.device, overwrite=True, tiles=TileSettings(), progress=False)
    seconds = time.perf_counter() - start
    if summary.failed:
        raise RuntimeError(summary.failed[0][1])
    return seconds


def peak_rss(spec: str, photo: Path, out: Path, threads: int | None) -> float:
    """Peak RSS (MiB) of a child process running ``lumicap enhance PHOTO --model SPEC`` on the CPU."""
    # VmHWM, not getrusage's ru_maxrss: the latter carries the parent's peak across fork+exec.
    code = (
        "import sys\n"
        "from lumicap.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
        "print('PEAK_KIB', hwm)\n"
        "sys.exit(rc)\n"
    )
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    result = subprocess.run(
        [sys.executable, "-c", code, "enhance", str(photo), "--out", str(out), "--model", spec, "--device", "cpu",
         "--overwrite", "--no-progress"], capture_output=True, text=True, env=env,
    )
    for line in result.stdout.splitlines():
        if line.startswith("PEAK_KIB"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(" ".join((result.stderr or result.stdout).split())[-200:])


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    import bench_inference
    from lumicap.inference import load_inference_model

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    repeats, warmup = _common.repeats_and_warmup(args, device)
    sizes = bench_inference.parse_sizes(args.sizes)
    specs = [s.strip() for s in args.models.split(",") if s.strip()]
    env = _common.environment(device)
    print(_common.describe_environment(env), flush=True)
    rows: list[dict[str, Any]] = []
    record = _common.row_recorder(rows, args.rows_out)
    with tempfile.TemporaryDirectory(prefix="lumicap-bench-enhance-") as scratch_dir:
        scratch = Path(scratch_dir)
        photos = make_photos(scratch, sizes)
        models = {}
        for spec in specs:
            try:
                models[spec] = load_inference_model(spec, "cpu")
            except Exception as exc:
                models[spec] = _common.one_line(exc)
        samples: dict[tuple[str, str], list[float]] = {(s, k): [] for s in specs for k in photos}
        errors: dict[tuple[str, str], str] = {}
        for round_index in range(warmup + repeats):
            for key, photo in photos.items():
                for spec in specs:
                    model = models[spec]
                    if isinstance(model, str) or (spec, key) in errors:
                        continue
                    try:
                        seconds = time_enhance(model, photo, scratch / "out" / spec.replace("/", "_"))
                    except Exception as exc:
                        errors[(spec, key)] = _common.one_line(exc)
                        continue
                    if round_index >= warmup:
                        samples[(spec, key)].append(seconds)
            print(f"  round {round_index + 1}/{warmup + repeats} done", flush=True)
        for key, photo in photos.items():
            first = None
            for spec in specs:
                model = models[spec]
                height, width = (int(v) for v in reversed(key.split("x")))
                row = {"model": spec, "size": key, "mode": None, "s": None, "samples_s": None, "ratio": None,
                       "peak_mib": None, "error": model if isinstance(model, str) else errors.get((spec, key))}
                if not isinstance(model, str):
                    limit = getattr(model.module, "network_megapixels", None)
                    row["model"] = f"{spec} ({model.name})"
                    row["mode"] = (f"{limit:g} MP + full-res transform" if limit and height * width > limit * 1e6
                                   else "whole" if height * width <= 2e6 else "tiles of 512")
                if samples[(spec, key)]:
                    row["s"] = statistics.median(samples[(spec, key)])
                    row["samples_s"] = samples[(spec, key)]
                    first = first or row["s"]
                    row["ratio"] = row["s"] / first
                if not args.no_memory and not row["error"]:
                    try:
                        row["peak_mib"] = peak_rss(spec, photo, scratch / "rss", args.threads)
                    except Exception as exc:
                        row["error"] = _common.one_line(exc)
                record(row)
                shown = f"{row['s']:.2f} s, peak {row['peak_mib'] or 0:.0f} MiB" if row["s"] else row["error"]
                print(f"  {row['model']:40} {key:>10}: {shown}", flush=True)
    settings = {"models": specs, "sizes": [f"{w}x{h}" for h, w in sizes], "repeats": repeats, "warmup": warmup,
                "threads": torch.get_num_threads(), "photo": str(SHARED_PHOTO) if SHARED_PHOTO.is_file() else "demo photo"}
    return rows, {"env": env, "settings": settings}


def main(argv: list[str] | None = None):
    args = build_parser().parse_args(argv)
    rows, meta = _common.run_or_exit(run, args)
    s = meta["settings"]
    notes = [
        f"one photo through enhance_files (decode, network, PNG encode); median of {s['repeats']} rounds after "
        f"{s['warmup']}, models interleaved; {s['threads']} torch threads; photo: {s['photo']}",
        "peak RSS: a separate `lumicap enhance` process per row (whole process: Python, torch, model, images)",
    ]
    return _common.report(BENCHMARK, args, meta["env"], s, COLUMNS, rows, notes)


if __name__ == "__main__":
    main()
