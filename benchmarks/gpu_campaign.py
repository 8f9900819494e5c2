"""The GPU campaign: everything worth measuring on a lent GPU, in one command, in a fixed time.

    python benchmarks/gpu_campaign.py --pack                  # here, before: data (+ wheels) into .campaign/
    python -m pip install -q --no-index --no-build-isolation --find-links .campaign/wheels -e . \
        && python benchmarks/gpu_campaign.py --data .campaign/data --out-dir "$OUT"     # on the GPU machine
    python benchmarks/gpu_campaign.py --dry-run               # every part on the CPU, tiny settings, seconds

A lent GPU has 15 minutes of device time and one command at most 10: the whole campaign fits one call
(default ``--minutes 9.3``, about 9.7 with the install), or, for more rows, two back-to-back calls on the
warm machine: ``--parts ab --minutes 6`` then ``--parts cd --minutes 5``. First run (NVIDIA H200,
2026-11-27, results in ``benchmarks/results/gpu-2026-11-27/``): part a's rows cost about 12 s each
(set-up, cuDNN autotuning, compilation; the rows now record ``wall_s``), so one call reached 9 of its 32 rows.

Parts, in order of value, each a child process with its own time cap (a part that hangs or runs long is
stopped at its cap; the rows it finished are kept, because the benchmarks append every row to a JSON-lines
file as soon as it is measured):

a. ``train_step``: ``bench_train_step.py`` for all 8 models at their recipe batch/patch, baseline and
   +MFR (random full-size teacher), in the trainer's default mode (fp32, fused Adam, cuDNN autotune) and
   its fastest switches (bf16 autocast of model and teacher, TF32, channels-last), then compiled
   (``torch.compile`` of the training forward and the teacher) for the models named by ``--compile-models``;
b. ``inference``: ``bench_inference.py`` at 600x400 and 3840x2160, whole images (tiles where a whole one
   does not fit), fp32 and bf16;
c. ``time_to_quality``: ``bench_time_to_quality.py`` on the default-model recipe
   (``configs/default/lumicap-default.yaml``) with train80/eval15: test PSNR/SSIM at fixed training
   minutes, baseline and +MFR;
d. ``default_model``: ``lumicap train`` of the same recipe for the minutes left, as a user runs it;
   its selected checkpoint (best validation PSNR) and test summary are kept as artifacts;
e. ``vs_official``: ``bench_vs_official.py`` on the GPU: each of the six PyTorch baselines against its official
   code, same weights, train step and inference (interleaved rounds, peak GPU memory of inference). The
   official code is not in the repository: carry the git-ignored ``.official/`` folder to the GPU machine
   (see that script's docstring); without it the part ends with one line saying the files are missing;
f. ``mfr_overhead``: ``bench_mfr.py`` at batch 8, 128x128, fused and separate passes, eager and replayed as
   one CUDA graph, fp32 and bf16 teacher weights (with the bf16 teacher's loss/gradient error against fp32):
   the MFR-overhead goal of issue 26 is at most 8 ms per step on an H100.

Parts run in the order a, b, e, f, c, d (value first); ``--parts`` picks any of them.

Results: ``gpu_campaign_<device>_<date>.json`` and ``.md`` under ``--out-dir`` (every row of every part,
the caps, what each part did in its time) plus ``default_model_best.pt`` and ``default_model_summary.json``
from part d, and the console log. The summary table is printed at the end.
Data (``--data``): a folder with ``lol-v1/{train80,eval15}/{low,high}``, as PNG or as the lossless WebP
that ``--pack`` writes (so the pairs travel in the 64 MiB a device call carries); WebP is unpacked to PNG
in a temporary folder first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import _common  # noqa: E402
from _common import Column  # noqa: E402

BENCHMARK = "gpu_campaign"
DEFAULT_RECIPE = REPO / "configs" / "default" / "lumicap-default.yaml"
# Value order inside a part: the models the speed goals name first, then the rest by size.
MODEL_ORDER = ("retinexformer", "iat", "rctnet", "retinexnet", "uhdfour", "snr_aware", "llformer", "mirnet")
# Share of the total minutes each part may use (d gets whatever is left, at least its share).
SHARES = {"a": 0.30, "b": 0.12, "e": 0.12, "f": 0.10, "c": 0.20, "d": 0.16}
PART_ORDER = "abefcd"
OFFICIAL_ROOT = REPO / ".official"
# --dry-run without the official code: an object with the official IAT's interface (forward returns
# mul, add, image) stands in, so that part e's code path runs on any machine.
OFFICIAL_STAND_IN = """
import torch
from lumicap.models.iat import IAT as _IAT


