"""Peak memory of `lumicap enhance` per photo against lumicap's own estimate, for the path it actually takes.

Each (case, size) runs in a fresh Python process: the model is loaded and one tiny photo enhanced (so every
code path is imported), the peak resident set size is reset (``/proc/self/clear_refs``), then one
``enhance_file`` call, the step ``lumicap enhance`` and ``lumicap serve`` run per photo, reads, plans (the
estimate and the path, ``lumicap.inference.memory.plan_memory``), enhances and writes the photo. "measured" is
the growth of the peak RSS during that call; "estimate" is what lumicap planned for it. A row whose estimate is
below the measured peak is a defect of the estimate (the constants in ``lumicap/inference/memory.py``).

Cases: a model spec, optionally with ``+whole`` (``--network-megapixels 0 --max-megapixels 10000``: the network
over the whole photo, the path of the issue's killed run), ``+protect`` (highlight protection on) or ``+onnx``
(the model exported to ONNX first).
Photos are synthetic (smooth colour fields plus noise), written as PNG before the measured process starts.

    python benchmarks/bench_memory_estimate.py --threads 2                     # default cases, 2/12/48 MP
    python benchmarks/bench_memory_estimate.py --cases default --sizes 2,12    # one case
    python benchmarks/bench_memory_estimate.py --calibrate                     # per-network whole-pass bytes/pixel
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import Column  # noqa: E402

BENCHMARK = "memory_estimate"
DEFAULT_CASES = "default,default+whole,default+onnx,retinexformer-lumicap"
SIZES = {2: (1632, 1224), 12: (4000, 3000), 48: (8000, 6000)}  # megapixels -> (width, height), 4:3
COLUMNS = [
    Column("case", "case"),
    Column("size", "photo"),
    Column("megapixels", "MP", "{:.1f}"),
    Column("path", "path taken"),
    Column("estimate_mib", "estimate MiB", "{:.0f}"),
    Column("measured_mib", "measured peak MiB", "{:.0f}"),
    Column("ratio", "measured / estimate", "{:.2f}"),
    Column("bytes_per_pixel", "measured B/pixel", "{:.0f}"),
    Column("seconds", "s", "{:.1f}"),
    Column("note", "note"),
]

_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads({threads})
    from lumicap.inference import TileSettings, enhance_file, load_inference_model
    from lumicap.inference.memory import plan_memory

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    spec, options, photo, tiny, out = {spec!r}, {options!r}, Path({photo!r}), Path({tiny!r}), Path({out!r})
    model = load_inference_model(spec, "cpu", network_megapixels=options.get("network_megapixels"),
                                 highlight_protection=options.get("highlight_protection"))
    tiles = TileSettings(max_megapixels=options.get("max_megapixels"))
    enhance_file(tiny, out / "tiny.png", model, model.device, "png", tiles)  # imports every code path
    from lumicap.data.io import image_size
    height, width = image_size(photo)
    plan = plan_memory(model, tiles, height, width, model.device)
    notes = []
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # the peak RSS starts again from what is resident now
    base = status("VmRSS")
    start = time.perf_counter()
    enhance_file(photo, out / "photo.png", model, model.device, "png", tiles, on_note=notes.append)
    seconds = time.perf_counter() - start
    print(json.dumps({{"measured": status("VmHWM") - base, "estimate": plan.bytes, "path": plan.path,
                      "tile": plan.tile, "available": plan.available, "seconds": seconds, "notes": notes}}))
    """
)

_CALIBRATE = textwrap.dedent(
    """
    import json, torch
    torch.set_num_threads({threads})
    from lumicap.models import build_model
    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    model = build_model({name!r}).eval()
    with torch.no_grad():
        model(torch.rand(1, 3, 64, 64))
    image = torch.rand(1, 3, {side}, {side})
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    base = status("VmRSS")
    with torch.no_grad():
        out = model(image)
    print(json.dumps({{"bytes_per_pixel": (status("VmHWM") - base) / {side} ** 2}}))
    """
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=DEFAULT_CASES, help=f"comma list of cases (default {DEFAULT_CASES})")
    parser.add_argument("--sizes", default="2,12,48", help="comma list of megapixels among 2, 12, 48 (4:3 photos; default all) or WxH")
    parser.add_argument("--skip", default="retinexformer-lumicap@48",
                        help="comma list of case@MP to leave out (default: Retinexformer's 48 MP tiled run, ~10 CPU-minutes)")
    parser.add_argument("--calibrate", action="store_true",
                        help="instead: every registry network's whole-image bytes per pixel at 512 and 1024 px")
    parser.add_argument("--work-dir", type=Path, help="keep photos and outputs here (default: a temporary folder)")
    _common.add_common_arguments(parser)
    return parser


