#!/usr/bin/env python
"""Stop-and-resume soak of `lumicap train`: interrupt it N times (SIGKILL at start-up, inside checkpoint writes
and between them; SIGTERM; SIGINT; --max-iters), resume each time with `lumicap train --resume`, and compare
with an uninterrupted run of the same seed: weights, best.pt, the iterations validated, the selection and the
test figures.

    python scripts/soak_resume.py --stops 20            # the full soak (CPU, a few minutes)
    python scripts/soak_resume.py --stops 6 --iterations 30 --no-mfr   # a quick look
    python scripts/soak_resume.py --stops 9 --kinds sigterm,sigint,max-iters   # only the handled stops

Prints stops by kind, resumes, corrupt checkpoints found, the max weight difference and both runs' selection
and test figures; exits 1 when a checkpoint was corrupt, an invocation failed, or anything differs.
See scripts/reliability/soak.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the harnesses in scripts/reliability/

from reliability.soak import STOP_KINDS, SoakSettings, run_soak  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stops", "--kills", dest="stops", type=int, default=20,
                        help="interruptions to make (default 20; --kills is the old name)")
    parser.add_argument("--kinds", help=f"comma-separated subset of {','.join(STOP_KINDS)} (default: all, drawn at random)")
    parser.add_argument("--iterations", type=int, help="training iterations (default: 5 per stop + 10, so the stops come before the end)")
    parser.add_argument("--ckpt-every", type=int, default=2)
    parser.add_argument("--val-every", type=int, default=4)
    parser.add_argument("--model", default="iat", help="registry model (default iat, 91k parameters)")
    parser.add_argument("--patch-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--no-mfr", action="store_true", help="train without the MFR term (tiny random teacher)")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--kill-seed", type=int, default=0, help="seed of the stop kinds and moments")
    parser.add_argument("--data", type=Path, help="train on this dataset (e.g. ../shared/data/lol-v1) instead of generated pairs")
    parser.add_argument("--train-split", default="train", help="with --data, e.g. train80")
    parser.add_argument("--test-split", default="test", help="with --data, e.g. eval15")
    parser.add_argument("--work-dir", type=Path, help="keep everything here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()

    weights = SoakSettings.__dataclass_fields__["kind_weights"].default
    if args.kinds:
        chosen = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
        unknown = sorted(set(chosen) - set(STOP_KINDS))
        if unknown or not chosen:
            parser.error(f"--kinds: unknown {', '.join(unknown) or 'empty list'}; choose from {', '.join(STOP_KINDS)}")
        weights = tuple(w if kind in chosen else 0.0 for kind, w in zip(STOP_KINDS, weights))

    def run(work: Path) -> int:
        settings = SoakSettings(
            work_dir=work,
            stops=args.stops,
            iterations=args.iterations or 5 * args.stops + 10,
            ckpt_every=args.ckpt_every,
            val_every=args.val_every,
            model=args.model,
            patch_size=args.patch_size,
            batch_size=args.batch_size,
            mfr=not args.no_mfr,
            seed=args.seed,
            kill_seed=args.kill_seed,
            data_root=args.data,
            train_split=args.train_split,
            test_split=args.test_split,
            kind_weights=weights,
        )
        report = run_soak(settings, progress=lambda line: print(line, flush=True))
        print()
        print(report.text())
        if args.json:
            args.json.write_text(json.dumps(report.to_json(), indent=2, default=str) + "\n")
        return 0 if report.ok and report.stops >= args.stops else 1

    if args.work_dir:
        return run(args.work_dir)
    with tempfile.TemporaryDirectory(prefix="lumicap-soak-") as tmp:
        return run(Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
