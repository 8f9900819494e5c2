"""Shared pieces of the benchmark scripts: timing, peak memory, machine description, results files.

Timing convention (every figure the benchmarks print): ``warmup`` untimed calls, then ``repeats`` timed
calls, each bracketed by a CUDA synchronisation so the clock sees the GPU's work and not only the
launches; the figure is the median of the timed calls (robust to the odd slow call of a shared machine).

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (tensors only, not the allocator's cache or
the CUDA context) after a reset; on the CPU the process's peak resident set size (``VmHWM``), reset by
writing ``5`` to ``/proc/self/clear_refs`` where Linux allows it. The CPU figure therefore includes
everything resident in the process (Python, torch's libraries, a loaded teacher), not only the step.

Results: ``write_results`` writes ``<benchmark>_<device>_<YYYY-MM-DD>.json`` and ``.md`` under
``benchmarks/results/`` (or another folder); an existing file is never replaced: a later run the same day
gets ``_2``, ``_3``... The JSON holds the machine, the commit, the settings and every timed sample.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
RESULTS_FORMAT = "lumicap-benchmark"
DEFAULT_REPEATS = {"cuda": 20, "cpu": 3}
DEFAULT_WARMUP = {"cuda": 5, "cpu": 1}


# ------------------------------------------------------------------------------------------- arguments


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: CUDA when present")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per figure (default: 20 CUDA, 3 CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first (default: 5 CUDA, 1 CPU)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--out-dir", default=str(RESULTS_DIR), help="folder of the results files (default: %(default)s)")
    parser.add_argument("--no-save", action="store_true", help="print the table only, write no results file")
    parser.add_argument("--note", action="append", default=[], help="a line about the conditions, kept with the results (repeatable)")
    parser.add_argument("--rows-out", default=None, metavar="FILE.jsonl",
                        help="also append each row to this JSON-lines file as soon as it is measured "
                        "(gpu_campaign.py reads it, so a part stopped at its time cap keeps its finished rows)")


def resolve_device(name: str) -> torch.device:
    from lumicap.errors import LumicapError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise LumicapError("--device cuda: no CUDA device is available to this torch build")
    return torch.device(name)


def repeats_and_warmup(args: argparse.Namespace, device: torch.device) -> tuple[int, int]:
    repeats = args.repeats if args.repeats is not None else DEFAULT_REPEATS.get(device.type, 3)
    warmup = args.warmup if args.warmup is not None else DEFAULT_WARMUP.get(device.type, 1)
    if repeats < 1 or warmup < 0:
        from lumicap.errors import LumicapError

        raise LumicapError(f"--repeats must be at least 1 and --warmup at least 0, got {repeats} and {warmup}")
    return repeats, warmup


def parse_list(text: str | None, known: Sequence[str], what: str) -> list[str]:
    """Comma list checked against ``known``; None or ``all`` means all of them."""
    from lumicap.errors import LumicapError

    if text is None or text == "all":
        return list(known)
    items = [item.strip().lower().replace("-", "_") for item in text.split(",") if item.strip()]
    unknown = [item for item in items if item not in known]
    if unknown or not items:
        raise LumicapError(f"unknown {what} '{','.join(unknown) or text}'; known: {', '.join(known)}")
    return items


# ---------------------------------------------------------------------------------------------- timing


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Timing:
    samples_ms: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def min_ms(self) -> float:
        return min(self.samples_ms)


def time_function(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed with synchronisation around each."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        samples.append((time.perf_counter() - start) * 1000.0)
    return Timing(tuple(samples))


class PeakMemory:
    """``with PeakMemory(device) as peak: ...`` then ``peak.mib``: the peak over the block (see module doc)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.kind = "cuda max allocated" if device.type == "cuda" else "process peak RSS"
        self.mib: float | None = None

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            if not _reset_rss_peak():
                self.kind = "process peak RSS since start"
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self.mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self.mib = _rss_peak_mib()


def _reset_rss_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _rss_peak_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    except (ImportError, OSError):
        return None


def total_memory_gib() -> float:
    """The machine's physical memory (Linux /proc/meminfo; nan elsewhere)."""
    from lumicap.inference.memory import meminfo_bytes

    total = meminfo_bytes("MemTotal")
    return float("nan") if total is None else total / 2**30


def row_recorder(rows: list[dict[str, Any]], path: str | None) -> Callable[[dict[str, Any]], None]:
    """A function that keeps one finished row: appends it to ``rows`` and, with ``--rows-out`` (``path``),
    appends it to that file as a JSON line, flushed at once (gpu_campaign.py reads the file, so a part stopped
    at its time cap keeps its finished rows)."""

    def record(row: dict[str, Any]) -> None:
        rows.append(row)
        if path:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row, default=str) + "\n")

    return record


