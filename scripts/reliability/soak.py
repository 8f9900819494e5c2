"""Stop-and-resume soak: interrupt ``lumicap train`` again and again, resume it, compare with an unbroken run.

    report = run_soak(SoakSettings(work_dir=Path("soak"), stops=20))
    print(report.text())

What it does:

1. writes a small paired dataset (smooth random scenes, dark copies with noise), a tiny random ClipCap
   teacher (``save_tiny_teacher``) and a config with MFR on, EMA, mixup and a warm-up cosine schedule,
   so everything a checkpoint must carry is exercised;
2. trains the config once without interruption (the reference);
3. trains it again, interrupting it ``stops`` times and continuing with ``lumicap train --resume RUN_DIR``
   after each. Six kinds of interruption (``STOP_KINDS``):

   - SIGKILL to the process group (a pre-empted node, an OOM kill): during start-up (before or while the
     run folder and checkpoint are read), inside a checkpoint write (the harness waits for the temporary
     checkpoint file to appear; the child slows its checkpoint writes so that the window is wide, see
     ``soak_child``), or at a random moment between two checkpoints;
   - the stops lumicap handles itself, which must end the process cleanly (exit 0) with a checkpoint:
     SIGTERM (a scheduler) and SIGINT (Ctrl-C) at a random moment between checkpoints, and ``--max-iters N``
     with N a few iterations past the last checkpoint, often off the validation schedule;
4. after every interruption, loads ``last.pt`` and ``best.pt`` with the engine's own loader and counts
   those that do not load (corrupt), and checks ``run.json``/``config.yaml`` still read;
5. at the end compares with the reference: the final ``last.pt`` (model, EMA, optimizer state, iteration,
   best), ``best.pt`` (weights, selected iteration and value), the iterations validated, the test figures
   and the selection the test results record. A stop must change none of them.

Every process runs through ``python -m reliability.soak_child`` (one CPU thread each).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from reliability.soak_child import CHUNKS_ENV, DELAY_ENV

KILL_KINDS = ("startup", "mid-write", "between")  # SIGKILL to the process group
SIGNAL_KINDS = {"sigterm": signal.SIGTERM, "sigint": signal.SIGINT}  # stops lumicap handles: exit 0
STOP_KINDS = KILL_KINDS + ("sigterm", "sigint", "max-iters")


@dataclass
class SoakSettings:
    work_dir: Path
    stops: int = 20
    iterations: int = 60
    ckpt_every: int = 2
    val_every: int = 4
    model: str = "iat"
    patch_size: int = 32
    batch_size: int = 2
    mfr: bool = True
    seed: int = 0  # the training seed (both runs)
    kill_seed: int = 0  # the harness's draws of stop kinds and moments
    write_chunks: int = 8  # slowed checkpoint writes in the child (see soak_child)
    write_delay_ms: float = 15.0
    train_pairs: int = 8
    test_pairs: int = 2
    image_size: int = 48
    data_root: Path | None = None  # train on this dataset instead of generated pairs
    data_layout: str = "auto"
    train_split: str = "train"
    test_split: str = "test"
    process_timeout_s: float = 900.0
    # startup, mid-write, between (SIGKILL); sigterm, sigint, max-iters (handled stops)
    kind_weights: tuple[float, ...] = (0.10, 0.25, 0.20, 0.15, 0.15, 0.15)
    kind_sequence: tuple[str, ...] | None = None  # fixed kinds, cycled (the short test covers each once)


@dataclass
class StopRecord:
    kind: str
    invocation: int
    seconds_after_start: float
    iteration_before: int  # the checkpointed iteration when this invocation started
    mid_write: bool  # a temporary checkpoint file was left behind: the kill hit a write
    exited_before_stop: bool = False
    exit_code: int | None = None  # of the stopped process (-9 for a SIGKILL)
    iteration_after: int | None = None  # the checkpointed iteration after it


@dataclass
class SoakReport:
    stops: int = 0
    stops_by_kind: dict[str, int] = field(default_factory=dict)
    mid_write_confirmed: int = 0
    clean_exits: int = 0  # SIGTERM/SIGINT/--max-iters stops that ended with exit code 0
    resumes: int = 0
    fresh_restarts: int = 0  # stopped before the run folder could be resumed: started anew
    invocations: int = 0
    checkpoints_checked: int = 0
    corrupt_checkpoints: list[str] = field(default_factory=list)
    unreadable_records: list[str] = field(default_factory=list)  # run.json / config.yaml
    failed_invocations: list[str] = field(default_factory=list)  # non-zero exit not caused by a kill
    partial_writes_left: list[str] = field(default_factory=list)  # temporary files a kill left (not checkpoints)
    stale_temp_files: list[str] = field(default_factory=list)  # those still there at the end
    unreadable_log_lines: int = 0
    final_iteration: int | None = None
    reference_iteration: int | None = None
    max_weight_difference: float | None = None  # over model, EMA, optimizer and best.pt tensors
    differences: dict[str, float] = field(default_factory=dict)
    identical: bool = False
    best: dict = field(default_factory=dict)  # best.pt's selection: metric, value, iteration
    reference_best: dict = field(default_factory=dict)
    validated: list[int] = field(default_factory=list)  # iterations validated (each once, kills replay some)
    reference_validated: list[int] = field(default_factory=list)
    selected: dict = field(default_factory=dict)  # what the final test results say was selected
    reference_selected: dict = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    reference_test_metrics: dict[str, float] = field(default_factory=dict)
    reference_seconds: float = 0.0
    soak_seconds: float = 0.0
    run_dir: str = ""
    reference_dir: str = ""
    stop_log: list[StopRecord] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.identical
            and not self.corrupt_checkpoints
            and not self.failed_invocations
            and not self.unreadable_records
            and self.final_iteration == self.reference_iteration
        )

    def text(self) -> str:
        kinds = ", ".join(f"{self.stops_by_kind.get(k, 0)} {k}" for k in STOP_KINDS)
        diff = "n/a" if self.max_weight_difference is None else f"{self.max_weight_difference:.3g}"
        parts = ", ".join(f"{k} {v:.3g}" for k, v in self.differences.items())
        handled = sum(self.stops_by_kind.get(k, 0) for k in STOP_KINDS if k not in KILL_KINDS)
        lines = [
            f"stops: {self.stops} ({kinds}; {self.mid_write_confirmed} kills confirmed inside a checkpoint write; "
            f"{self.clean_exits} of {handled} handled stops exited cleanly)",
            f"resumes: {self.resumes} (lumicap train --resume), fresh restarts: {self.fresh_restarts}, "
            f"invocations: {self.invocations}",
            f"corrupt checkpoints found: {len(self.corrupt_checkpoints)} (of {self.checkpoints_checked} loads after stops)",
            f"unreadable run records: {len(self.unreadable_records)}, failed invocations: {len(self.failed_invocations)}, "
            f"unreadable log.jsonl lines: {self.unreadable_log_lines}",
            f"half-written temporary files left by kills: {len(self.partial_writes_left)} "
            f"(still there at the end: {len(self.stale_temp_files)})",
            f"final iteration: {self.final_iteration} (uninterrupted run: {self.reference_iteration})",
            f"validated at: {_fmt_iters(self.validated)} (uninterrupted: {_fmt_iters(self.reference_validated)})",
            f"best.pt: {_fmt_best(self.best)} (uninterrupted: {_fmt_best(self.reference_best)})",
            f"test results selected: {_fmt_best(self.selected)} (uninterrupted: {_fmt_best(self.reference_selected)})",
            f"max weight difference vs uninterrupted run: {diff} ({parts}); identical: {'yes' if self.identical else 'NO'}",
            f"test metrics: {_fmt_metrics(self.test_metrics)} (uninterrupted: {_fmt_metrics(self.reference_test_metrics)})",
            f"time: uninterrupted run {self.reference_seconds:.0f} s, soak {self.soak_seconds:.0f} s",
        ]
        for item in self.corrupt_checkpoints + self.unreadable_records + self.failed_invocations:
            lines.append(f"  problem: {item}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def _fmt_iters(iterations: list[int]) -> str:
    return ",".join(map(str, iterations)) or "none"


def _fmt_best(best: dict) -> str:
    if not best or best.get("iteration") is None:
        return "n/a"
    return f"iteration {best['iteration']} ({best.get('metric', '?')} {float(best['value']):.4f})"


def _fmt_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) or "n/a"


# ------------------------------------------------------------------------------------------- set-up
def make_dataset(root: Path, train_pairs: int, test_pairs: int, size: int, seed: int = 0) -> Path:
    """``root/{train,test}/{low,high}/N.png``: smooth random scenes and their dark, noisy copies."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, count in (("train", train_pairs), ("test", test_pairs)):
        for side in ("low", "high"):
            (root / split / side).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            coarse = (rng.random((4, 4, 3)) * 255).astype(np.uint8)
            high = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), dtype=np.float64)
            low = high * rng.uniform(0.08, 0.25) + rng.normal(0, 2.0, high.shape)
            Image.fromarray(high.clip(0, 255).astype(np.uint8)).save(root / split / "high" / f"{index}.png")
            Image.fromarray(low.clip(0, 255).astype(np.uint8)).save(root / split / "low" / f"{index}.png")
    return root


