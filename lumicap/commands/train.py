"""`lumicap train CONFIG [key=value ...]`: train one run per seed; `--resume RUN_DIR` continues runs.

Every invocation without ``--resume`` makes a new folder ``<output_dir>/<config name>/<timestamp>/``
holding ``seed<S>/`` per seed; nothing existing is overwritten. ``--resume`` takes a run folder (one
seed) or a group folder (every unfinished seed in it; with ``--seeds``, seeds not yet there start in
the same group from the group's config). Under ``torchrun`` the same command trains with DDP.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from lumicap.commands.options import OneLineErrorParser, finite_float, int_in_range


class _IntermixedParser(OneLineErrorParser):
    """Lets ``key=value`` overrides come after options (``CONFIG --max-iters 10 train.amp=bf16``);
    plain argparse stops filling positionals once an option has been seen."""

    def parse_known_args(self, args=None, namespace=None):
        if getattr(self, "_intermixed", False):
            return super().parse_known_args(args, namespace)
        self._intermixed = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixed = False


def register(sub) -> None:
    parser = sub.add_parser(
        "train",
        help="train an enhancement network from a config (baseline or +MFR); resumable, multi-GPU via torchrun",
        description="Train from a YAML config with dotted overrides, e.g. "
        "'lumicap train configs/retinexformer/retinexformer-lol-v1-mfr.yaml data.root=/data/LOL-v1 train.amp=bf16'.",
    )
    parser.__class__ = _IntermixedParser  # subparsers share one parser class; this one needs intermixing
    parser.add_argument("config", nargs="?", help="YAML config file (not with --resume)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. train.amp=bf16")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run(s) in this run or group folder")
    parser.add_argument("--seeds", help="comma-separated seeds, one run each (default: train.seed)")
    parser.add_argument(
        "--max-iters", type=int_in_range(1, None), help="stop this invocation when the run reaches N iterations"
    )
    parser.add_argument(
        "--max-minutes",
        type=finite_float(0, None, low_open=True),
        help="stop this invocation after M minutes (checkpointed)",
    )
    parser.add_argument("--output-dir", help="parent folder of run folders (default: the config's output_dir)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs still written)")
    parser.set_defaults(func=run)


def _parse_seeds(text: str | None) -> list[int] | None:
    from lumicap.errors import LumicapError

    if text is None:
        return None
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise LumicapError(f"--seeds: expected comma-separated integers like 1,2,3, got {shown!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0 or max(seeds) > 2**63 - 1:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise LumicapError(f"--seeds: expected distinct integers in 0..{2**63 - 1}, got {shown!r}")
    return seeds


def run(args: argparse.Namespace) -> int:
    from lumicap.engine.session import Invocation, train_invocation
    from lumicap.errors import LumicapError

    if args.resume and (args.config or args.overrides):
        raise LumicapError("--resume continues a run with its recorded config; do not pass a config or overrides")
    if not args.resume and not args.config:
        raise LumicapError("lumicap train needs a CONFIG file (or --resume RUN_DIR)")
    if args.max_iters is not None and args.max_iters < 1:
        raise LumicapError(f"--max-iters must be >= 1, got {args.max_iters}")
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise LumicapError(f"--max-minutes must be > 0, got {args.max_minutes}")
    invocation = Invocation(
        config=Path(args.config) if args.config else None,
        overrides=list(args.overrides),
        resume=Path(args.resume) if args.resume else None,
        seeds=_parse_seeds(args.seeds),
        max_iters=args.max_iters,
        max_minutes=args.max_minutes,
        output_dir=args.output_dir,
        show_progress=not args.no_progress,
        command=" ".join(shlex.quote(a) for a in ["lumicap", *sys.argv[1:]]),
    )
    results = train_invocation(invocation)
    return 0 if results is not None else 1
