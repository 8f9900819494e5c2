"""Run ``lumicap enhance`` and ``lumicap eval`` on fuzz files (``reliability.fuzzfiles``) and count outcomes.

Both commands run through ``lumicap.cli.main`` in this process with stdout/stderr captured, exactly as
the ``lumicap`` entry point runs them; an exception that escapes ``main`` is what a user would see as a
traceback.

- enhance: one run over the whole folder of fuzz files (a photo folder with junk in it). Per file:
  processed (its output exists, decodes, and has the picture's displayed size), rejected (a
  ``lumicap: error:`` line names it), or unaccounted. If the run dies with a traceback, every file is
  run on its own to find which ones cause it.
- eval: one run per file: the fuzz file as the prediction, a plain PNG of ``gt_size`` as its reference.
  Processed (exit 0, one image measured) or rejected (exit 2, one line naming the file).

Figures: files tried, processed, rejected with a one-line reason, tracebacks, good files lost, bad files
accepted, unaccounted, outputs of the wrong size.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

from reliability.fuzzfiles import FuzzCase, write_cases, write_reference


@dataclass
class FileOutcome:
    case: FuzzCase
    status: str  # processed | rejected | traceback | unaccounted
    detail: str = ""


@dataclass
class FuzzReport:
    command: str
    outcomes: list[FileOutcome] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)  # one entry per escaped exception or printed traceback
    multi_line_errors: list[str] = field(default_factory=list)
    wrong_size: list[str] = field(default_factory=list)
    permissions_note: str = ""
    eval_min_side: int = 11

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    def expected(self, case: FuzzCase) -> str:
        if self.command.startswith("eval") and case.kind == "mismatched_pair":
            return "bad"
        if self.command.startswith("eval") and case.expect == "good" and case.size and min(case.size) < self.eval_min_side:
            return "bad"  # SSIM's 11x11 window (LPIPS: 32x32) does not fit: refusing is the right answer
        return case.expect

    @property
    def good_lost(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if self.expected(o.case) == "good" and o.status != "processed"]

    @property
    def bad_accepted(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if self.expected(o.case) == "bad" and o.status == "processed"]

    @property
    def ok(self) -> bool:
        return not (
            self.tracebacks or self.good_lost or self.bad_accepted or self.count("unaccounted")
            or self.multi_line_errors or self.wrong_size
        )

    def summary(self) -> dict:
        return {
            "command": self.command,
            "files_tried": len(self.outcomes),
            "processed": self.count("processed"),
            "rejected_one_line": self.count("rejected"),
            "tracebacks": len(self.tracebacks),
            "good_files_lost": len(self.good_lost),
            "bad_files_accepted": len(self.bad_accepted),
            "unaccounted": self.count("unaccounted"),
            "multi_line_errors": len(self.multi_line_errors),
            "wrong_output_size": len(self.wrong_size),
        }

    def text(self) -> str:
        s = self.summary()
        lines = [
            f"lumicap {self.command}: {s['files_tried']} files tried, {s['processed']} processed, "
            f"{s['rejected_one_line']} rejected with a one-line reason, {s['tracebacks']} tracebacks, "
            f"{s['good_files_lost']} good files lost, {s['bad_files_accepted']} bad files accepted, "
            f"{s['unaccounted']} unaccounted, {s['wrong_output_size']} outputs of the wrong size",
        ]
        if self.permissions_note:
            lines.append(f"  note: {self.permissions_note}")
        for o in self.good_lost:
            lines.append(f"  good file lost: {o.case.filename} ({o.case.kind}): {o.detail}")
        for o in self.bad_accepted:
            lines.append(f"  bad file accepted: {o.case.filename} ({o.case.kind})")
        for o in self.outcomes:
            if o.status == "unaccounted":
                lines.append(f"  unaccounted: {o.case.filename} ({o.case.kind}): {o.detail}")
        for item in self.tracebacks + self.multi_line_errors + self.wrong_size:
            lines.append(f"  problem: {item}")
        return "\n".join(lines)

    def table(self) -> str:
        """One row per file: kind, expectation, outcome and the reason given."""
        rows = [f"{'#':>3}  {'kind':<26} {'expect':<6} {'outcome':<11} reason / note"]
        for o in self.outcomes:
            reason = o.detail or o.case.note
            rows.append(f"{o.case.index:>3}  {o.case.kind:<26} {self.expected(o.case):<6} {o.status:<11} {reason[:110]}")
        return "\n".join(rows)


def run_cli(argv: list[str]) -> tuple[int | None, str, str, str | None]:
    """``lumicap.cli.main(argv)`` in-process: (exit code, stdout, stderr, traceback text or None)."""
    from lumicap.cli import main

    out, err = io.StringIO(), io.StringIO()
    tb = None
    rc: int | None = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse errors
            rc = exc.code if isinstance(exc.code, int) else 2
        except Exception:
            tb = traceback.format_exc()
    return rc, out.getvalue(), err.getvalue(), tb


def _names(case: FuzzCase) -> tuple[str, ...]:
    """How a message may show the file's name: as it is, or escaped (a name holding a newline)."""
    from lumicap.errors import one_line

    return (case.filename, one_line(case.filename))


