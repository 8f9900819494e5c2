"""The memory a photo needs, for the path it takes, and what happens when it will not fit (issue 25, item 6).

Before, every photo above 50 MP was announced with a flat 18 bytes per pixel ("needs about 2.6 GB" for
144 MP) whatever the path, and nothing compared it with the machine: a whole-image pass of IAT grew to 21.6 GB
and was killed by the kernel. Now the estimate follows the path (whole network, full-resolution transform,
tiles), a pass that would not fit the available memory is tiled instead, and a photo that does not fit even in
tiles is refused in one line before it is read. The figures themselves are measured by
benchmarks/bench_memory_estimate.py; one test here checks the estimate against a real process's peak."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _enhance_support import register_tiny, save_tiny_safetensors
from reliability.fuzzrun import run_cli, save_random_model

pytestmark = pytest.mark.usefixtures("one_thread")


def _photo(path: Path, height: int, width: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 90, size=(height, width, 3), dtype=np.uint8)).save(path)
    return path


def _machine_with(monkeypatch, gigabytes: float) -> None:
    from lumicap.inference import memory

    monkeypatch.setattr(memory, "available_memory", lambda: gigabytes * 1e9)


def test_the_issues_photo_is_estimated_above_what_killed_it(monkeypatch):
    """IAT's whole-image pass over 12000x12000 (--max-megapixels 200, network on the whole photo) reached
    21.6 GB before the kernel killed it: a true estimate is above that, not 2.6 GB."""
    from lumicap.inference import TileSettings, load_inference_model
    from lumicap.inference.memory import plan_memory

    _machine_with(monkeypatch, 1000.0)  # a machine where it fits: the plan keeps the path asked for
    model = load_inference_model("default", "cpu", network_megapixels=0)
    plan = plan_memory(model, TileSettings(max_megapixels=200.0), 12000, 12000, model.device)
    assert plan.path == "whole" and plan.tile is None
    assert plan.bytes > 21.6e9
    shipped = load_inference_model("default", "cpu")  # its own path: the transform, a few full-size maps
    plan = plan_memory(shipped, TileSettings(max_megapixels=200.0), 12000, 12000, shipped.device)
    assert plan.path == "transform" and 144e6 * 40 < plan.bytes < 144e6 * 80


def test_a_whole_pass_that_would_not_fit_is_tiled_instead(tmp_path, monkeypatch):
    register_tiny(monkeypatch)
    model = save_tiny_safetensors(tmp_path / "model")
    photo = _photo(tmp_path / "in" / "big.png", 700, 900)
    # Forced whole (--max-megapixels 100); a tiny network not in the table counts as the largest (3,200 B/px):
    # 0.63 MP x 3.2 kB = 2 GB whole, 1 GB in 512-px tiles, on a machine with 1.5 GB available.
    _machine_with(monkeypatch, 1.5)
    rc, out, err, tb = run_cli(["enhance", str(photo), "--out", str(tmp_path / "out"), "--model", str(model),
                                "--max-megapixels", "100", "--no-progress"])
    assert tb is None and rc == 0, err
    assert "would need about" in err and "512-px tiles instead" in err  # before: a whole pass, nothing said

    from lumicap.data.io import read_image
    from lumicap.inference import load_inference_model, run_tiled

    loaded = load_inference_model(model, "cpu")
    expected = run_tiled(loaded, read_image(photo), tile=512, overlap=64)
    written = read_image(tmp_path / "out" / "big.png")
    assert (written - expected).abs().max() <= 0.5 / 255 + 1e-6


def test_a_photo_that_does_not_fit_even_in_tiles_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from lumicap.data import io

    model = save_random_model(tmp_path / "model")
    _photo(tmp_path / "in" / "small.png", 16, 20)
    big = tmp_path / "in" / "big.png"
    Image.new("RGB", (2000, 1500), (10, 20, 30)).save(big)
    _machine_with(monkeypatch, 0.2)  # below even a 128-px tiled pass of the big one (0.23 GB), above the small one
    decoded = []
    real = io.read_image_array
    monkeypatch.setattr(io, "read_image_array", lambda path: decoded.append(Path(path).name) or real(path))
    rc, out, err, tb = run_cli(["enhance", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--model", str(model),
                                "--no-progress"])
    assert tb is None and rc == 1, err
    errors = [line for line in err.splitlines() if line.startswith("lumicap: error:")]
    assert len(errors) == 1 and "big.png" in errors[0] and "however it is split" in errors[0], err
    assert "1 failed" in out and (tmp_path / "out" / "small.png").is_file() and not (tmp_path / "out" / "big.png").exists()
    assert decoded == ["small.png"]  # the big one was refused from its header, never decoded


def test_large_photo_note_gives_the_estimate_of_its_path(tmp_path, monkeypatch):
    """The note before a big photo names its path's figure (its header is read, not the pixels, so a cheap
    flat 60 MP PNG stands for a camera photo)."""
    from lumicap.inference import TileSettings, enhance_file, load_inference_model
    from lumicap.inference.memory import plan_memory

    _machine_with(monkeypatch, 1000.0)
    photo = tmp_path / "flat.png"
    Image.new("RGB", (9000, 6700), (20, 20, 20)).save(photo)
    model = load_inference_model("default", "cpu")
    notes = []
    monkeypatch.setattr("lumicap.inference.batch.read_float_image",
                        lambda path: (_ for _ in ()).throw(RuntimeError("stop before decoding")))
    with pytest.raises(RuntimeError, match="stop before decoding"):
        enhance_file(photo, tmp_path / "out.png", model, model.device, on_note=notes.append)
    expected = plan_memory(model, TileSettings(), 6700, 9000, model.device)
    assert len(notes) == 1 and f"about {expected.gigabytes:.1f} GB of memory (full-resolution transform)" in notes[0]
    assert expected.gigabytes > 60e6 * 18 / 1e9 * 2  # more than twice the old flat figure


_PEAK_SCRIPT = textwrap.dedent(
    """
    import json, torch
    from pathlib import Path
    torch.set_num_threads(1)
    from lumicap.inference import TileSettings, enhance_file, load_inference_model
    from lumicap.inference.memory import plan_memory
    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    work = Path({work!r})
    model = load_inference_model("default", "cpu")
    enhance_file(work / "tiny.png", work / "tiny-out.png", model, model.device)
    plan = plan_memory(model, TileSettings(), {height}, {width}, model.device)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    base = status("VmRSS")
    enhance_file(work / "photo.png", work / "out.png", model, model.device)
    print(json.dumps({{"measured": status("VmHWM") - base, "estimate": plan.bytes, "path": plan.path}}))
    """
)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's resettable peak RSS")
def test_the_estimate_covers_a_real_processs_peak(tmp_path):
    """The shipped default on a 3 MP photo (its full-resolution transform): the peak RSS growth of a real
    enhance_file call stays under lumicap's estimate, and the estimate is not wildly above it either."""
    height, width = 1500, 2000
    _photo(tmp_path / "photo.png", height, width)
    _photo(tmp_path / "tiny.png", 48, 64)
    script = _PEAK_SCRIPT.format(work=str(tmp_path), height=height, width=width)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["path"] == "transform"
    assert result["measured"] <= result["estimate"], result
    assert result["measured"] >= 0.35 * result["estimate"], result


def test_cuda_counts_only_the_hosts_share():
    from lumicap.inference.memory import estimate_bytes

    class Named:
        name = "retinexformer"

    cpu = estimate_bytes(Named(), "whole", 3000, 4000, torch.device("cpu"))
    cuda = estimate_bytes(Named(), "whole", 3000, 4000, torch.device("cuda"))
    assert cpu > 12e6 * 2900 and cuda < 12e6 * 20 + 200e6  # the photo (and fixed slack) only