class Official(torch.nn.Module):
    def __init__(self, type="lol"):
        super().__init__()
        self.inner = _IAT(variant=type)

    def state_dict(self, *args, **kwargs):
        return self.inner.state_dict(*args, **kwargs)

    def forward(self, x):
        out = self.inner.training_outputs(x)
        return out["mul"], out["add"], out["output"]
"""
# --dry-run: a quick model and RetinexNet (a model-defined stage objective) stand for the eight.
DRY_RUN_MODELS = ("iat", "retinexnet")
PACK_DIR = REPO / ".campaign"
SHARED_DATA = REPO.parent / "shared" / "data"
# Packages of lumicap's dependencies that the GPU machines' image lacks (they reach no package index);
# --pack downloads wheels for Python 3.12 so that `pip install --no-index --find-links` works there.
MISSING_ON_GPU_IMAGE = ("pypng", "omegaconf", "antlr4-python3-runtime", "pydantic", "pydantic-core",
                        "annotated-types", "typing-inspection")

SUMMARY_COLUMNS = [
    Column("part", "part"),
    Column("what", "what"),
    Column("result", "result"),
]


@dataclass
class Part:
    key: str
    name: str
    commands: list[list[str]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cap: float = 0.0


# ------------------------------------------------------------------------------------------ packing
def pack(source: Path, out: Path, wheels: bool) -> None:
    """Copy train80/eval15 as lossless WebP (about 25% smaller than the PNGs) and fetch missing wheels."""
    from PIL import Image

    target = out / "data" / "lol-v1"
    count = 0
    for split in ("train80", "eval15"):
        for side in ("low", "high"):
            folder = source / "lol-v1" / split / side
            if not folder.is_dir():
                raise SystemExit(f"error: {folder} is missing (expected LOL-v1 train80/eval15 under {source})")
            (target / split / side).mkdir(parents=True, exist_ok=True)
            for png in sorted(folder.glob("*.png")):
                dest = target / split / side / (png.stem + ".webp")
                if not dest.exists():
                    Image.open(png).convert("RGB").save(dest, "WEBP", lossless=True, quality=100, method=6)
                count += 1
    size = sum(p.stat().st_size for p in target.rglob("*.webp")) / 2**20
    print(f"packed {count} images into {target} ({size:.1f} MiB)")
    if wheels:
        wheel_dir = out / "wheels"
        wheel_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "-q", "--dest", str(wheel_dir), "--only-binary", ":all:",
                   "--python-version", "3.12", "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
                   "--no-deps", *MISSING_ON_GPU_IMAGE]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            # omegaconf/antlr publish no wheel for every version: retry one by one, report what is missing.
            for package in MISSING_ON_GPU_IMAGE:
                one = subprocess.run([*command[:-len(MISSING_ON_GPU_IMAGE)], package], capture_output=True, text=True)
                if one.returncode != 0:
                    print(f"warning: no wheel for {package}: {one.stderr.strip().splitlines()[-1:]}")
        print(f"wheels: {', '.join(sorted(p.name for p in wheel_dir.iterdir()))}")


def unpack_if_webp(data: Path, scratch: Path) -> Path:
    """``data`` as PNG: unchanged when it holds PNGs, else a decoded copy of its WebP files."""
    from PIL import Image

    webps = sorted(data.rglob("*.webp"))
    if not webps:
        return data
    out = scratch / "data"
    for path in webps:
        dest = out / path.relative_to(data).with_suffix(".png")
        dest.parent.mkdir(parents=True, exist_ok=True)
        Image.open(path).convert("RGB").save(dest, compress_level=1)
    print(f"unpacked {len(webps)} WebP images into {out}", flush=True)
    return out


def make_tiny_data(scratch: Path) -> Path:
    """--dry-run without data: a few random LOL-v1-style pairs (scenes of distinct content)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    root = scratch / "tiny-data"
    for split, names in (("train80", range(1, 13)), ("eval15", range(100, 103))):
        for name in names:
            high = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
            for side, image in (("high", high), ("low", (high * 0.1).astype(np.uint8))):
                folder = root / "lol-v1" / split / side
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(folder / f"{name}.png")
    return root