def _names_file(case: FuzzCase, line: str) -> bool:
    return any(name in line for name in _names(case))


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("lumicap: error:")]


def _permissions_note(cases: list[FuzzCase]) -> str:
    notes = {c.note for c in cases if c.kind == "unreadable_permissions"}
    return "; ".join(sorted(notes))


# ------------------------------------------------------------------------------------------ enhance
def fuzz_enhance(cases: list[FuzzCase], work: Path, model: str, extra_args: tuple[str, ...] = ()) -> FuzzReport:
    from lumicap.data.io import read_image_array

    inputs, out = work / "enhance_in", work / "enhance_out"
    cases = write_cases(cases, inputs)
    report = FuzzReport("enhance", permissions_note=_permissions_note(cases))
    argv = ["enhance", str(inputs), "--out", str(out), "--model", model, "--device", "cpu", "--no-progress", *extra_args]
    rc, stdout, stderr, tb = run_cli(argv)
    per_file_stderr: dict[str, str] = {}
    if tb is not None or "Traceback" in stderr:
        # Find the culprits: each file on its own (outputs already written are skipped, not redone).
        report.tracebacks.append(f"folder run: {_last_line(tb or stderr)}")
        for case in cases:
            rc1, _, err1, tb1 = run_cli(["enhance", str(inputs / case.filename), *argv[2:]])
            per_file_stderr[case.filename] = err1
            if tb1 is not None or "Traceback" in err1:
                report.tracebacks.append(f"{case.filename}: {_last_line(tb1 or err1)}")
                per_file_stderr[case.filename] = "TRACEBACK " + _last_line(tb1 or err1)
    errors = _error_lines(stderr)
    fmt = extra_args[extra_args.index("--format") + 1] if "--format" in extra_args else "png"
    suffix = {"png": ".png", "jpg": ".jpg", "tiff": ".tiff"}[fmt]
    for case in cases:
        target = out / f"{case.stem}{suffix}"
        mine = [line for line in errors if _names_file(case, line)]
        if case.filename in per_file_stderr:
            mine += [line for line in _error_lines(per_file_stderr[case.filename]) if line not in mine]
            if per_file_stderr[case.filename].startswith("TRACEBACK"):
                report.outcomes.append(FileOutcome(case, "traceback", per_file_stderr[case.filename][10:]))
                continue
        if target.is_file():
            try:
                array = read_image_array(target)
            except Exception as exc:  # an output lumicap cannot read back is a broken output
                report.outcomes.append(FileOutcome(case, "unaccounted", f"output unreadable: {exc}"))
                continue
            if case.size is not None and tuple(array.shape[:2]) != tuple(case.size):
                report.wrong_size.append(f"{case.filename}: output {array.shape[1]}x{array.shape[0]}, picture {case.size[1]}x{case.size[0]}")
            report.outcomes.append(FileOutcome(case, "processed", "; ".join(mine)))
        elif mine:
            report.outcomes.append(FileOutcome(case, "rejected", mine[0][len("lumicap: error: "):]))
        else:
            report.outcomes.append(FileOutcome(case, "unaccounted", "no output and no error line"))
    # Every stderr line is lumicap's and about one of the files: a raw newline in a name would show up
    # here as a line of its own (the "forged" names make such a line look like an error).
    for line in stderr.splitlines():
        if not line.strip() or "Traceback" in stderr:
            continue
        if not line.startswith(("lumicap: error: ", "lumicap: warning: ", "lumicap: note: ")):
            report.multi_line_errors.append(f"stray stderr line: {line[:120]!r}")
        elif line.startswith("lumicap: error: ") and not any(_names_file(case, line) for case in cases):
            report.multi_line_errors.append(f"error line naming no input: {line[:120]!r}")
    return report


