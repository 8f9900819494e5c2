"""A run folder written by an older lumicap (tests/fixtures/run-0.1.0, made before the config schema moved
to pydantic) still resumes: its config.yaml and the config stored in last.pt pass today's schema, and the
run continues from iteration 2 instead of starting again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from lumicap.cli import main

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "run-0.1.0"


def test_run_written_by_lumicap_0_1_0_resumes(tmp_path, monkeypatch):
    work = tmp_path / "work"
    shutil.copytree(FIXTURE, work)
    monkeypatch.chdir(work)  # the fixture's data.root and output_dir are relative
    (run,) = Path("runs").glob("tiny/*/seed3")
    before = json.loads((run / "run.json").read_text())
    assert before["status"] == "stopped" and before["iteration"] == 2

    assert main(["train", "--resume", str(run), "--no-progress"]) == 0

    after = json.loads((run / "run.json").read_text())
    assert after["status"] == "complete" and after["iteration"] == 4
    selected = torch.load(run / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)["best"]["iteration"]
    assert selected in (2, 4) and after["results"] == f"results/test-iter{selected:07d}"
    trained = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    iterations = [row["iter"] for row in trained if row.get("kind") == "train"]
    assert iterations == [1, 2, 3, 4], iterations  # continued at 3, not restarted at 1
