"""Overfitting sanity check: can each network fit ONE low/normal-light patch pair in about a minute on a CPU?

A network that cannot drive its L1 loss on a single pair down by half in that time has a wiring bug (a dead
branch, a detached path, a bad output range). For each model: crop one patch pair from a LOL-v1 training
image, train with Adam on L1 for ``--seconds``, and print a table: model, start loss, end loss, end/start,
iterations, pass (end <= 0.5 * start).

    python benchmarks/overfit_sanity.py --models iat,retinexformer,snr_aware,retinexnet --seconds 60

The images are read from ``../shared/data/lol-v1/train80`` beside the repository (``--data`` to change).
Exit status 1 when a model fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lol-v1" / "train80"


def load_patch_pair(folder: Path, image: str | None, patch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    from lumicap.data.io import is_image_file, read_image

    low_dir, high_dir = folder / "low", folder / "high"
    if not low_dir.is_dir() or not high_dir.is_dir():
        sys.exit(f"overfit_sanity: no LOL training pairs at {folder} (expected low/ and high/); use --data")
    names = sorted(p.name for p in low_dir.iterdir() if is_image_file(p))
    if not names:
        sys.exit(f"overfit_sanity: no images in {low_dir}")
    name = image or names[0]
    low, high = read_image(low_dir / name), read_image(high_dir / name)
    gen = torch.Generator().manual_seed(seed)
    top = int(torch.randint(0, low.shape[1] - patch + 1, (1,), generator=gen))
    left = int(torch.randint(0, low.shape[2] - patch + 1, (1,), generator=gen))
    crop = (slice(None), slice(top, top + patch), slice(left, left + patch))
    return low[crop][None], high[crop][None], f"{name}@({top},{left})"


def overfit(name: str, low: torch.Tensor, high: torch.Tensor, seconds: float, lr: float, seed: int) -> dict:
    from lumicap.models import build_model

    torch.manual_seed(seed)
    model = build_model(name)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start_loss = None
    iterations = 0
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        loss = F.l1_loss(model(low), high)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if start_loss is None:
            start_loss = loss.item()  # loss of the untrained network (measured before the first update)
        iterations += 1
    elapsed = time.perf_counter() - began
    with torch.no_grad():
        torch.manual_seed(seed)  # same stochastic-depth draws for every model run
        end_loss = F.l1_loss(model(low), high).item()
    ratio = end_loss / start_loss
    return {
        "model": name,
        "start": start_loss,
        "end": end_loss,
        "ratio": ratio,
        "iterations": iterations,
        "seconds": elapsed,
        "pass": end_loss <= 0.5 * start_loss,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="iat,retinexformer,snr_aware,retinexnet",
                        help="comma-separated model names, or 'all'")
    parser.add_argument("--seconds", type=float, default=60.0, help="training time per model")
    parser.add_argument("--patch", type=int, default=64, help="square patch size")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with low/ and high/")
    parser.add_argument("--image", default=None, help="file name in low/ (default: the first)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is far faster than 2 when other jobs share the cores)")
    args = parser.parse_args(argv)

    from lumicap.models import list_models

    torch.set_num_threads(args.threads)
    names = [m.name for m in list_models()] if args.models == "all" else [n.strip() for n in args.models.split(",")]
    low, high, where = load_patch_pair(args.data, args.image, args.patch, args.seed)
    print(f"patch {args.patch}x{args.patch} of {where} from {args.data}; Adam lr {args.lr}, L1, "
          f"{args.seconds:g} s per model, {args.threads} threads")
    rows = [overfit(name, low, high, args.seconds, args.lr, args.seed) for name in names]

    header = f"{'model':<16}{'start L1':>10}{'end L1':>10}{'end/start':>11}{'iters':>8}{'it/s':>7}  pass"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['model']:<16}{r['start']:>10.4f}{r['end']:>10.4f}{r['ratio']:>11.3f}{r['iterations']:>8d}"
              f"{r['iterations'] / r['seconds']:>7.1f}  {'PASS' if r['pass'] else 'FAIL'}")
    return 0 if all(r["pass"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