# --------------------------------------------------------------------------------------------- eval
def fuzz_eval(cases: list[FuzzCase], work: Path, extra_args: tuple[str, ...] = ()) -> FuzzReport:
    report = FuzzReport("eval", eval_min_side=32 if "--lpips" in extra_args else 11)
    written = []
    for case in cases:
        folder = work / "eval" / f"{case.index:03d}"
        if folder.exists():
            shutil.rmtree(folder)
        case = case.write(folder / "pred")
        written.append(case)
        write_reference(case, folder / "gt")
        argv = ["eval", "--pred", str(folder / "pred"), "--gt", str(folder / "gt"), "--out", str(folder / "results"),
                "--device", "cpu", *extra_args]
        rc, stdout, stderr, tb = run_cli(argv)
        if tb is not None or "Traceback" in stderr:
            report.tracebacks.append(f"{case.filename}: {_last_line(tb or stderr)}")
            report.outcomes.append(FileOutcome(case, "traceback", _last_line(tb or stderr)))
            continue
        errors = _error_lines(stderr)
        if rc == 0:
            summary_path = folder / "results" / "summary.json"
            count = json.loads(summary_path.read_text()).get("count") if summary_path.is_file() else None
            status = "processed" if count == 1 else "unaccounted"
            report.outcomes.append(FileOutcome(case, status, "" if count == 1 else f"exit 0 but summary count {count}"))
        elif rc == 2 and len(errors) == 1 and (_names_file(case, errors[0]) or _names_file(replace(case, filename=case.stem), errors[0])):
            other = [line for line in stderr.splitlines()
                     if line.strip() and not line.startswith(("lumicap: error:", "lumicap: warning:"))]
            if other:
                report.multi_line_errors.append(f"{case.filename}: extra stderr lines {other[:2]}")
            report.outcomes.append(FileOutcome(case, "rejected", errors[0][len("lumicap: error: "):]))
        else:
            report.outcomes.append(FileOutcome(case, "unaccounted", f"exit {rc}, stderr {stderr.strip()[:200]!r}"))
    report.permissions_note = _permissions_note(written)
    return report


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def save_random_model(folder: Path, name: str = "iat", seed: int = 0) -> Path:
    """A randomly initialised registry model saved as .safetensors + sidecar (the real inference format)."""
    import torch

    from lumicap.inference import save_inference_model
    from lumicap.models import build_model

    torch.manual_seed(seed)
    model = build_model(name)
    path, _ = save_inference_model(folder / f"{name}-random.safetensors", name, model.state_dict(), overwrite=True,
                                   training_command="(random weights for fuzzing)")
    return path


def save_random_lpips(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """Random AlexNet (torchvision key layout) and LPIPS head files, for ``lumicap eval --lpips`` offline."""
    import torch

    from lumicap.metrics.lpips import LPIPS

    torch.manual_seed(seed)
    model = LPIPS()
    folder.mkdir(parents=True, exist_ok=True)
    alex = {f"features.{k}": v.clone() for k, v in model.alexnet.features.state_dict().items()}
    heads = {f"lin{i}.model.1.weight": head.model[1].weight.detach().abs().clone() for i, head in enumerate(model.heads())}
    torch.save(alex, folder / "alexnet-random.pth")
    torch.save(heads, folder / "lpips-heads-random.pth")
    return folder / "alexnet-random.pth", folder / "lpips-heads-random.pth"