def write_config(settings: SoakSettings, data_root: Path, teacher: Path | None, path: Path) -> Path:
    import yaml

    warmup = max(1, settings.iterations // 10)
    config = {
        "name": "soak",
        "model": {"name": settings.model},
        "data": {
            "root": str(data_root),
            "layout": settings.data_layout if settings.data_root else "folders",
            "train_split": settings.train_split,
            "test_split": settings.test_split,
            "num_workers": 0,
            "val_fraction": 0.2,
        },
        "stages": [
            {
                "name": "main",
                "iterations": settings.iterations,
                "batch_size": settings.batch_size,
                "patch_size": settings.patch_size,
                "losses": {"l1": 1.0},
                "optimizer": {"name": "adamw", "lr": 4e-4, "weight_decay": 1e-4},
                "scheduler": {"name": "cosine", "warmup_iters": warmup, "eta_min": 1e-6},
                "mixup": True,
            }
        ],
        "train": {
            "seed": settings.seed,
            "val_every": settings.val_every,
            "ckpt_every": settings.ckpt_every,
            "log_every": settings.ckpt_every,
            "ema_decay": 0.9,
            "grad_clip": 1.0,
            "device": "cpu",
        },
    }
    if settings.mfr:
        config["mfr"] = {"enabled": True, "teacher": str(teacher), "weights": [0.1, 0.1, 0.1]}
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _child_env(settings: SoakSettings) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        CHUNKS_ENV: str(settings.write_chunks),
        DELAY_ENV: str(settings.write_delay_ms),
    })
    # The child must import this checkout of lumicap (even when it is not installed) and this harness.
    scripts_dir = Path(__file__).resolve().parents[1]
    paths = [str(scripts_dir.parent), str(scripts_dir)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _spawn(args: list[str], settings: SoakSettings, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "ab")
    try:
        # A session of its own: the kill reaches the whole process group (as a pre-empted node would).
        return subprocess.Popen(
            [sys.executable, "-m", "reliability.soak_child", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_env(settings),
            start_new_session=True,
        )
    finally:
        log.close()


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


# --------------------------------------------------------------------------------------- observing
def _find_run_dir(output_dir: Path) -> Path | None:
    """The run folder under ``output_dir`` that holds ``run.json`` and ``config.yaml`` (newest first)."""
    runs = sorted(
        (p.parent for p in output_dir.glob("soak/*/seed*/run.json") if (p.parent / "config.yaml").is_file()),
        key=lambda p: p.stat().st_mtime,
    )
    return runs[-1] if runs else None


def _temp_files(run_dir: Path | None) -> set[str]:
    if run_dir is None:
        return set()
    names = set()
    for folder in (run_dir, run_dir / "checkpoints"):
        if folder.is_dir():
            names |= {str(folder / n) for n in os.listdir(folder) if ".tmp-" in n or n.endswith(".part")}
    return names


def _is_checkpoint_temp(name: str, pid: int) -> bool:
    """A temporary checkpoint file process ``pid`` is writing (``lumicap.files``' naming, or lumicap <= 0.1's)."""
    from lumicap.files import PARTIAL_FILE

    match = PARTIAL_FILE.match(name)
    if match is not None:
        return int(match.group(1)) == pid and ".pt.lumicap-" in name
    return name.endswith(f".pt.tmp-{pid}")


def _ckpt_temp_names(output_dir: Path, pid: int) -> list[Path]:
    return [p for p in output_dir.glob("soak/*/seed*/checkpoints/.*") if _is_checkpoint_temp(p.name, pid)]


def _last_signature(output_dir: Path) -> tuple | None:
    files = list(output_dir.glob("soak/*/seed*/checkpoints/last.pt"))
    if not files:
        return None
    try:
        st = files[0].stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _checkpointed_iteration(run_dir: Path | None) -> int:
    if run_dir is None:
        return 0
    try:
        return int(json.loads((run_dir / "run.json").read_text(encoding="utf-8")).get("iteration", 0))
    except (OSError, ValueError):
        return -1


def _wait_trigger(proc: subprocess.Popen, predicate, poll_s: float = 0.002) -> bool:
    """Poll until ``predicate()`` is true (True) or the process exits (False)."""
    while proc.poll() is None:
        if predicate():
            return True
        time.sleep(poll_s)
    return False


def _sleep_while_alive(proc: subprocess.Popen, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while proc.poll() is None:
        left = end - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, 0.005))
    return False


# ---------------------------------------------------------------------------------------- checking
def check_run_folder(run_dir: Path, report: SoakReport) -> None:
    """Load what a resume will load; count checkpoints and records that do not."""
    from lumicap.config import load_config
    from lumicap.engine.checkpoint import load_checkpoint
    from lumicap.engine.rundir import read_run_info
    from lumicap.errors import LumicapError

    for name in ("last.pt", "best.pt"):
        path = run_dir / "checkpoints" / name
        if not path.exists():
            continue
        report.checkpoints_checked += 1
        try:
            load_checkpoint(path)
        except LumicapError as exc:
            report.corrupt_checkpoints.append(f"{path}: {exc}")
    try:
        read_run_info(run_dir)
        load_config(run_dir / "config.yaml")
    except LumicapError as exc:
        report.unreadable_records.append(str(exc))


def _count_bad_log_lines(run_dir: Path) -> int:
    path = run_dir / "log.jsonl"
    if not path.is_file():
        return 0
    bad = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            json.loads(line)
        except ValueError:
            bad += 1
    return bad


def compare_runs(run_dir: Path, reference_dir: Path, report: SoakReport) -> None:
    """Largest absolute difference of every tensor the two final checkpoints hold."""
    import torch

    from lumicap.engine.checkpoint import load_checkpoint

    soak = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    ref = load_checkpoint(reference_dir / "checkpoints" / "last.pt")
    report.final_iteration = int(soak["iteration"])
    report.reference_iteration = int(ref["iteration"])
    identical = soak["best"] == ref["best"] and report.final_iteration == report.reference_iteration

    def walk(a, b, where: str, out: dict[str, float]) -> bool:
        same = True
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            if a.shape != b.shape or a.dtype != b.dtype:
                out[where] = float("inf")
                return False
            if a.is_floating_point():
                diff = float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
            else:
                diff = float((a.long() - b.long()).abs().max()) if a.numel() else 0.0
            out[where] = max(out.get(where, 0.0), diff)
            return bool(torch.equal(a, b))
        if isinstance(a, dict) and isinstance(b, dict):
            if set(a) != set(b):
                out[where] = float("inf")
                return False
            for key in a:
                same &= walk(a[key], b[key], where, out)
            return same
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            if len(a) != len(b):
                out[where] = float("inf")
                return False
            for x, y in zip(a, b):
                same &= walk(x, y, where, out)
            return same
        return a == b

    diffs: dict[str, float] = {}
    for key in ("model", "ema", "optimizer", "scheduler"):
        diffs.setdefault(key, 0.0)
        identical &= walk(soak.get(key), ref.get(key), key, diffs)
    soak_best = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    ref_best = load_checkpoint(reference_dir / "checkpoints" / "best.pt")
    diffs["best.pt"] = 0.0
    identical &= walk(soak_best["model"], ref_best["model"], "best.pt", diffs)
    report.best = {**soak_best["best"], "checkpoint_iteration": int(soak_best["iteration"])}
    report.reference_best = {**ref_best["best"], "checkpoint_iteration": int(ref_best["iteration"])}
    report.validated, report.reference_validated = _validated_iterations(run_dir), _validated_iterations(reference_dir)
    report.differences = diffs
    report.max_weight_difference = max(diffs.values())
    report.test_metrics, report.selected = _test_results(run_dir)
    report.reference_test_metrics, report.reference_selected = _test_results(reference_dir)
    report.identical = (
        bool(identical)
        and report.best == report.reference_best
        and report.validated == report.reference_validated
        and report.selected == report.reference_selected
        and bool(report.test_metrics)
        and report.test_metrics == report.reference_test_metrics
    )


def _validated_iterations(run_dir: Path) -> list[int]:
    """Every iteration log.jsonl records a validation at, once (a kill makes a resume repeat some)."""
    found = set()
    for line in (run_dir / "log.jsonl").read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("kind") == "val":
            found.add(int(record["iter"]))
    return sorted(found)


def _test_results(run_dir: Path) -> tuple[dict[str, float], dict]:
    """The final test figures (every metric) and the selection they record."""
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    results = info.get("results")
    if not results:
        return {}, {}
    summary = json.loads((run_dir / results / "summary.json").read_text(encoding="utf-8"))
    metrics = {k: float(v) for k, v in summary.items() if k not in ("count", "iteration") and isinstance(v, (int, float, str))
               and not isinstance(v, bool) and _is_number(v)}
    return metrics, dict(summary.get("selected") or {})


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


# -------------------------------------------------------------------------------------------- runs
def _run_to_end(args: list[str], settings: SoakSettings, log_path: Path, output_dir: Path) -> tuple[int, float, float]:
    """Run to the end; returns (exit code, seconds, seconds until training started: log.jsonl appeared)."""
    start = time.monotonic()
    proc = _spawn(args, settings, log_path)
    _wait_trigger(proc, lambda: any(output_dir.glob("soak/*/seed*/log.jsonl")), poll_s=0.05)
    startup = time.monotonic() - start
    try:
        rc = proc.wait(timeout=settings.process_timeout_s)
    except subprocess.TimeoutExpired:
        _kill(proc)
        rc = -9
    return rc, time.monotonic() - start, startup


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def run_soak(settings: SoakSettings, progress=print) -> SoakReport:
    from lumicap.teacher import save_tiny_teacher

    work = Path(settings.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    report = SoakReport()
    rng = random.Random(settings.kill_seed)

    data_root = settings.data_root or make_dataset(
        work / "data", settings.train_pairs, settings.test_pairs, settings.image_size, seed=settings.seed
    )
    teacher = save_tiny_teacher(work / "teacher") if settings.mfr else None
    config = write_config(settings, Path(data_root), teacher, work / "soak.yaml")

    # 1. The uninterrupted reference run; also measures start-up and iteration time for the stop draws.
    ref_out = work / "reference"
    progress(f"soak: uninterrupted reference run ({settings.iterations} iterations) ...")
    rc, seconds, startup = _run_to_end(
        ["train", str(config), "--output-dir", str(ref_out), "--no-progress"], settings, work / "reference.log", ref_out
    )
    report.reference_seconds = seconds
    ref_dir = _find_run_dir(ref_out)
    if rc != 0 or ref_dir is None:
        report.failed_invocations.append(f"reference run exited with {rc}: {_tail(work / 'reference.log')}")
        return report
    report.reference_dir = str(ref_dir)
    ref_info = json.loads((ref_dir / "run.json").read_text(encoding="utf-8"))
    seconds_per_iter = max(0.005, float(ref_info.get("ms_per_iter") or 100.0) / 1000.0)
    progress(f"soak: reference done in {seconds:.0f} s (start-up ~{startup:.1f} s, {1000 * seconds_per_iter:.0f} ms/iter)")

    # 2. The soak: stop, check, resume; after the last stop, let it finish.
    out = work / "soak"
    log_path = work / "soak.log"
    started = time.monotonic()
    run_dir: Path | None = None
    seen_temps: set[str] = set()
    while True:
        run_dir = _find_run_dir(out)
        if run_dir is None:
            args = ["train", str(config), "--output-dir", str(out), "--no-progress"]
            if report.invocations:
                report.fresh_restarts += 1
        else:
            args = ["train", "--resume", str(run_dir), "--no-progress"]
            report.resumes += 1
        iteration_before = _checkpointed_iteration(run_dir)
        report.invocations += 1
        if report.stops >= settings.stops:
            proc = _spawn(args, settings, log_path)
            try:
                rc = proc.wait(timeout=settings.process_timeout_s)
            except subprocess.TimeoutExpired:
                _kill(proc)
                rc = -9
            if rc != 0:
                report.failed_invocations.append(f"final invocation exited with {rc}: {_tail(log_path)}")
            break

        if settings.kind_sequence:
            kind = settings.kind_sequence[report.stops % len(settings.kind_sequence)]
        else:
            kind = rng.choices(STOP_KINDS, weights=settings.kind_weights)[0]
        if kind == "max-iters":
            # A few iterations past the last checkpoint: on and off the checkpoint and validation schedules.
            target = max(iteration_before, 0) + rng.randint(1, 2 * settings.val_every)
            if target >= settings.iterations:
                target = settings.iterations - 1
            args += ["--max-iters", str(target)]
        t0 = time.monotonic()
        proc = _spawn(args, settings, log_path)
        if kind == "max-iters":
            stopped = True
            try:
                proc.wait(timeout=settings.process_timeout_s)
            except subprocess.TimeoutExpired:
                _kill(proc)
        else:
            stopped = _arm_and_wait(kind, proc, out, settings, rng, startup, seconds_per_iter)
            if stopped and kind in SIGNAL_KINDS:
                _signal(proc, SIGNAL_KINDS[kind])
                try:
                    proc.wait(timeout=settings.process_timeout_s)
                except subprocess.TimeoutExpired:
                    _kill(proc)
            elif stopped:
                _kill(proc)
        if stopped:
            elapsed = time.monotonic() - t0
            run_dir = _find_run_dir(out)
            temps = _temp_files(run_dir) - seen_temps
            mid_write = any(_is_checkpoint_temp(Path(t).name, proc.pid) for t in temps)
            seen_temps |= temps
            rc = proc.returncode
            report.partial_writes_left.extend(sorted(temps))
            report.stops += 1
            report.stops_by_kind[kind] = report.stops_by_kind.get(kind, 0) + 1
            report.mid_write_confirmed += int(mid_write and kind in KILL_KINDS)
            if kind not in KILL_KINDS:
                # A handled stop ends the process itself, with a checkpoint and exit code 0.
                status = _run_status(run_dir)
                if rc == 0 and status in ("stopped", "complete"):
                    report.clean_exits += 1
                elif kind in SIGNAL_KINDS and status == "complete":
                    pass  # the signal came after the training loop had ended (during the final test): a kill
                else:
                    report.failed_invocations.append(
                        f"{kind} stop of invocation {report.invocations}: exit {rc}, run status {status!r}: {_tail(log_path)}"
                    )
            record = StopRecord(kind, report.invocations, round(elapsed, 3), iteration_before, mid_write, False, rc,
                                _checkpointed_iteration(run_dir))
            report.stop_log.append(record)
            if run_dir is not None:
                check_run_folder(run_dir, report)
            progress(
                f"soak: stop {report.stops}/{settings.stops} ({kind}{', inside a checkpoint write' if mid_write else ''}) "
                f"after {elapsed:.2f} s, exit {rc}; checkpointed iteration {record.iteration_after}"
            )
            if report.failed_invocations:
                break
            if _run_status(run_dir) == "complete" and _has_results(run_dir):
                progress("soak: the run completed before the planned stops were all made (raise --iterations)")
                break
            continue
        # The process ended before the stop: it must have finished cleanly (the run may be complete).
        rc = proc.returncode
        if rc != 0:
            report.failed_invocations.append(f"invocation {report.invocations} exited with {rc}: {_tail(log_path)}")
            break
        report.stop_log.append(StopRecord(kind, report.invocations, round(time.monotonic() - t0, 3), iteration_before,
                                          False, True, rc, _checkpointed_iteration(run_dir)))
        if run_dir is not None and _run_status(run_dir) == "complete":
            progress("soak: the run completed before the planned stops were all made (raise --iterations)")
            break
    report.soak_seconds = time.monotonic() - started

    run_dir = _find_run_dir(out)
    if run_dir is None:
        report.failed_invocations.append("no run folder was ever created")
        return report
    report.run_dir = str(run_dir)
    report.stale_temp_files = sorted(_temp_files(run_dir))
    report.unreadable_log_lines = _count_bad_log_lines(run_dir)
    if not report.failed_invocations:
        compare_runs(run_dir, ref_dir, report)
    return report


def _has_results(run_dir: Path) -> bool:
    try:
        return bool(json.loads((run_dir / "run.json").read_text(encoding="utf-8")).get("results"))
    except (OSError, ValueError):
        return False


def _run_status(run_dir: Path | None) -> str | None:
    if run_dir is None:
        return None
    try:
        return json.loads((run_dir / "run.json").read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError):
        return None


def _signal(proc: subprocess.Popen, signum: int) -> None:
    """What a scheduler (SIGTERM) or a terminal's Ctrl-C (SIGINT) sends: the process group's leader."""
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        pass


def _arm_and_wait(kind, proc, out: Path, settings: SoakSettings, rng: random.Random, startup: float, per_iter: float) -> bool:
    """Wait for the moment to stop (True) or for the process to exit on its own (False)."""
    if kind == "startup":  # before training starts: imports, run folder, checkpoint and teacher loading
        return _sleep_while_alive(proc, rng.uniform(0.1, 1.0) * startup)
    if kind == "mid-write":
        # The k-th checkpoint write of this invocation (last.pt or best.pt), killed part-way through it.
        # One process reuses the same temporary name for every write: count appearances, not names.
        target = rng.randint(1, 3)
        present: set[Path] = set()
        appeared = [0]

        def write_started() -> bool:
            now = set(_ckpt_temp_names(out, proc.pid))
            appeared[0] += len(now - present)
            present.clear()
            present.update(now)
            return appeared[0] >= target

        if not _wait_trigger(proc, write_started):
            return False
        write_time = settings.write_chunks * settings.write_delay_ms / 1000.0
        return _sleep_while_alive(proc, rng.uniform(0.0, 0.8) * write_time)
    # between (and the signals): after the k-th completed last.pt of this invocation, at a random moment
    # before the next one. The training loop is running then, so a signal meets lumicap's own handler.
    target = rng.randint(1, 2)
    first = _last_signature(out)
    changes = [first]

    def checkpoint_done() -> bool:
        sig = _last_signature(out)
        if sig is not None and sig != changes[-1]:
            changes.append(sig)
        return len(changes) - 1 >= target

    if not _wait_trigger(proc, checkpoint_done):
        return False
    return _sleep_while_alive(proc, rng.uniform(0.0, (settings.ckpt_every + 1) * per_iter))
