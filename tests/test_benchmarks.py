"""The benchmark harnesses run on the CPU with tiny settings and write well-formed tables and results files.

Timings are never asserted (shared CI machines); the tests check what was measured (models, stages,
shapes, tiling, MFR variants), that every figure is a finite positive number, and the file structure.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    # The scripts are not a package: load them by path (they import their sibling ``_common`` themselves).
    spec = importlib.util.spec_from_file_location(f"lumicap_bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


common = _load("_common")
train_step = _load("bench_train_step")
inference = _load("bench_inference")
cpu_table = _load("bench_cpu")
vs_official = _load("bench_vs_official")
memory_estimate = _load("bench_memory_estimate")


@pytest.fixture
def one_thread():
    # --threads changes torch's global setting; keep the rest of the session's setting intact.
    before = torch.get_num_threads()
    yield ["--threads", "1"]
    torch.set_num_threads(before)


def _read(paths) -> tuple[dict, str]:
    json_path, md_path = paths
    assert json_path.parent == md_path.parent and json_path.stem == md_path.stem
    return json.loads(json_path.read_text()), md_path.read_text()


def _table_rows(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]  # after header and rule


def _check_environment(record: dict, markdown: str) -> None:
    env = record["environment"]
    assert record["format"] == "lumicap-benchmark" and env["device_type"] == "cpu"
    assert env["device"].startswith("CPU ") and env["device"] in markdown
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=BENCHMARKS.parent, capture_output=True, text=True)
    if head.returncode == 0:
        assert env["commit"] == head.stdout.strip() and env["commit"][:10] in markdown


def test_train_step_times_baseline_and_mfr_per_model(tmp_path, capsys, one_thread):
    paths = train_step.main(
        ["--device", "cpu", "--models", "iat,retinexnet", "--batch", "1", "--patch", "32", "--teacher", "tiny",
         "--repeats", "2", "--warmup", "0", "--out-dir", str(tmp_path), "--note", "CPU test run", *one_thread]
    )
    record, markdown = _read(paths)
    _check_environment(record, markdown)
    assert record["notes"][0] == "CPU test run" and "- CPU test run" in markdown.splitlines()
    assert paths[0].name.startswith("train_step_cpu_") and record["benchmark"] == "train_step"
    rows = record["rows"]
    assert [(r["model"], r["stage"], r["mfr"]) for r in rows] == [
        ("iat", "patches", "no"), ("iat", "patches", "tiny"), ("retinexnet", "relight", "no"), ("retinexnet", "relight", "tiny"),
    ]
    for row in rows:
        assert row["error"] is None, row["error"]
        assert row["batch"] == 1 and row["patch"] == "32x32" and row["amp"] == "none" and row["options"] == "eager"
        assert len(row["samples_ms"]) == 2 and all(math.isfinite(t) and t > 0 for t in row["samples_ms"])
        assert row["ms"] == pytest.approx(sorted(row["samples_ms"])[0] / 2 + sorted(row["samples_ms"])[1] / 2)
        assert row["peak_mib"] > 0 and row["memory"] == "process peak RSS"
    for baseline, with_mfr in (rows[0:2], rows[2:4]):
        assert baseline["mfr_ratio"] is None
        assert with_mfr["mfr_ratio"] == pytest.approx(with_mfr["ms"] / baseline["ms"])
    assert record["settings"]["repeats"] == 2 and record["settings"]["teacher"] == "tiny"
    # The markdown file and the printed table carry the same rows.
    table = _table_rows(markdown)
    assert [(r[0], r[6]) for r in table] == [("iat", "no"), ("iat", "tiny"), ("retinexnet", "no"), ("retinexnet", "tiny")]
    assert markdown.splitlines()[0] == "# train_step"
    printed = capsys.readouterr().out
    assert all(line in printed for line in markdown.splitlines() if line.startswith("|"))


def test_train_step_perceptual_recipe_under_bf16_channels_last_reference_adam(tmp_path, one_thread):
    """RCTNet's recipe has a VGG16 term: it runs with random weights in torchvision's layout."""
    paths = train_step.main(
        ["--device", "cpu", "--models", "rctnet", "--small", "--patch", "32", "--mfr", "off", "--amp", "none,bf16", "--batch", "1",
         "--channels-last", "--fused-optimizer", "off", "--repeats", "1", "--warmup", "0", "--out-dir", str(tmp_path), *one_thread]
    )
    record, _ = _read(paths)
    rows = record["rows"]
    assert [(r["model"], r["amp"], r["mfr"], r["options"]) for r in rows] == [
        # the CPU default is fused Adam (torch >= 2.4): "off" is the option that differs from it
        ("rctnet", "none", "no", "channels-last,reference-adam"), ("rctnet", "bf16", "no", "channels-last,reference-adam"),
    ]
    assert all(r["error"] is None and r["ms"] > 0 for r in rows), [r["error"] for r in rows]


def test_train_step_shapes_follow_the_recipe():
    from lumicap.models import model_info

    parse = train_step.build_parser().parse_args
    shape = lambda name, argv=(): train_step.step_shape(train_step.stage_to_time(model_info(name)), parse(list(argv)))
    assert shape("retinexformer") == (8, 128, 128)
    assert shape("snr_aware") == (32, 128, 128)
    assert shape("uhdfour") == (2, 400, 600)  # whole LOL images
    assert shape("retinexformer", ["--small"]) == (1, 64, 64)
    assert shape("uhdfour", ["--small", "--batch", "3", "--patch", "48"]) == (3, 48, 48)
    assert train_step.stage_to_time(model_info("retinexnet")).name == "relight"  # decomposition has no MFR


def test_inference_times_whole_and_tiled_images(tmp_path, one_thread):
    from lumicap.inference import plan_tiles

    paths = inference.main(
        ["--device", "cpu", "--models", "retinexnet", "--sizes", "96x64,200x120", "--tile", "64", "--overlap", "16",
         "--repeats", "2", "--warmup", "0", "--out-dir", str(tmp_path), *one_thread]
    )
    record, markdown = _read(paths)
    _check_environment(record, markdown)
    assert record["benchmark"] == "inference" and paths[0].name.startswith("inference_cpu_")
    rows = record["rows"]
    assert [(r["model"], r["size"]) for r in rows] == [("retinexnet", "96x64"), ("retinexnet", "200x120")]
    counts = [plan_tiles(64, 96, 64, 16).count, plan_tiles(120, 200, 64, 16).count]
    assert counts[1] > counts[0] > 1
    assert [r["mode"] for r in rows] == [f"{counts[0]} tiles of 64x64", f"{counts[1]} tiles of 64x64"]
    for row in rows:
        assert row["error"] is None and len(row["samples_ms"]) == 2 and row["ms"] > 0 and row["peak_mib"] > 0
    assert [(r[0], r[1], r[2]) for r in _table_rows(markdown)] == [(r["model"], r["size"], r["mode"]) for r in rows]


def test_inference_tiling_rule_and_cpu_small_preset():
    parse = inference.build_parser().parse_args
    settings = inference.resolve_settings(parse(["--cpu-small"]))
    assert settings["device"].type == "cpu" and settings["sizes"] == [(400, 600)]
    assert settings["models"] == list(inference.CPU_SMALL_MODELS)
    settings = inference.resolve_settings(parse(["--device", "cpu", "--models", "iat", "--max-megapixels", "0.5"]))
    assert settings["sizes"] == [(400, 600), (2160, 3840)]
    cpu = torch.device("cpu")
    assert inference.tiling_for(settings, 400, 600, cpu) is None  # 0.24 MP: whole
    assert inference.tiling_for(settings, 2160, 3840, cpu) == 512  # 8.3 MP: the project's tiles
    whole = inference.resolve_settings(parse(["--device", "cpu", "--tile", "none"]))
    assert inference.tiling_for(whole, 2160, 3840, cpu) is None
    assert inference.mode_label(512, 2160, 3840, 64) == "45 tiles of 512x512"  # 9 columns x 5 rows, stride 448


@pytest.mark.parametrize(
    "script, argv, expected",
    [
        ("train", ["--models", "retinexformer,nosuchnet"], "unknown model 'nosuchnet'"),
        ("train", ["--amp", "fp8"], "unknown --amp value 'fp8'"),
        ("inference", ["--sizes", "600by400"], "'600by400' is not WIDTHxHEIGHT"),
        ("inference", ["--tile", "8"], "--tile must be auto, none or a size"),
        ("inference", ["--cpu-small", "--device", "cuda"], "--cpu-small measures the CPU"),
    ],
)
def test_bad_arguments_are_one_line_errors(script, argv, expected, capsys, tmp_path):
    module = train_step if script == "train" else inference
    with pytest.raises(SystemExit) as info:
        module.main(["--device", "cpu", *argv, "--out-dir", str(tmp_path)] if "--device" not in argv else argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_results_files_are_never_replaced(tmp_path):
    env = common.environment(torch.device("cpu"))
    columns = [common.Column("model", "model"), common.Column("ms", "ms/iter", "{:.1f}")]
    first = common.write_results("demo", env, {"a": 1}, columns, [{"model": "iat", "ms": 12.34}], tmp_path)
    second = common.write_results("demo", env, {"a": 2}, columns, [{"model": "iat", "ms": None}], tmp_path)
    assert first[0] != second[0] and second[0].stem == first[0].stem + "_2" and second[1].stem == second[0].stem
    assert json.loads(first[0].read_text())["settings"] == {"a": 1}
    assert "| iat | 12.3 |" in first[1].read_text() and "| iat | - |" in second[1].read_text()
    assert first[0].stem == f"demo_cpu_{env['date'][:10]}"


def test_timing_and_cpu_peak_memory_helpers():
    calls = []
    timing = common.time_function(lambda: calls.append(1), torch.device("cpu"), repeats=3, warmup=2)
    assert len(calls) == 5 and len(timing.samples_ms) == 3 and timing.min_ms <= timing.median_ms
    with common.PeakMemory(torch.device("cpu")) as quiet:
        pass
    with common.PeakMemory(torch.device("cpu")) as busy:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        del block
    if quiet.kind == "process peak RSS":  # the peak could be reset: the 64 MiB block shows up
        assert busy.mib - quiet.mib > 48


def test_inference_script_runs_from_the_command_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_inference.py"), "--device", "cpu", "--models", "rctnet", "--sizes", "64x48",
         "--repeats", "1", "--warmup", "0", "--threads", "1", "--no-save"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    table = _table_rows(result.stdout)
    assert len(table) == 1 and table[0][:3] == ["rctnet", "64x48", "whole"] and float(table[0][4]) > 0


def test_loader_benchmark_times_every_stage_and_worker_count(tmp_path):
    import numpy as np
    from PIL import Image

    loader = _load("bench_loader")
    rng = np.random.default_rng(0)
    for name in range(1, 21):
        high = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
        for side, image in (("high", high), ("low", high // 8)):
            (tmp_path / "lol" / "train" / side).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(tmp_path / "lol" / "train" / side / f"{name}.png")
    paths = loader.main(["--data-root", str(tmp_path / "lol"), "--split", "train", "--workers", "0,1", "--batches", "3",
                         "--warmup", "1", "--out-dir", str(tmp_path / "results")])
    record, markdown = _read(paths)
    rows = record["rows"]
    # the default recipe's stages, each with both worker counts, all measured
    from lumicap.config import load_config

    stages = [s.name for s in load_config(loader.DEFAULT_CONFIG, ["data.root=x"]).stages]
    assert [(r["stage"], r["workers"]) for r in rows] == [(s, w) for s in stages for w in (0, 1)]
    assert all(r["error"] is None and r["batches_per_s"] > 0 and math.isfinite(r["ms_per_batch"]) for r in rows)
    assert record["settings"]["pairs"] == 20 and "batches/s" in markdown


def test_video_benchmark_measures_flicker_quality_cost_and_speed(tmp_path, one_thread):
    import numpy as np
    from PIL import Image

    from _video_support import dark_frames

    video = _load("bench_video")
    scene = dark_frames(1, height=40, width=60)[0]
    for name, low in (("1", scene), ("22", np.ascontiguousarray(scene[::-1, ::-1]))):  # the clips' two eval15 scenes, made up
        for side, image in (("low", low), ("high", np.minimum(low.astype(int) * 5, 255).astype(np.uint8))):
            folder = tmp_path / "data" / "lol-v1" / "eval15" / side
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{name}.png")
    (tmp_path / "data" / "unpaired" / "DICM").mkdir(parents=True)
    wide = dark_frames(1, height=61, width=96, seed=1)[0]
    Image.fromarray(wide).save(tmp_path / "data" / "unpaired" / "DICM" / "30.jpg")
    paths = video.main(["--data", str(tmp_path / "data"), "--clip-frames", "6", "--clip-scale", "0.5", "--frames", "2",
                        "--sizes", "64x48", "--repeats", "1", "--warmup", "0", "--out-dir", str(tmp_path / "results"),
                        *one_thread])
    (flicker, _), (quality, _), (speed, markdown) = (_read(p) for p in paths)
    rows = flicker["rows"]
    assert [(r["clip"], r["mode"]) for r in rows] == [(c, m) for c in ("static", "pan", "cut") for m in video.MODES]
    assert all(math.isfinite(r["flicker"]) and r["error"] is None for r in rows)
    assert all(r["flicker_ratio"] == 1.0 for r in rows if r["mode"] == "none")
    cut = {r["mode"]: r for r in rows if r["clip"] == "cut"}
    assert cut["smooth"]["cuts"] == "0,3" and cut["smooth"]["settle"] == 0  # restarted at the cut, settled at once
    assert cut["no-reset"]["cuts"] == "0"
    assert [r["psnr"] > 0 for r in quality["rows"]] == [True, True]
    assert [r["mode"] for r in speed["rows"]] == ["smooth", "whole", "photo (reference)"]
    assert all(r["fps"] > 0 and r["cpu_ms"] > 0 for r in speed["rows"])
    assert "fps end to end" in markdown


def test_cpu_table_has_train_and_inference_per_model(tmp_path, one_thread):
    paths = cpu_table.main(
        ["--models", "iat,retinexnet", "--batch", "1", "--patch", "32", "--size", "48x40", "--repeats", "2",
         "--warmup", "0", "--out-dir", str(tmp_path), *one_thread]
    )
    record, markdown = _read(paths)
    _check_environment(record, markdown)
    assert record["benchmark"] == "cpu_models" and record["settings"]["threads"] == 1
    assert "1 torch threads, OMP_WAIT_POLICY=" in markdown
    rows = record["rows"]
    assert [r["model"] for r in rows] == ["iat", "retinexnet"]
    assert [r["train_shape"] for r in rows] == ["1 x 32x32 (patches)", "1 x 32x32 (relight)"]
    for row in rows:
        assert row["error"] is None, row["error"]
        assert row["infer_mode"] == "48x40 whole" and len(row["train_samples_ms"]) == len(row["infer_samples_ms"]) == 2
        for key in ("train_ms", "train_best_ms", "infer_ms", "infer_best_ms"):
            assert math.isfinite(row[key]) and row[key] > 0
        assert row["train_best_ms"] <= row["train_ms"] and row["params_m"] > 0
    assert [r[0] for r in _table_rows(markdown)] == ["iat", "retinexnet"]


# An object with the official IAT's interface (same keys, forward returns mul, add, image): the GPU campaign's
# dry-run stand-in, one text for both.
OFFICIAL_STAND_IN = _load("gpu_campaign").OFFICIAL_STAND_IN


def test_side_by_side_with_an_official_file(tmp_path, one_thread):
    official = tmp_path / "official_iat.py"
    official.write_text(OFFICIAL_STAND_IN)
    paths = vs_official.main(
        ["--model", "iat", "--official", str(official), "--official-class", "Official", "--official-kwargs", '{"type": "lol"}',
         "--batch", "1", "--patch", "32", "--size", "40x24", "--rounds", "3", "--also-loaded", "--out-dir",
         str(tmp_path / "out"), *one_thread]
    )
    record, markdown = _read(paths)
    assert record["benchmark"] == "vs_official" and record["settings"]["official"]["iat"]["file"] == "official_iat.py"
    assert record["settings"]["checks"]["iat"]["max_abs_diff_eval"] < 1e-6  # same weights, same network
    rows = record["rows"]
    assert [(r["measure"], r["side"]) for r in rows] == [
        (m, side) for m in ("train step, batch 1, 32x32", "inference 40x24") for side in ("built", "loaded")]
    for row in rows:
        side = "lumicap" if row["side"] == "built" else "lumicap (loaded)"
        official, ours = row["samples_s"]["official"], row["samples_s"][side]
        assert len(official["wall"]) == len(ours["cpu"]) == 3 and min(official["cpu"]) > 0
        # medians of the interleaved rounds, the ratio per round (same load), then its median
        assert row["official_s"] == sorted(official["wall"])[1] and row["lumicap_s"] == sorted(ours["wall"])[1]
        assert row["ratio"] == pytest.approx(sorted(a / b for a, b in zip(ours["wall"], official["wall"]))[1])
        assert row["cpu_ratio"] == pytest.approx(sorted(a / b for a, b in zip(ours["cpu"], official["cpu"]))[1])
        low, high = (float(v) for v in row["ratio_iqr"].split("-"))
        assert low <= round(row["ratio"], 2) <= high
    assert "interleaved rounds, order alternating, 3 rounds" in markdown and "load average" in markdown


OFFICIAL_PACKAGE = {
    # an official-style package: the model file imports a sibling as "model.blocks", as IAT's does
    "IAT_enhance/model/__init__.py": "",
    "IAT_enhance/model/blocks.py": "from lumicap.models.iat import IAT as Inner\n",
    "IAT_enhance/model/IAT_main.py": OFFICIAL_STAND_IN.replace(
        "from lumicap.models.iat import IAT as _IAT", "from model.blocks import Inner as _IAT").replace("class Official", "class IAT")
    .replace('def __init__(self, type="lol"):', 'def __init__(self, in_dim=3, with_global=True, type="lol"):'),
}


def test_side_by_side_from_an_official_root_forgets_the_official_packages(tmp_path, one_thread):
    for relative, text in OFFICIAL_PACKAGE.items():
        (tmp_path / "root" / "iat" / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "root" / "iat" / relative).write_text(text)
    args = vs_official.build_parser().parse_args(["--models", "iat", "--official-root", str(tmp_path / "root")])
    cls = vs_official.load_official_class(args, vs_official.BASELINES["iat"])
    assert cls.__name__ == "IAT" and "model" not in sys.modules and "model.blocks" not in sys.modules
    paths = vs_official.main(["--models", "iat", "--official-root", str(tmp_path / "root"), "--batch", "1", "--patch", "32",
                              "--size", "40x24", "--rounds", "1", "--skip", "train", "--out-dir", str(tmp_path / "out"),
                              *one_thread])
    record, _ = _read(paths)
    assert [r["measure"] for r in record["rows"]] == ["inference 40x24"]
    assert record["settings"]["official"]["iat"]["commit"] == vs_official.BASELINES["iat"].commit
    with pytest.raises(SystemExit):  # a model whose official copy is missing is one line, naming what to fetch
        vs_official.main(["--models", "mirnet", "--official-root", str(tmp_path / "root"), "--no-save"])


def test_official_snr_mask_is_lumicaps_snr_map():
    """The mask the benchmark feeds the official SNR-Aware (its test script's recipe, transcribed) and the map
    lumicap's SNR-Aware computes inside forward are one function."""
    from lumicap.models.snr_aware import snr_map

    x = torch.rand(2, 3, 48, 64, generator=torch.Generator().manual_seed(0)) ** 2
    assert torch.allclose(vs_official.snr_mask_as_official_test(x), snr_map(x), atol=1e-6)


def test_official_sizes_are_fitted_as_their_test_scripts_do():
    x = torch.rand(1, 3, 67, 101)
    padded, size = vs_official.fit_for_official(vs_official.BASELINES["llformer"], x)
    assert tuple(padded.shape[-2:]) == (80, 112) and size == (67, 101)
    cropped, size = vs_official.fit_for_official(vs_official.BASELINES["uhdfour"], x)
    assert tuple(cropped.shape[-2:]) == (64, 96) == size
    same, size = vs_official.fit_for_official(vs_official.BASELINES["iat"], x)
    assert same is x and size == (67, 101)


def test_memory_side_by_side_runs_each_side_in_its_own_process(tmp_path, one_thread):
    official = tmp_path / "official_iat.py"
    official.write_text(OFFICIAL_STAND_IN)
    paths = vs_official.main(["--memory", "--model", "iat", "--official", str(official), "--official-class", "Official",
                              "--sizes", "40x24", "--out-dir", str(tmp_path / "out"), *one_thread])
    record, markdown = _read(paths)
    assert record["benchmark"] == "vs_official_memory"
    (row,) = record["rows"]
    assert row["size"] == "40x24"
    for side in ("official", "lumicap"):
        assert row[f"{side}_mib"] >= row[f"{side}_added_mib"] >= 0 and row[f"{side}_mib"] > 50  # torch alone is more
    assert "peak resident set size" in markdown


def test_memory_side_by_side_reports_a_side_the_oom_killer_stopped(tmp_path, one_thread):
    # The official network's process dies of SIGKILL in its forward, as under the kernel's out-of-memory killer
    # (official LLFormer at 1920x1080 on a 24 GiB machine): that size gets no figure for it, the run goes on.
    official = tmp_path / "official_iat.py"
    official.write_text(OFFICIAL_STAND_IN + "\n\nimport os, signal\n\nclass Killed(Official):\n"
                        "    def forward(self, *args, **kwargs):\n        os.kill(os.getpid(), signal.SIGKILL)\n")
    paths = vs_official.main(["--memory", "--model", "iat", "--official", str(official), "--official-class", "Killed",
                              "--sizes", "40x24,24x16", "--out-dir", str(tmp_path / "out"), *one_thread])
    record, markdown = _read(paths)
    assert [row["size"] for row in record["rows"]] == ["40x24", "24x16"]
    for row in record["rows"]:
        assert row["official_mib"] is None and row["killed"] == "official" and row["lumicap_mib"] > 50
    assert "killed by the OOM killer" in markdown and "GiB" in markdown


def test_side_by_side_refuses_an_official_model_with_other_keys(tmp_path, capsys):
    official = tmp_path / "other.py"
    official.write_text("import torch\nclass Net(torch.nn.Module):\n    def __init__(self):\n"
                        "        super().__init__()\n        self.conv = torch.nn.Conv2d(3, 3, 1)\n")
    with pytest.raises(SystemExit) as info:
        vs_official.main(["--model", "iat", "--official", str(official), "--official-class", "Net", "--no-save"])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and "does not load into 'iat'" in err and "\n" not in err
    with pytest.raises(SystemExit):
        vs_official.main(["--model", "iat", "--official", str(tmp_path / "missing.py"), "--official-class", "Net", "--no-save"])
    assert "no such file" in capsys.readouterr().err


def test_noref_benchmark_measures_each_model_and_times_niqe(tmp_path, one_thread):
    import numpy as np
    from PIL import Image
    from skimage import data

    from lumicap.metrics import niqe

    noref = _load("bench_noref")
    photos = tmp_path / "photos"
    for name, photo in (("set/a", data.astronaut()[:120, :200]), ("set/b", data.coffee()[:120, :200])):
        (photos / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((photo // 5).astype("uint8")).save(photos / f"{name}.png")
    written = noref.main(["--models", "default", "--photos", str(photos), "--shared", str(tmp_path / "none"),
                          "--speed-sizes", "200x120", "--repeats", "1", "--warmup", "0", "--out-dir", str(tmp_path / "r"),
                          *one_thread])
    (quality, quality_md), (speed, speed_md) = (_read(paths) for paths in written)
    _check_environment(quality, quality_md)
    assert quality["benchmark"] == "noref" and speed["benchmark"] == "niqe_speed"
    inputs, default = quality["rows"]
    assert inputs["model"].startswith("dark inputs") and default["model"] == "default" and default["error"] is None
    assert inputs["loe"] == 0 and default["photos"] == 2 and set(default["per_photo"]) == {"set/a", "set/b"}
    dark = np.asarray(Image.open(photos / "set" / "a.png"))
    assert inputs["per_photo"]["set/a"]["niqe_y"] == pytest.approx(niqe(dark, "y"))
    for key in ("niqe_gray", "niqe_y", "loe", "clipped_pct", "colourfulness"):
        assert math.isfinite(default[key]), key
    assert [r["size"] for r in speed["rows"]] == ["200x120"] and speed["rows"][0]["s"] > 0
    assert "| default |" in quality_md and "NIQE gray" in quality_md


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's resettable peak RSS")
def test_memory_estimate_measures_the_path_each_photo_takes(tmp_path):
    args = memory_estimate.build_parser().parse_args(
        ["--cases", "default,default+whole", "--sizes", "96x64", "--threads", "1", "--out-dir", str(tmp_path),
         "--work-dir", str(tmp_path / "work")])
    memory_estimate.run(args)
    json_path = next(tmp_path.glob("memory_estimate_cpu_*.json"))
    record, markdown = _read((json_path, json_path.with_suffix(".md")))
    rows = {row["case"]: row for row in record["rows"]}
    assert set(rows) == {"default", "default+whole"} and all(row["size"] == "96x64" for row in rows.values())
    assert rows["default"]["path"] == "whole" and rows["default+whole"]["path"] == "whole"  # 96x64 is below 1 MP
    for row in rows.values():
        assert row["estimate_mib"] > 0 and row["measured_mib"] >= 0 and math.isfinite(row["ratio"])
    _check_environment(record, markdown)