def _run_child(script: str, timeout: float = 3600) -> dict:
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
        return {"error": lines[-1][:200]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _photo(folder: Path, width: int, height: int) -> Path:
    path = folder / f"photo-{width}x{height}.png"
    if not path.is_file():  # written by a child, so the measured processes start equal
        script = textwrap.dedent(f"""
            import numpy as np
            from PIL import Image
            rng = np.random.default_rng(0)
            coarse = rng.integers(0, 70, size=({height} // 32, {width} // 32, 3), dtype=np.uint8)
            photo = np.asarray(Image.fromarray(coarse).resize(({width}, {height}), Image.BILINEAR))
            photo = np.clip(photo + rng.integers(0, 6, size=photo.shape, dtype=np.uint8), 0, 255).astype(np.uint8)
            Image.fromarray(photo).save({str(path)!r}, compress_level=1)
        """)
        subprocess.run([sys.executable, "-c", script], check=True)
    return path


def _size(text: str) -> tuple[str, tuple[int, int]]:
    """("12", (4000, 3000)) for a megapixel figure of SIZES, or ("WxH", (W, H)) for any other size."""
    if text.isdigit() and int(text) in SIZES:
        return text, SIZES[int(text)]
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) >= 16 and int(height) >= 16):
        raise SystemExit(f"--sizes: {text!r} is neither one of {sorted(SIZES)} (megapixels) nor WxH")
    return text, (int(width), int(height))


def _case(case: str, work: Path) -> tuple[str, dict]:
    """(model spec, load/tile options) of a case name."""
    spec, _, variant = case.partition("+")
    if variant == "whole":
        return spec, {"network_megapixels": 0, "max_megapixels": 10_000.0}
    if variant == "protect":
        return spec, {"highlight_protection": True}
    if variant == "onnx":
        exported = work / f"{spec}.onnx"
        if not exported.is_file():
            from lumicap.cli import main

            if main(["export", spec, "--format", "onnx", "--out", str(exported)]) != 0:
                raise SystemExit(f"could not export {spec} to ONNX")
        return str(exported), {}
    if variant:
        raise SystemExit(f"unknown case variant '+{variant}' (whole, protect or onnx)")
    return spec, {}


def measure_cases(args: argparse.Namespace, work: Path) -> list[dict]:
    sizes = [_size(text.strip()) for text in args.sizes.split(",") if text.strip()]
    skipped = {item.strip() for item in args.skip.split(",") if item.strip()}
    tiny = _photo(work, 64, 48)
    rows = []
    for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
        spec, options = _case(case, work)
        for label, (width, height) in sizes:
            if f"{case}@{label}" in skipped:
                continue
            photo = _photo(work, width, height)
            out = work / "out" / f"{case}-{label}"
            out.mkdir(parents=True, exist_ok=True)
            script = _CHILD.format(threads=args.threads or 2, spec=spec, options=options, photo=str(photo),
                                   tiny=str(tiny), out=str(out))
            result = _run_child(script)
            row = {"case": case, "size": f"{width}x{height}", "megapixels": width * height / 1e6}
            if "error" in result:
                row["note"] = f"failed: {result['error']}"
            else:
                path = result["path"] + (f" ({result['tile']} px)" if result["tile"] else "")
                row.update(path=path, estimate_mib=result["estimate"] / 2**20, measured_mib=result["measured"] / 2**20,
                           ratio=result["measured"] / result["estimate"], seconds=result["seconds"],
                           bytes_per_pixel=result["measured"] / (width * height),
                           note="; ".join(n.removeprefix("lumicap: note: ") for n in result["notes"] if "instead" in n))
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def calibrate(args: argparse.Namespace) -> list[dict]:
    from lumicap.models import model_names

    rows = []
    for name in model_names():
        for side in (512, 1024):
            result = _run_child(_CALIBRATE.format(threads=args.threads or 2, name=name, side=side))
            row = {"case": name, "size": f"{side}x{side}", "megapixels": side * side / 1e6, "path": "whole (network only)",
                   "bytes_per_pixel": result.get("bytes_per_pixel"), "note": result.get("error")}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def run(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work_dir or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        rows = calibrate(args) if args.calibrate else measure_cases(args, work)
    env = _common.environment(torch.device("cpu"))
    settings = {"cases": args.cases, "sizes": args.sizes, "skip": args.skip, "calibrate": args.calibrate,
                "threads": args.threads}
    notes = ["measured: growth of the peak RSS of one enhance_file call (read, plan, enhance, write) in a fresh process"]
    _common.report(BENCHMARK + ("_calibration" if args.calibrate else ""), args, env, settings, COLUMNS, rows, notes)


if __name__ == "__main__":
    _common.run_or_exit(run, build_parser().parse_args())
