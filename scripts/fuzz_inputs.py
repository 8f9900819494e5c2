#!/usr/bin/env python
"""Input fuzzing of `lumicap enhance` and `lumicap eval` with generated bad and odd image files.

    python scripts/fuzz_inputs.py --count 120          # the full run (CPU, about a minute)
    python scripts/fuzz_inputs.py --count 60 --table   # plus one row per file with the reason given

Files: truncated PNG/JPEG, zero bytes, random bytes with image names, wrong extensions, 1x1, declared
decompression bombs (PNG 100000x100000, JPEG 65000x65000, BMP 60000x60000), 16-bit, grayscale, palette,
RGBA, CMYK JPEG, EXIF-rotated, mismatched pair sizes (eval), mode 000 files, names with spaces and
non-ASCII letters (see scripts/reliability/fuzzfiles.py). enhance runs over the whole folder (whole images,
then 16-pixel tiles written as JPEG); eval runs once per file against a reference. Prints: files tried,
processed, rejected with a one-line reason, tracebacks, good files lost. Exits 1 when there was a
traceback, a lost good file, an accepted bad file or an unaccounted one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the harnesses in scripts/reliability/

from reliability.fuzzfiles import generate_cases  # noqa: E402
from reliability.fuzzrun import fuzz_enhance, fuzz_eval, save_random_lpips, save_random_model  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=120, help="files per command (default 120)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="enhance with this model (default: random IAT weights saved as .safetensors)")
    parser.add_argument("--lpips", action="store_true", help="also fuzz eval with --lpips (random AlexNet/heads files)")
    parser.add_argument("--table", action="store_true", help="print one row per file")
    parser.add_argument("--work-dir", type=Path, help="keep the files here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))

    def run(work: Path) -> int:
        cases = generate_cases(args.count, seed=args.seed)
        model = args.model or str(save_random_model(work / "model"))
        reports = [fuzz_enhance(cases, work, model)]
        tiled = fuzz_enhance(cases, work / "tiled", model, ("--tile", "16", "--tile-overlap", "4", "--format", "jpg"))
        tiled.command = "enhance --tile 16 --format jpg"
        reports += [tiled, fuzz_eval(cases, work)]
        if args.lpips:
            alex, heads = save_random_lpips(work / "lpips")
            lpips_args = ("--lpips", "--alex-weights", str(alex), "--lpips-weights", str(heads), "--no-download")
            report = fuzz_eval(cases, work / "with-lpips", lpips_args)
            report.command = "eval --lpips"
            reports.append(report)
        for report in reports:
            print(report.text())
            if args.table:
                print(report.table())
                print()
        if args.json:
            args.json.write_text(json.dumps([r.summary() for r in reports], indent=2) + "\n")
        return 0 if all(r.ok for r in reports) else 1

    if args.work_dir:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        return run(args.work_dir)
    with tempfile.TemporaryDirectory(prefix="lumicap-fuzz-") as tmp:
        return run(Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
