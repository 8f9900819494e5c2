"""Peak memory and time of `lumicap enhance` per image size on CPU, and how much tiling changes the output.

Each size runs in a fresh Python process (peak RSS, ``ru_maxrss``, is per process): a synthetic photo
is written as PNG (not timed), the model is loaded, then one ``enhance_files`` call reads, enhances
(whole or in tiles, as the command decides) and writes it. "peak +MB" is the growth of the peak RSS
during that call, i.e. what enhancing the photo costs on top of the loaded program and model.

The second table compares tiled with whole-image output of the same model on a 600x400 photo (a LOL
image when ../shared/data is present, else a demo photo): zero for local networks, not for networks
with global operations.

    python benchmarks/bench_enhance_memory.py                  # default model if shipped, else random IAT
    python benchmarks/bench_enhance_memory.py --model iat --sizes 600x400,4000x3000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from pathlib import Path
    import numpy as np, torch
    torch.set_num_threads({threads})
    from PIL import Image
    from lumicap.inference import TileSettings, collect_inputs, enhance_files, load_inference_model, plan_tiles
    from lumicap.inference.batch import DEFAULT_TILE
    work = Path({work!r}); height, width = {height}, {width}
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 70, size=(max(2, height // 32), max(2, width // 32), 3), dtype=np.uint8)
    photo = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR))
    noisy = np.clip(photo + rng.integers(0, 6, size=photo.shape, dtype=np.uint8), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(work / "photo.png", compress_level=1)
    del coarse, photo, noisy
    spec = {model!r}
    if spec.startswith("random:"):
        from lumicap.inference import InferenceModel
        from lumicap.models import build_model
        module = build_model(spec[7:]).eval()
        model = InferenceModel(module, spec[7:], "random weights", torch.device("cpu"))
    else:
        model = load_inference_model(spec, "cpu")
    tiles = TileSettings(tile={tile}, overlap={overlap})
    chosen = tiles.tile_for(height, width, model.device)
    plan = "whole" if chosen is None else f"{{plan_tiles(height, width, chosen, {overlap}).count}} tiles of {{chosen}}"
    import lumicap.data.io, tqdm  # imported before the baseline
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    summary = enhance_files(collect_inputs([work / "photo.png"]), work / "out", model, model.device,
                            tiles=tiles, progress=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert not summary.failed, summary.failed
    print(json.dumps({{"plan": plan, "seconds": seconds, "increase_mb": (after - before) / 1024,
                      "base_mb": before / 1024, "model": model.describe()}}))
    """
)


def measure(height: int, width: int, model: str, tile, overlap: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as work:
        script = _CHILD.format(threads=threads, work=work, height=height, width=width, model=model,
                               tile=tile, overlap=overlap)
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{height}x{width} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def tiling_difference(model_spec: str, tile: int, overlap: int) -> tuple[str, float, float]:
    import torch

    from lumicap.inference import InferenceModel, load_inference_model, run_tiled, run_whole
    from lumicap.models import build_model

    torch.set_num_threads(2)
    lol = SHARED / "lol-v1" / "eval15" / "low" / "1.png"
    if lol.is_file():
        from lumicap.data.io import read_image

        name, image = "LOL eval15 low/1.png", read_image(lol)
    else:
        from lumicap.report.demo import darken, demo_photo, LowLightParams
        import numpy as np

        rng = np.random.default_rng(0)
        dark = darken(demo_photo("coffee") / 255.0, LowLightParams.draw(rng), rng)
        name, image = "demo coffee (dark)", torch.from_numpy(dark).permute(2, 0, 1).float()
    if model_spec.startswith("random:"):
        torch.manual_seed(0)
        model = InferenceModel(build_model(model_spec[7:]).eval(), model_spec[7:], "random weights", torch.device("cpu"))
    else:
        model = load_inference_model(model_spec, "cpu")
    whole = run_whole(model, image)
    tiled = run_tiled(model, image, tile=tile, overlap=overlap)
    diff = (whole - tiled).abs()
    return name, float(diff.max()), float(diff.mean())


def main() -> None:
    from lumicap.inference import DEFAULT_OVERLAP, DEFAULT_TILE
    from lumicap.inference.loading import DEFAULT_WEIGHTS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None,
                        help="model spec for load_inference_model, or random:NAME (default: shipped model, else random:iat)")
    parser.add_argument("--sizes", default="600x400,4000x3000,6000x4000", help="WIDTHxHEIGHT list")
    parser.add_argument("--tile", type=int, default=None, help=f"force tiles of this size (default: auto, {DEFAULT_TILE})")
    parser.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compare-tile", type=int, default=256, help="tile size for the tiled-vs-whole comparison")
    args = parser.parse_args()
    model = args.model or ("default" if DEFAULT_WEIGHTS.is_file() else "random:iat")

    print(f"model: {model}; CPU threads: {args.threads}; tile overlap {args.overlap}")
    print(f"{'size':>11} {'MP':>5} {'pass':>18} {'seconds':>8} {'peak +MB':>9} {'B/pixel':>8}")
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.lower().split("x"))
        result = measure(height, width, model, args.tile, args.overlap, args.threads)
        pixels = width * height
        print(f"{size:>11} {pixels / 1e6:5.1f} {result['plan']:>18} {result['seconds']:8.1f} "
              f"{result['increase_mb']:9.0f} {result['increase_mb'] * 2**20 / pixels:8.1f}")

    name, worst, mean = tiling_difference(model, args.compare_tile, args.overlap)
    print(f"\ntiled ({args.compare_tile}px, overlap {args.overlap}) vs whole-image output on {name}:")
    print(f"  max |difference| {worst:.4f} ({worst * 255:.2f}/255), mean {mean:.5f} ({mean * 255:.3f}/255)")
    if model.startswith("random:"):
        print("  (random weights: IAT's global branch starts image-independent, its value projection is zero-"
              "initialised, so tiles cannot differ yet; rerun with trained weights for the real figure)")


if __name__ == "__main__":
    main()
