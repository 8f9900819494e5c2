"""`lumicap enhance` under hostile or careless use: an output that is another input, odd tiling options,
names with newlines, broken captions files, partial files of a killed run, --out equal to the input folder,
very large photos. Tiny registered network saved as .safetensors + sidecar; images of a few hundred pixels."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _reliability_support import assert_one_line_error
from reliability.fuzzrun import run_cli


def _photo(path: Path, seed: int = 0, size=(20, 28)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 90, size=(*size, 3), dtype=np.uint8)).save(path, quality=95)
    return path


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _enhance(*args) -> tuple:
    return run_cli(["enhance", *map(str, args), "--device", "cpu", "--no-progress"])


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_an_output_that_is_another_input_refuses_the_whole_batch(tmp_path, tiny_model, overwrite):
    """`enhance d/a.png d/a.jpg --out d --format jpg`: a.png's output is the input d/a.jpg."""
    folder = tmp_path / "d"
    _photo(folder / "a.png", seed=0)
    _photo(folder / "a.jpg", seed=1)
    before = _snapshot(folder)

    result = _enhance(folder / "a.png", folder / "a.jpg", "--out", folder, "--format", "jpg", "--model", tiny_model,
                      *(["--overwrite"] if overwrite else []))

    line = assert_one_line_error(*result, "a.jpg", "nothing was written")
    assert "a.png" in line
    assert _snapshot(folder) == before  # no output written, no input replaced, no temporary left


def test_an_output_that_is_a_link_to_an_input_is_refused(tmp_path, tiny_model):
    photos, out = tmp_path / "in", tmp_path / "out"
    _photo(photos / "a.png")
    out.mkdir()
    os.link(photos / "a.png", out / "a.png")  # the same file under the output's name
    before = _snapshot(photos)
    assert_one_line_error(*_enhance(photos / "a.png", "--out", out, "--overwrite", "--model", tiny_model), "a.png")
    assert _snapshot(photos) == before


def test_out_equal_to_the_input_folder_says_so(tmp_path, tiny_model):
    folder = tmp_path / "photos"
    _photo(folder / "a.png")
    line = assert_one_line_error(*_enhance(folder, "--out", folder, "--model", tiny_model), "input folder")
    assert "use -r" not in line


def test_tile_overlap_larger_than_half_an_automatic_tile_still_enhances_every_photo(tmp_path, tiny_model):
    photos, out = tmp_path / "in", tmp_path / "out"
    for i in range(2):
        _photo(photos / f"p{i}.png", seed=i)
    rc, stdout, err, tb = _enhance(photos, "--out", out, "--max-megapixels", "0.0001", "--tile-overlap", "300",
                                   "--model", tiny_model)
    assert tb is None and rc == 0, err
    assert "enhanced 2 images" in stdout
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["p0.png", "p1.png"]


def test_a_name_with_a_newline_gives_one_line_with_the_reason(tmp_path, tiny_model):
    photos, out = tmp_path / "in", tmp_path / "out"
    _photo(photos / "good.png")
    forged = photos / "x.png\nlumicap: error: forged.png"
    forged.write_bytes(b"not an image at all")

    rc, stdout, err, tb = _enhance(photos, "--out", out, "--model", tiny_model)

    assert tb is None and rc == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines  # no forged second line
    assert lines[0].startswith("lumicap: error: ") and "\\n" in lines[0]
    assert "not an image file" in lines[0]  # the reason after the name survives
    assert (out / "good.png").is_file()


def test_a_broken_captions_file_is_refused_before_any_photo_is_enhanced(tmp_path, tiny_model):
    from lumicap.teacher import save_tiny_teacher

    teacher = save_tiny_teacher(tmp_path / "teacher")
    photos, out = tmp_path / "in", tmp_path / "out"
    _photo(photos / "a.png")
    out.mkdir()
    (out / "captions.json").write_text("my notes, not JSON")

    assert_one_line_error(*_enhance(photos, "--out", out, "--caption", "--teacher", teacher, "--model", tiny_model),
                          "captions.json")
    assert sorted(p.name for p in out.iterdir()) == ["captions.json"]  # no work done and thrown away
    assert (out / "captions.json").read_text() == "my notes, not JSON"

    (out / "captions.json").write_text("[1, 2]")  # JSON, but not captions
    assert_one_line_error(*_enhance(photos, "--out", out, "--caption", "--teacher", teacher, "--model", tiny_model),
                          "captions.json", "list")


def test_a_rerun_with_caption_captions_the_outputs_it_keeps(tmp_path, tiny_model):
    from lumicap.teacher import save_tiny_teacher

    teacher = save_tiny_teacher(tmp_path / "teacher")
    photos, out = tmp_path / "in", tmp_path / "out"
    _photo(photos / "a.png")
    rc, _, err, tb = _enhance(photos, "--out", out, "--model", tiny_model)  # first run: no captions
    assert tb is None and rc == 0, err
    enhanced = (out / "a.png").read_bytes()

    rc, stdout, err, tb = _enhance(photos, "--out", out, "--caption", "--teacher", teacher, "--model", tiny_model)

    assert tb is None and rc == 0, err
    assert "skipped 1" in stdout
    assert (out / "a.png").read_bytes() == enhanced  # kept, not redone
    captions = json.loads((out / "captions.json").read_text())
    assert set(captions) == {"a"} and set(captions["a"]) == {"input", "enhanced"}


def test_partial_files_of_a_killed_run_are_removed_on_the_next_run(tmp_path, tiny_model):
    photos, out = tmp_path / "in", tmp_path / "out"
    _photo(photos / "a.png")
    # A writer SIGKILLed inside write_image (Pillow's save is where the kill lands) leaves its temporary file.
    killer = (
        "import os, signal, sys, torch\n"
        "from PIL import Image\n"
        "from lumicap.data.io import write_image\n"
        "Image.Image.save = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
        "write_image(sys.argv[1], torch.zeros(3, 4, 4))\n"
    )
    proc = subprocess.run([sys.executable, "-c", killer, str(out / "a.png")], capture_output=True)
    assert proc.returncode == -9
    (left,) = [p for p in out.iterdir() if p.name.endswith(".part")]
    live = out / f".b.lumicap-{os.getpid()}-abc.part"  # a live writer's temporary must stay
    live.write_bytes(b"being written")

    rc, stdout, err, tb = _enhance(photos, "--out", out, "--model", tiny_model)

    assert tb is None and rc == 0, err
    assert not left.exists() and live.exists()
    assert "removed 1 partial file" in stdout
    assert (out / "a.png").is_file()


def test_a_very_large_photo_is_announced_before_it_is_read(tmp_path, tiny_model, monkeypatch):
    from lumicap.inference import batch

    monkeypatch.setattr(batch, "LARGE_IMAGE_PIXELS", 500, raising=False)  # stands in for 50 MP: 20x28 = 560 pixels
    photos, out = tmp_path / "in", tmp_path / "out"
    _photo(photos / "big.png")
    rc, stdout, err, tb = _enhance(photos, "--out", out, "--model", tiny_model)
    assert tb is None and rc == 0, err
    (note,) = [line for line in err.splitlines() if line.strip()]
    assert note.startswith("lumicap: note: ") and "big.png" in note and "28x20" in note and "GB of memory" in note