def one_line(exc: BaseException, limit: int = 160) -> str:
    """An exception as the one short line a results row keeps."""
    if is_out_of_memory(exc):
        return "out of memory"
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text[:limit]


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or "out of memory" in str(exc).lower()


def release_memory(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------- environment


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {model} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def git_commit(repo: Path = REPO_ROOT) -> tuple[str, bool | None]:
    """(commit sha, whether tracked files differ from it); ``("unknown", None)`` outside a git checkout."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", None
    return sha, bool(status.strip())


def environment(device: torch.device) -> dict[str, Any]:
    commit, dirty = git_commit()
    env = {
        "device": device_name(device),
        "device_type": device.type,
        "commit": commit,
        "dirty": dirty,
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return env


def describe_environment(env: dict[str, Any]) -> str:
    commit = env["commit"][:10] + ("+dirty" if env.get("dirty") else "")
    cuda = f", CUDA {env['cuda']}" if env.get("cuda") else ""
    return f"{env['device']}, torch {env['torch']}{cuda}, commit {commit}, {env['date']}"


# ------------------------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    fmt: str = "{}"  # applied to present values; None/missing prints as "-"


def format_cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return fmt.format(value)


def markdown_table(columns: Sequence[Column], rows: Sequence[dict[str, Any]]) -> str:
    header = "| " + " | ".join(c.header for c in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    lines = [header, rule]
    for row in rows:
        lines.append("| " + " | ".join(format_cell(row.get(c.key), c.fmt) for c in columns) + " |")
    return "\n".join(lines)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "device"


def results_stem(benchmark: str, env: dict[str, Any]) -> str:
    device = env["device"]
    if env["device_type"] == "cpu":
        device = "cpu"  # the CPU model string is long and says little; the JSON keeps it
    return f"{benchmark}_{_slug(device)}_{env['date'][:10]}"


def write_results(
    benchmark: str,
    env: dict[str, Any],
    settings: dict[str, Any],
    columns: Sequence[Column],
    rows: Sequence[dict[str, Any]],
    out_dir: str | os.PathLike = RESULTS_DIR,
    notes: Sequence[str] = (),
) -> tuple[Path, Path]:
    """Write the JSON record and the markdown table; never replaces an existing file. Returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = results_stem(benchmark, env)
    candidate, n = stem, 1
    while (out_dir / f"{candidate}.json").exists() or (out_dir / f"{candidate}.md").exists():
        n += 1
        candidate = f"{stem}_{n}"
    json_path, md_path = out_dir / f"{candidate}.json", out_dir / f"{candidate}.md"
    record = {
        "format": RESULTS_FORMAT,
        "version": 1,
        "benchmark": benchmark,
        "environment": env,
        "settings": settings,
        "columns": [{"key": c.key, "header": c.header} for c in columns],
        "rows": list(rows),
        "notes": list(notes),
    }
    # "x" mode: a file that appeared since the check above is an error, not silently replaced.
    with open(json_path, "x") as handle:
        handle.write(json.dumps(record, indent=2) + "\n")
    text = [f"# {benchmark}", "", describe_environment(env), ""]
    text += [markdown_table(columns, rows), ""]
    text += [f"- {note}" for note in notes]
    with open(md_path, "x") as handle:
        handle.write("\n".join(text).rstrip() + "\n")
    return json_path, md_path


def run_or_exit(run: Callable[[argparse.Namespace], Any], args: argparse.Namespace) -> Any:
    """``run(args)`` of a benchmark; a LumicapError (unknown model, missing file) is one line and exit code 2."""
    from lumicap.errors import LumicapError

    try:
        return run(args)
    except LumicapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def report(
    benchmark: str,
    args: argparse.Namespace,
    env: dict[str, Any],
    settings: dict[str, Any],
    columns: Sequence[Column],
    rows: Sequence[dict[str, Any]],
    notes: Sequence[str] = (),
) -> tuple[Path, Path] | None:
    """Print the final table (markdown, ready for the README) and write the results files unless ``--no-save``."""
    notes = [*getattr(args, "note", []), *notes]
    print()
    print(describe_environment(env))
    print(markdown_table(columns, rows))
    for note in notes:
        print(f"- {note}")
    if args.no_save:
        return None
    paths = write_results(benchmark, env, settings, columns, rows, args.out_dir, notes)
    print(f"results: {paths[0]} and {paths[1].name}")
    return paths
