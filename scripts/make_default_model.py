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
    parser.add_argument("--chroma-gain", default="auto", metavar="auto|X",
                        help="the sidecar's chroma gain (lumicap.inference.chroma); auto (default): the largest gain "
                        "from 1 to 2 whose PSNR on the run's validation carve is within 0.05 dB of the best gain's")
    parser.add_argument("--out", default=str(REPO / "lumicap" / "assets" / "default_model.safetensors"))
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    from lumicap.cli import main as lumicap
    from lumicap.inference import load_inference_model, save_inference_model

    source = load_inference_model(args.run, "cpu", network_megapixels=0, highlight_protection=False, chroma_gain=1)
    meta = source.metadata
    if args.chroma_gain == "auto":
        gain, selection = _validation_chroma_gain(Path(args.run), args.network_megapixels)
    else:
        gain, selection = float(args.chroma_gain), "given on the command line"
    best = meta.get("best") if isinstance(meta.get("best"), dict) else {}
    record = {
        "training_command": args.command,
        "data": args.data,
        "selection": f"checkpoints/best.pt: best validation {best.get('metric', 'psnr')} "
                     f"{best.get('value', float('nan')):.3f} at iteration {best.get('iteration')}",
        "machine": args.machine,
        "inference": {"network_megapixels": args.network_megapixels,
                      "highlight_protection": False if args.no_highlight_protection else args.highlight_protection,
                      "chroma_gain": gain},
        "chroma_gain_selection": selection,
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


def _validation_chroma_gain(run: Path, network_megapixels: float) -> tuple[float, str]:
    """Measure the run's validation carve (its config's data, never the test split) at each chroma gain, on 8-bit
    outputs as a user gets them; return the chosen gain and a line saying how it was chosen."""
    import torch

    from lumicap.config import load_config
    from lumicap.data.io import read_image
    from lumicap.engine.data import resolve_splits
    from lumicap.inference import load_inference_model
    from lumicap.inference.chroma import choose_gain, scale_chroma
    from lumicap.metrics import psnr

    splits = resolve_splits(load_config(run / "config.yaml"))
    model = load_inference_model(run, "cpu", network_megapixels=network_megapixels, highlight_protection=False,
                                 chroma_gain=1)
    gains = [round(1 + 0.05 * i, 2) for i in range(21)]
    totals = dict.fromkeys(gains, 0.0)
    with torch.no_grad():
        for pair in splits.val:
            low, high = read_image(pair.low)[None], read_image(pair.high)[None]
            out = model(low)
            for gain in gains:
                scaled = (scale_chroma(out.clone(), gain) * 255).round() / 255  # the 8-bit file a user gets
                totals[gain] += float(psnr(scaled, high))
    table = {gain: total / len(splits.val) for gain, total in totals.items()}
    gain = choose_gain(table)
    print("validation PSNR by chroma gain: " + ", ".join(f"{g:g}: {v:.3f}" for g, v in table.items()))
    selection = (f"largest gain in 1-2 within 0.05 dB of the best validation PSNR ({len(splits.val)} pairs carved "
                 f"from the training data): {table[gain]:.3f} dB at {gain:g}, {table[1.0]:.3f} dB at 1, best "
                 f"{max(table.values()):.3f} dB at {max(table, key=table.get):g}")
    print(f"chroma gain: {gain:g} ({selection})")
    return gain, selection



if __name__ == "__main__":
    sys.exit(main())
