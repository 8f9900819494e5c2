"""The GPU campaign cannot rot: its --dry-run runs every part on the CPU with tiny settings, and the
pieces it relies on (rows appended as they are measured, part caps, the time-to-quality segments,
WebP packing of the data) behave as the campaign expects. Timings are never asserted."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"lumicap_bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


campaign = _load("gpu_campaign")
ttq = _load("bench_time_to_quality")


def test_dry_run_runs_every_part_and_writes_one_results_file(tmp_path):
    out = tmp_path / "results"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_campaign.py"), "--dry-run", "--minutes", "6", "--out-dir", str(out),
         "--data", str(tmp_path / "no-such-folder-so-tiny-data")],
        capture_output=True, text=True, timeout=900, cwd=REPO,
    )
    # A missing --data folder is an error, not a silent fall-back.
    assert result.returncode != 0 and "no-such-folder" in result.stderr + result.stdout

    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_campaign.py"), "--dry-run", "--minutes", "6", "--out-dir", str(out)],
        capture_output=True, text=True, timeout=900, cwd=REPO, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (json_path,) = out.glob("gpu_campaign_dry_run_cpu_*.json")
    record = json.loads(json_path.read_text())
    parts = {row["part"][0]: row for row in record["rows"]}
    assert set(parts) == set("abcdef")
    assert [row["part"][0] for row in record["rows"]] == list("abefcd")  # value order

    terms = [r for r in parts["a"]["rows"] if "iter_ms" in r]
    assert {(r["mode"], r["amp"]) for r in terms} == {(m, a) for m in ("clip-only", "clip+prefix", "default") for a in ("none", "bf16")}
    assert all(r["iter_ms"] > 0 for r in terms)
    a_rows = [r for r in parts["a"]["rows"] if not r.get("error") and "iter_ms" not in r]
    # both modes (trainer default, fastest switches) for every dry-run model, baseline and +MFR
    seen = {(r["model"], r["options"] != "eager", r["mfr"] != "no") for r in a_rows}
    assert seen == {(m, fast, mfr) for m in campaign.DRY_RUN_MODELS for fast in (False, True) for mfr in (False, True)}
    assert all(math.isfinite(r["ms"]) and r["ms"] > 0 for r in a_rows)
    fastest = [r for r in a_rows if r["options"] != "eager" and r["mfr"] != "no"]
    # the teacher's precision figure is measured against fp32 and is a real number
    assert all(0 <= r["mfr_precision_error"]["grad_rel"] < 1 for r in fastest)

    b_rows = parts["b"]["rows"]
    assert {(r["model"], r["amp"], r["size"]) for r in b_rows if r["ms"]} == {
        (m, amp, size) for m in ("default", "iat") for amp in ("none", "bf16") for size in ("48x40", "37x29")}

    c_rows = parts["c"]["rows"]
    assert {r["variant"] for r in c_rows if not r.get("error")} == {"baseline", "mfr"}
    for variant in ("baseline", "mfr"):
        its = [r["iterations"] for r in c_rows if r["variant"] == variant]
        assert its == sorted(its) and its[-1] > 0  # training went on between the measuring points
        assert all(0 < r["psnr"] < 60 and -1 <= r["ssim"] <= 1 for r in c_rows if r["variant"] == variant)

    d_rows = parts["d"]["rows"]
    artifacts = {r["artifact"] for r in d_rows}
    assert any(a.startswith("default_model_best_") for a in artifacts)
    summary = next(r for r in d_rows if r.get("psnr") is not None)
    assert summary["selected"]["on"] == "val" and summary["iteration"] == 4
    # the selected checkpoint that comes back loads as an inference model of the recipe's network
    from lumicap.inference import load_inference_model

    best = next(out.glob("default_model_best_*.pt"))
    assert load_inference_model(str(best)).name == "iat"

    # e: the official side by side ran (the stand-in official IAT without .official/), same weights, both measures
    e_rows = parts["e"]["rows"]
    assert {r["model"] for r in e_rows} == {"iat"} and len(e_rows) == 2
    assert all(r["ratio"] > 0 and r["cpu_ratio"] > 0 for r in e_rows)
    # f: fused and separate passes, fp32 and bf16 teacher weights; the graph rows say why they did not run on a CPU
    f_rows = parts["f"]["rows"]
    assert {(r["fused"], r["teacher_dtype"], r["graph"]) for r in f_rows} == {
        (fused, dtype, graph) for fused in (False, True) for dtype in ("fp32", "bf16") for graph in (False, True)}
    for r in f_rows:
        assert (r["iter_ms"] > 0) if not r["graph"] else (r["iter_ms"] is None and "CUDA" in r["error"])
        if r["teacher_dtype"] == "bf16":
            assert 0 <= r["precision_vs_fp32"]["grad_rel"] < 1 and r["precision_vs_fp32"]["grad_cosine"] > 0.5

    md = next(out.glob("gpu_campaign_dry_run_cpu_*.md")).read_text()
    for heading in ("## a. train_step", "### MFR cost by term", "## b. inference", "## c. time_to_quality", "## d. default_model",
                    "## e. vs_official", "## f. mfr_overhead"):
        assert heading in md
    assert (out / record["notes"][-1].removeprefix("log: ")).is_file()  # the console log is kept


def test_a_part_that_runs_past_its_cap_is_stopped_and_keeps_its_finished_rows(tmp_path):
    rows_file = tmp_path / "rows.jsonl"
    script = (
        "import json, sys, time\n"
        f"open({str(rows_file)!r}, 'a').write(json.dumps({{'model': 'first'}}) + '\\n')\n"
        "time.sleep(60)\n"
        f"open({str(rows_file)!r}, 'a').write(json.dumps({{'model': 'never'}}) + '\\n')\n"
    )
    with open(tmp_path / "log.txt", "w") as log:
        status = campaign.run_child([sys.executable, "-c", script], cap=6, log=log, env=dict(__import__("os").environ))
    assert status.startswith("stopped at its cap")
    assert [r["model"] for r in campaign.read_rows(rows_file)] == ["first"]
    with open(tmp_path / "log.txt", "w") as log:
        assert campaign.run_child([sys.executable, "-c", "pass"], cap=1, log=log, env={}) == "skipped: no time left"


def test_packed_webp_data_unpacks_to_the_same_pixels(tmp_path):
    from PIL import Image

    source = campaign.make_tiny_data(tmp_path / "src")
    campaign.pack(source, tmp_path / "packed", wheels=False)
    webps = sorted((tmp_path / "packed" / "data").rglob("*.webp"))
    assert len(webps) == 2 * (12 + 3)
    unpacked = campaign.unpack_if_webp(tmp_path / "packed" / "data", tmp_path / "scratch")
    for png in sorted(source.rglob("*.png")):
        again = unpacked / png.relative_to(source)
        assert np.array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(again)))  # lossless


def test_time_to_quality_points_are_checked():
    from lumicap.errors import LumicapError

    assert ttq.parse_points("0.5,1,2") == [0.5, 1.0, 2.0]
    for bad in ("", "1,0.5", "0,1", "a", "1,1"):
        with pytest.raises(LumicapError):
            ttq.parse_points(bad)


def test_uhdfour_runs_under_bf16_autocast():
    # The campaign's fastest mode autocasts to bf16; UHDFour's FFTs and complex tensors have no bf16.
    from lumicap.models import build_model

    torch.manual_seed(0)
    model = build_model("uhdfour", base_channels=4).eval()
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert torch.isfinite(low.float()).all()
    assert (low.float() - reference).abs().max() < 0.05