# ------------------------------------------------------------------------------------------ running
def run_child(command: list[str], cap: float, log, env: dict[str, str]) -> str:
    """Run one child, its output into the log, stopped at ``cap`` seconds; returns how it ended."""
    if cap < 5:
        return "skipped: no time left"
    log.write(f"\n$ {' '.join(command)}   (cap {cap:.0f} s)\n")
    log.flush()
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env, start_new_session=True)
    try:
        code = process.wait(timeout=cap)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
        return f"stopped at its cap after {time.monotonic() - start:.0f} s"
    return f"exit {code} after {time.monotonic() - start:.0f} s"


def read_rows(path: Path, **extra: Any) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                rows.append({**extra, **json.loads(line)})
            except json.JSONDecodeError:  # a line cut by a kill at the cap
                pass
    return rows


def plan(args, data_root: Path, scratch: Path, out_dir: Path) -> list[Part]:
    py = [sys.executable]
    bench = HERE
    models = ",".join(m for m in MODEL_ORDER if m in args.models.split(",")) if args.models != "all" else ",".join(MODEL_ORDER)
    if args.dry_run and args.models == "all":
        models = ",".join(DRY_RUN_MODELS)
    device = ["--device", "cpu" if args.dry_run else "cuda"]
    timing = ["--repeats", "1", "--warmup", "0"] if args.dry_run else ["--repeats", str(args.repeats), "--warmup", "2"]
    small = ["--small", "--teacher", "tiny"] if args.dry_run else ["--teacher", "full"]
    if args.compile_models is None:  # compiling on a CPU takes minutes: the dry run leaves it out unless asked
        args.compile_models = "" if args.dry_run else "retinexformer"
    compile_models = ",".join(m for m in args.compile_models.split(",") if m)
    parts = {}

    a = Part("a", "train_step")
    common_a = [*py, str(bench / "bench_train_step.py"), *device, *timing, *small, "--models", models, "--no-save"]
    fastest = ["--amp", "bf16", "--mfr-amp", "bf16", "--tf32", "on", "--channels-last"]
    # 1: the trainer's defaults; 2: the speed goal's model compiled (its compile time is paid in warm-up);
    # 3: every model with the fastest eager switches.
    a.commands.append([*common_a, "--rows-out", str(scratch / "a1.jsonl")])
    # Which MFR terms cost what (CLIP alone, + mapper, + GPT-2), fused passes, fp32 and bf16.
    mfr_size = (["--batch", "2", "--size", "32", "--repeats", "1", "--warmup", "0", "--tiny"] if args.dry_run
                else ["--batch", "8", "--size", "128"])
    a.commands.append([*py, str(bench / "bench_mfr.py"), "--device", "cpu" if args.dry_run else "cuda", *mfr_size,
                       "--modes", "clip-only,clip+prefix,default", "--fuse", "on", "--amp",
                       "--rows-out", str(scratch / "a_mfr.jsonl")])
    if compile_models:
        compiled = [*py, str(bench / "bench_train_step.py"), *device, *small, "--models", compile_models, "--no-save",
                    "--repeats", "1" if args.dry_run else str(args.repeats), "--warmup", "2" if args.dry_run else "4"]
        a.commands.append([*compiled, *fastest, "--compile", "--mfr-compile", "--rows-out", str(scratch / "a2.jsonl")])
        if not args.dry_run:  # CUDA graphs (reduce-overhead): the launch-bound teacher is where they should pay
            a.commands.append([*compiled, *fastest, "--compile", "--mfr-compile", "--compile-mode", "reduce-overhead",
                               "--rows-out", str(scratch / "a2g.jsonl")])
    a.commands.append([*common_a, *fastest, "--rows-out", str(scratch / "a3.jsonl")])
    parts["a"] = a

    b = Part("b", "inference")
    sizes = "48x40,37x29" if args.dry_run else "600x400,3840x2160"
    b_timing = ["--repeats", "1", "--warmup", "0"] if args.dry_run else ["--repeats", "5", "--warmup", "2"]
    # The shipped default first (as enhance loads it: its full-resolution transform on 4K photos), then the zoo.
    b_models = "default,iat" if args.dry_run else "default," + models.replace("retinexformer,iat", "iat,retinexformer")
    for i, amp in enumerate(("none", "bf16")):
        b.commands.append([*py, str(bench / "bench_inference.py"), *device, *b_timing, "--models", b_models,
                           "--sizes", sizes, "--tile", "none", "--amp", amp, "--no-save",
                           "--rows-out", str(scratch / f"b{i + 1}.jsonl")])
    parts["b"] = b

    c = Part("c", "time_to_quality")
    points = "0.01,0.02" if args.dry_run else args.points
    tiny = ["--teacher", "tiny", "stages.0.batch_size=2", "stages.0.patch_size=32", "stages.1.batch_size=2",
            "stages.1.patch_size=32", "data.num_workers=0"] if args.dry_run else ["--teacher", "full"]
    c.commands.append([*py, str(bench / "bench_time_to_quality.py"), str(args.recipe), *device, "--data-root",
                       str(data_root / "lol-v1"), "--train-split", "train80", "--test-split", "eval15", "--points",
                       points, "--variants", "baseline,mfr", *tiny, "--no-save", "--rows-out", str(scratch / "c.jsonl")])
    parts["c"] = c

    d = Part("d", "default_model")
    overrides = [f"data.root={data_root / 'lol-v1'}", "data.train_split=train80", "data.test_split=eval15",
                 f"train.device={'cpu' if args.dry_run else 'cuda'}"]
    budget = ["--max-minutes", "MINUTES"]
    if args.dry_run:
        overrides += [*tiny[2:], "train.val_every=2", "train.ckpt_every=2"]
        budget += ["--max-iters", "4"]
    d.commands.append([*py, "-m", "lumicap", "train", str(args.recipe), *overrides, "--output-dir",
                       str(scratch / "runs"), "--no-progress", *budget])
    parts["d"] = d

    e = Part("e", "vs_official")
    vs = [*py, str(bench / "bench_vs_official.py"), *device, "--no-save", "--rows-out", str(scratch / "e.jsonl")]
    if args.dry_run and not (OFFICIAL_ROOT / "iat").is_dir():
        stand_in = scratch / "official_iat_stand_in.py"
        stand_in.write_text(OFFICIAL_STAND_IN)
        vs += ["--model", "iat", "--official", str(stand_in), "--official-class", "Official", "--official-kwargs",
               '{"type": "lol"}']
    else:
        vs += ["--official-root", str(OFFICIAL_ROOT)] + (["--models", "iat"] if args.dry_run else [])
    vs += ["--batch", "1", "--patch", "32", "--size", "48x32", "--rounds", "1"] if args.dry_run else ["--rounds", "10"]
    e.commands.append(vs)
    parts["e"] = e

    f = Part("f", "mfr_overhead")
    f_size = (["--tiny", "--batch", "2", "--size", "32", "--repeats", "1", "--warmup", "0"] if args.dry_run
              else ["--batch", "8", "--size", "128", "--repeats", "20", "--warmup", "5"])
    f.commands.append([*py, str(bench / "bench_mfr.py"), "--device", "cpu" if args.dry_run else "cuda", *f_size,
                       "--modes", "default", "--fuse", "both", "--graph", "both", "--teacher-dtype", "fp32,bf16",
                       "--rows-out", str(scratch / "f.jsonl")])
    parts["f"] = f
    return [parts[k] for k in PART_ORDER if k in args.parts]


