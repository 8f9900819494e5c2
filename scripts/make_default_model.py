"""Write the shipped default model (``lumicap/assets/default_model.safetensors`` + ``.json``) from a training run.

    python scripts/make_default_model.py RUN_DIR --command "lumicap train configs/default/..." \\
        --machine "2-core CPU, torch 2.13" [--network-megapixels 1.0] [--out lumicap/assets/default_model.safetensors]

The run folder's selected checkpoint (``checkpoints/best.pt``: best validation PSNR) becomes the weights; the
sidecar records the command, data, selection, machine and the inference setting (the network runs on at most
``--network-megapixels`` and its transform is applied at full resolution). When ``../shared/data`` holds
LOL-v1 eval15, the script also measures the written model the way a user would (``lumicap enhance`` to 8-bit
PNGs, then ``lumicap eval``) and stores those figures in the sidecar; it never selects anything on them.
An existing output is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVAL15 = REPO.parent / "shared" / "data" / "lol-v1" / "eval15"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="lumicap run folder (or a checkpoint file)")
    parser.add_argument("--command", required=True, help="the training command, as the model card shows it")
    parser.add_argument("--machine", required=True, help="where and how long it trained")
    parser.add_argument("--data", default="LOL-v1 train80 + train200 (280 pairs of our485, whole scenes); validation: "
                        "pairs carved by scene from them (data.val_seed 0); test: eval15")
    parser.add_argument("--network-megapixels", type=float, default=1.0)
    parser.add_argument("--highlight-protection", type=float, nargs=2, default=[0.5, 0.9], metavar=("START", "END"),
                        help="the sidecar's highlight protection ramp (lumicap.inference.highlights); default 0.5 0.9")
    parser.add_argument("--no-highlight-protection", action="store_true")
    parser.add_argument("--out", default=str(REPO / "lumicap" / "assets" / "default_model.safetensors"))
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    from lumicap.cli import main as lumicap
    from lumicap.inference import load_inference_model, save_inference_model

    source = load_inference_model(args.run, "cpu", network_megapixels=0, highlight_protection=False)
    meta = source.metadata
    best = meta.get("best") if isinstance(meta.get("best"), dict) else {}
    record = {
        "training_command": args.command,
        "data": args.data,
        "selection": f"checkpoints/best.pt: best validation {best.get('metric', 'psnr')} "
                     f"{best.get('value', float('nan')):.3f} at iteration {best.get('iteration')}",
        "machine": args.machine,
        "inference": {"network_megapixels": args.network_megapixels,
                      "highlight_protection": False if args.no_highlight_protection else args.highlight_protection},
    }
    out = Path(args.out)
    save_inference_model(out, source.name, source.module.state_dict(), meta.get("overrides") or {},
                         overwrite=args.overwrite, **record)
    if (EVAL15 / "low").is_dir():
        with tempfile.TemporaryDirectory() as scratch:
            enhanced = Path(scratch) / "enhanced"
            lumicap(["enhance", str(EVAL15 / "low"), "--out", str(enhanced), "--model", str(out), "--no-progress"])
            results = Path(scratch) / "eval"
            lumicap(["eval", "--pred", str(enhanced), "--gt", str(EVAL15 / "high"), "--out", str(results)])
            summary = json.loads((results / "summary.json").read_text())
        record["eval15"] = {"psnr": round(summary["psnr"], 4), "ssim": round(summary["ssim"], 4),
                            "measured": "lumicap enhance (8-bit PNG) + lumicap eval, float PSNR, MATLAB SSIM, no GT-mean"}
        save_inference_model(out, source.name, source.module.state_dict(), meta.get("overrides") or {},
                             overwrite=True, **record)
        print(f"eval15: PSNR {summary['psnr']:.3f} dB, SSIM {summary['ssim']:.4f}")
    print(f"wrote {out} and {out.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