def finish_default_model(scratch: Path, out_dir: Path, stamp: str) -> list[dict[str, Any]]:
    """Part d's artifacts: the selected checkpoint and the test summary, copied next to the results."""
    summaries = sorted((scratch / "runs").rglob("summary.json"))
    bests = sorted((scratch / "runs").rglob("best.pt"))
    rows: list[dict[str, Any]] = []
    if bests:
        dest = out_dir / f"default_model_best_{stamp}.pt"
        shutil.copyfile(bests[-1], dest)
        rows.append({"artifact": dest.name})
    runs = sorted((scratch / "runs").rglob("run.json"))
    if summaries:
        summary = json.loads(summaries[-1].read_text())
        dest = out_dir / f"default_model_summary_{stamp}.json"
        record = {"summary": summary, "run": json.loads(runs[-1].read_text()) if runs else None}
        dest.write_text(json.dumps(record, indent=2) + "\n")
        rows.append({"artifact": dest.name, "psnr": summary.get("psnr"), "ssim": summary.get("ssim"),
                     "selected": summary.get("selected"), "iteration": summary.get("iteration")})
    elif runs:
        rows.append({"run": json.loads(runs[-1].read_text())})
    return rows


def summarize(part: Part) -> str:
    ok = [r for r in part.rows if not r.get("error")]
    if part.key == "a":
        terms = {(r["mode"], r["amp"]): r["iter_ms"] for r in ok if "iter_ms" in r}
        ok = [r for r in ok if "model" in r]
        def key(r):
            return (r["model"], r["options"])

        base = {key(r): r["ms"] for r in ok if r.get("mfr") == "no"}
        text = []
        for r in ok:
            if r.get("mfr") == "no":
                text.append(f"{r['model']} {r['options']}: {r['ms']:.1f} ms")
            elif base.get(key(r)):
                text.append(f"+MFR {r['ms'] / base[key(r)]:.2f}x")
        if terms:
            text.append("MFR terms (fused, fp32): " + ", ".join(
                f"{mode} {ms:.1f} ms" for (mode, amp), ms in terms.items() if amp == "none"))
        return "; ".join(text)[:900] or "no rows"
    if part.key == "b":
        return "; ".join(f"{r['model']} {r['size']} {r['amp']} {r['ms']:.1f} ms {r['peak_mib']:.0f} MiB" for r in ok)[:900] or "no rows"
    if part.key == "e":
        return "; ".join(f"{r['model']} {r['measure'].split(',')[0]} {r['ratio']:.2f}x" for r in ok)[:900] or "no rows"
    if part.key == "f":
        return "; ".join(
            f"{'fused' if r['fused'] else 'separate'} {'graph' if r['graph'] else 'eager'} {r['teacher_dtype']} "
            f"{r['iter_ms']:.1f} ms" for r in ok if r.get("iter_ms") is not None)[:900] or "no rows"
    if part.key == "c":
        return "; ".join(f"{r['variant']} {r['minutes']:g} min {r['iterations']} it {r['psnr']:.2f}/{r['ssim']:.3f}" for r in ok) or "no rows"
    for r in part.rows:
        if r.get("psnr") is not None:
            sel = r.get("selected") or {}
            return f"eval15 {r['psnr']:.3f} dB / {r['ssim']:.4f}, best val @ {sel.get('iteration')} of {r.get('iteration')}"
    return "no result"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder holding lol-v1/{train80,eval15} (default: .campaign/data, else ../shared/data)")
    parser.add_argument("--minutes", type=float, default=9.3,
                        help="wall-clock budget of all parts (default 9.3: one 10-minute device call with the install)")
    parser.add_argument("--parts", default=PART_ORDER, help="which parts, e.g. ab (default: all, run in the order abefcd)")
    parser.add_argument("--models", default="all", help="comma list for parts a and b (default: all 8)")
    parser.add_argument("--compile-models", default=None,
                        help="models also timed compiled in part a (default: retinexformer; none in --dry-run)")
    parser.add_argument("--repeats", type=int, default=6, help="timed steps per figure in part a (default 6)")
    parser.add_argument("--points", default="0.25,0.5,1", help="training minutes measured in part c")
    parser.add_argument("--recipe", default=str(DEFAULT_RECIPE), help="the recipe of parts c and d")
    parser.add_argument("--out-dir", default=str(_common.RESULTS_DIR), help="results folder (default: benchmarks/results)")
    parser.add_argument("--dry-run", action="store_true", help="every part on the CPU with tiny settings (seconds)")
    parser.add_argument("--pack", action="store_true", help="write .campaign/ (data as WebP, wheels) and exit")
    parser.add_argument("--no-wheels", action="store_true", help="with --pack: data only")
    parser.add_argument("--note", action="append", default=[], help="a line about the conditions, kept with the results")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.pack:
        pack(Path(args.data) if args.data else SHARED_DATA, PACK_DIR, wheels=not args.no_wheels)
        return 0
    if args.data and not (Path(args.data) / "lol-v1").is_dir():
        print(f"error: --data {args.data}: no lol-v1/ folder there (expected lol-v1/{{train80,eval15}}/{{low,high}})",
              file=sys.stderr)
        return 2
    started = time.monotonic()
    deadline = started + args.minutes * 60
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    import torch

    device = torch.device("cpu" if args.dry_run else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device; use --dry-run on a CPU machine", file=sys.stderr)
        return 2
    env = _common.environment(device)
    stamp = time.strftime("%Y-%m-%d_%H%M%S")
    log_path = out_dir / f"gpu_campaign_log_{stamp}{'_dry' if args.dry_run else ''}.txt"
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if args.dry_run:
        child_env.setdefault("OMP_NUM_THREADS", "1")
    print(_common.describe_environment(env), flush=True)
    with tempfile.TemporaryDirectory(prefix="lumicap-campaign-") as scratch_dir, open(log_path, "w") as log:
        scratch = Path(scratch_dir)
        if args.data:
            data = Path(args.data)
        elif args.dry_run:
            data = make_tiny_data(scratch)
        elif (PACK_DIR / "data").is_dir():
            data = PACK_DIR / "data"
        else:
            data = SHARED_DATA
        data = unpack_if_webp(data, scratch)
        parts = plan(args, data, scratch, out_dir)
        for index, part in enumerate(parts):
            now = time.monotonic()
            left = deadline - now
            # Shares are renormalised over the parts asked for (--parts ab gets all its minutes for a and b);
            # the last part (d when present) takes whatever is left.
            total_share = sum(SHARES[p.key] for p in parts)
            later = sum(SHARES[p.key] for p in parts[index + 1:]) / total_share * args.minutes * 60
            part.cap = max(0.0, min(SHARES[part.key] / total_share * args.minutes * 60, left - later))
            if index == len(parts) - 1:
                part.cap = max(0.0, left)
            part_end = now + part.cap
            print(f"part {part.key} ({part.name}): cap {part.cap:.0f} s", flush=True)
            for i, command in enumerate(part.commands):
                remaining = part_end - time.monotonic()
                if part.key == "d":
                    # leave time for start-up, the test split and the copy after training stops
                    minutes = max(0.05, (remaining - (20 if args.dry_run else 25)) / 60)
                    command = [str(round(minutes, 2)) if c == "MINUTES" else c for c in command]
                    cap = remaining
                else:
                    # the commands of a part share its cap; a later one keeps at least a fair slice
                    cap = remaining / (len(part.commands) - i) * (1.6 if i < len(part.commands) - 1 else 1.0)
                    cap = min(cap, remaining)
                part.status.append(run_child(command, cap, log, child_env))
                print(f"  {part.status[-1]}", flush=True)
            part.seconds = time.monotonic() - now
            if part.key == "d":
                part.rows = finish_default_model(scratch, out_dir, stamp)
            else:
                for path in sorted(scratch.glob(f"{part.key}*.jsonl")):
                    part.rows += read_rows(path, part=part.key, command=path.stem)
            print(f"  {summarize(part)}", flush=True)
    rows = [{"part": f"{p.key}. {p.name}", "what": f"{len(p.rows)} rows in {p.seconds:.0f} s of {p.cap:.0f} s cap "
             f"({'; '.join(p.status)})", "result": summarize(p)} for p in parts]
    settings = {k: v for k, v in vars(args).items() if k not in ("pack", "no_wheels", "note")}
    settings["total_seconds"] = time.monotonic() - started
    record_rows = [{**summary, "rows": part.rows, "commands": [" ".join(c) for c in part.commands]}
                   for summary, part in zip(rows, parts)]
    notes = [*args.note, f"total wall time {settings['total_seconds']:.0f} s of {args.minutes * 60:.0f} s budget",
             f"log: {log_path.name}"]
    print()
    print(_common.describe_environment(env))
    print(_common.markdown_table(SUMMARY_COLUMNS, rows))
    benchmark = BENCHMARK + ("_dry_run" if args.dry_run else "")
    json_path, md_path = _common.write_results(benchmark, env, settings, SUMMARY_COLUMNS, record_rows, out_dir, notes)
    md_path.write_text(md_path.read_text() + "\n" + detail_tables(parts) + "\n")
    print(f"results: {json_path} and {md_path.name}")
    return 0


def detail_tables(parts: list[Part]) -> str:
    """Each part's rows as their own markdown table (the columns of the benchmark that made them)."""
    import bench_inference
    import bench_time_to_quality
    import bench_train_step
    import bench_vs_official

    mfr_columns = [Column("mode", "MFR terms"), Column("amp", "amp"), Column("fused", "fused"), Column("batch", "batch"),
                   Column("size", "size"), Column("iter_ms", "fwd+bwd ms", "{:.1f}"), Column("reference_ms", "reference fwd ms", "{:.1f}")]
    overhead_columns = [Column("fused", "fused"), Column("graph", "CUDA graph"), Column("teacher_dtype", "teacher"),
                        Column("batch", "batch"), Column("size", "size"), Column("iter_ms", "fwd+bwd ms", "{:.1f}"),
                        Column("reference_ms", "reference fwd ms", "{:.1f}"), Column("grad_rel", "grad error vs fp32", "{:.3f}"),
                        Column("error", "error")]
    columns = {"a": bench_train_step.COLUMNS, "b": bench_inference.COLUMNS, "c": bench_time_to_quality.COLUMNS,
               "e": bench_vs_official.COLUMNS + bench_vs_official.GPU_MEMORY_COLUMNS, "f": overhead_columns}
    text = []
    for part in parts:
        if part.key in columns and part.rows:
            rows = [r for r in part.rows if "iter_ms" not in r] if part.key != "f" else [
                {**r, "grad_rel": (r.get("precision_vs_fp32") or {}).get("grad_rel")} for r in part.rows]
            text += [f"## {part.key}. {part.name}", "", _common.markdown_table(columns[part.key], rows), ""]
            terms = [r for r in part.rows if "iter_ms" in r] if part.key == "a" else []
            if terms:
                text += ["### MFR cost by term (bench_mfr.py)", "", _common.markdown_table(mfr_columns, terms), ""]
        elif part.key == "d" and part.rows:
            text += [f"## d. {part.name}", "", "```", json.dumps(part.rows, indent=1, default=str), "```", ""]
    return "\n".join(text)


if __name__ == "__main__":
    sys.exit(main())
