"""`lumicap enhance` end to end on small images with a tiny registered network saved in the real formats."""

from __future__ import annotations

import json

import numpy as np
import png  # pypng: writes true 16-bit PNGs independently of lumicap's writer
import pytest
import torch
from PIL import Image

from _enhance_support import TINY_NAME, TinyConv, register_tiny, save_tiny_checkpoint, save_tiny_safetensors, tiny_state
from lumicap.cli import main


def _photo(height=40, width=56, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 90, size=(height, width, 3), dtype=np.uint8)


def _save_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _expected(array: np.ndarray, seed=0) -> np.ndarray:
    """The tiny network applied directly (no lumicap inference code), as 8-bit levels."""
    net = TinyConv()
    net.load_state_dict(tiny_state(seed=seed))
    scale = 65535.0 if array.dtype == np.uint16 else 255.0
    x = torch.from_numpy(array.astype(np.float32) / scale).permute(2, 0, 1)[None]
    with torch.no_grad():
        y = net(x)[0].permute(1, 2, 0).numpy()
    return y


def _enhance(*args) -> int:
    return main(["enhance", *map(str, args), "--device", "cpu", "--no-progress"])


def test_folder_with_one_corrupt_file(tmp_path, tiny_model, capsys):
    src = tmp_path / "in"
    photos = {name: _photo(seed=i) for i, name in enumerate(["a", "b", "c"])}
    for name, array in photos.items():
        _save_png(src / f"{name}.png", array)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    out = tmp_path / "out"

    code = _enhance(src, "--out", out, "--model", tiny_model)

    captured = capsys.readouterr()
    assert code != 0
    error_lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(error_lines) == 1, captured.err
    assert "broken.png" in error_lines[0] and "Traceback" not in captured.err
    assert "enhanced 3 images" in captured.out and "1 failed" in captured.out
    for name, array in photos.items():
        written = np.asarray(Image.open(out / f"{name}.png")).astype(np.float32) / 255.0
        assert np.abs(written - _expected(array)).max() <= 0.5 / 255 + 1e-6
    assert not (out / "broken.png").exists()


def test_16_bit_input_gives_16_bit_output(tmp_path, tiny_model):
    rng = np.random.default_rng(3)
    array = rng.integers(0, 20000, size=(24, 32, 3), dtype=np.uint16)
    src = tmp_path / "deep.png"
    with open(src, "wb") as fh:
        png.Writer(32, 24, greyscale=False, bitdepth=16).write(fh, array.reshape(24, 32 * 3))
    _save_png(tmp_path / "shallow.png", _photo(24, 32))
    out = tmp_path / "out"

    assert _enhance(src, tmp_path / "shallow.png", "--out", out, "--model", tiny_model) == 0

    width, height, rows, info = png.Reader(filename=str(out / "deep.png")).asDirect()
    assert info["bitdepth"] == 16
    written = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(24, 32, 3)
    expected = _expected(array)
    assert np.abs(written / 65535.0 - expected).max() <= 0.5 / 65535 + 1e-6
    # Precision beyond 8 bits survived: most samples are not on the 8-bit grid (multiples of 257).
    assert np.mean(written % 257 != 0) > 0.9
    assert png.Reader(filename=str(out / "shallow.png")).asDirect()[3]["bitdepth"] == 8


def test_existing_outputs_are_skipped_unless_overwrite(tmp_path, tiny_model, capsys):
    src = _save_png(tmp_path / "in" / "a.png", _photo())
    _save_png(tmp_path / "in" / "b.png", _photo(seed=1))
    out = tmp_path / "out"
    out.mkdir()
    precious = out / "a.png"
    _save_png(precious, np.full((5, 5, 3), 7, np.uint8))
    before = precious.read_bytes()

    assert _enhance(tmp_path / "in", "--out", out, "--model", tiny_model) == 0
    text = capsys.readouterr().out
    assert precious.read_bytes() == before
    assert "enhanced 1 image" in text and "skipped 1" in text
    assert (out / "b.png").exists()

    # --overwrite redoes lumicap's own outputs, never a file it did not write (the user's a.png here).
    assert _enhance(src, "--out", out, "--model", tiny_model, "--overwrite") == 2
    assert precious.read_bytes() == before and "did not write" in capsys.readouterr().err
    precious.unlink()
    assert _enhance(tmp_path / "in", "--out", out, "--model", tiny_model, "--overwrite") == 0
    assert "enhanced 2 images" in capsys.readouterr().out  # its own b.png redone, a.png written
    written = np.asarray(Image.open(precious)).astype(np.float32) / 255.0
    assert np.abs(written - _expected(_photo())).max() <= 0.5 / 255 + 1e-6


def test_recursive_folders_keep_relative_paths_and_format(tmp_path, tiny_model):
    src = tmp_path / "in"
    _save_png(src / "top.png", _photo())
    _save_png(src / "trip" / "day1" / "night.png", _photo(seed=2))
    (src / "notes.txt").write_text("not an image")
    out = tmp_path / "out"

    assert _enhance(src, "--out", out, "--model", tiny_model, "--format", "jpg") == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg")) == ["top.jpg"]

    assert _enhance(src, "--out", out, "--model", tiny_model, "--format", "jpg", "-r") == 0
    assert (out / "trip" / "day1" / "night.jpg").is_file()
    assert Image.open(out / "trip" / "day1" / "night.jpg").format == "JPEG"


def test_jpeg_quality_is_the_one_asked_for(tmp_path, tiny_model, capsys):
    import io

    photo = _save_png(tmp_path / "in" / "p.png", _photo(48, 64, seed=5))
    sizes = {}
    for quality in (30, 95):
        out = tmp_path / f"q{quality}"
        assert _enhance(photo, "--out", out, "--model", tiny_model, "--format", "jpg", "--quality", quality) == 0
        sizes[quality] = (out / "p.jpg").stat().st_size
        # Pillow at the same quality from the same 8-bit levels gives the same bytes.
        levels = np.round(np.clip(_expected(_photo(48, 64, seed=5)), 0, 1) * 255).astype(np.uint8)
        again = io.BytesIO()
        Image.fromarray(levels).save(again, format="JPEG", quality=quality)
        decoded = np.asarray(Image.open(out / "p.jpg")).astype(int)
        assert np.abs(decoded - np.asarray(Image.open(again)).astype(int)).max() <= 1
    assert sizes[30] < sizes[95]
    with pytest.raises(SystemExit) as refused:  # a usage error, refused while parsing (lumicap.commands.options)
        _enhance(photo, "--out", tmp_path / "bad", "--model", tiny_model, "--format", "jpg", "--quality", 0)
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--quality: 0" in err


def test_output_folder_inside_the_input_folder_is_not_read_back(tmp_path, tiny_model, capsys):
    src = tmp_path / "photos"
    _save_png(src / "a.png", _photo())
    out = src / "enhanced"
    for _ in range(2):
        assert _enhance(src, "-r", "--out", out, "--model", tiny_model) == 0
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png")) == ["a.png", "enhanced/a.png"]
    assert "skipped 1" in capsys.readouterr().out.splitlines()[-1]


def test_glob_input_and_exif_orientation(tmp_path, tiny_model):
    array = _photo(30, 50)
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # stored rotated: a viewer turns it 90 degrees clockwise
    image.save(tmp_path / "turned.jpg", exif=exif, quality=95)
    _save_png(tmp_path / "other.png", _photo(seed=4))
    out = tmp_path / "out"

    assert _enhance(str(tmp_path / "*.jpg"), "--out", out, "--model", tiny_model) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["turned.png"]  # beside the record
    assert Image.open(out / "turned.png").size == (30, 50)  # (width, height): rotated


def test_output_never_replaces_its_input(tmp_path, tiny_model, capsys):
    src = _save_png(tmp_path / "a.png", _photo())
    before = src.read_bytes()
    code = _enhance(src, "--out", tmp_path, "--model", tiny_model, "--overwrite")
    assert code != 0
    assert src.read_bytes() == before
    assert "replace the input" in capsys.readouterr().err


def test_missing_input_is_one_line_error(tmp_path, tiny_model, capsys):
    code = _enhance(tmp_path / "nope", "--out", tmp_path / "out", "--model", tiny_model)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "nope" in err[0]


# ------------------------------------------------------------------------------------------ model loading


def test_loads_checkpoint_name_plus_weights_and_prefers_ema(tmp_path, monkeypatch):
    from lumicap.inference import load_inference_model

    register_tiny(monkeypatch)
    checkpoint = save_tiny_checkpoint(tmp_path, seed=0, ema=True)
    model = load_inference_model(checkpoint, "cpu")
    assert model.name == TINY_NAME and model.metadata["weights"] == "ema"
    # EMA weights were saved from seed + 1.
    assert torch.equal(model.module.conv1.weight, tiny_state(seed=1)["conv1.weight"])

    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)
    save_tiny_checkpoint(tmp_path, seed=7).rename(run / "best.pt")
    from_run = load_inference_model(tmp_path / "run", "cpu")
    assert from_run.source.endswith("best.pt") and from_run.metadata["weights"] == "model"
    assert torch.equal(from_run.module.conv1.weight, tiny_state(seed=7)["conv1.weight"])

    weights = tmp_path / "bare.pth"
    torch.save({"state_dict": tiny_state(seed=5)}, weights)
    named = load_inference_model(TINY_NAME, "cpu", weights=weights)
    assert torch.equal(named.module.conv2.bias, tiny_state(seed=5)["conv2.bias"])


@pytest.mark.parametrize("problem", ["wrong_shape", "truncated", "no_sidecar", "pickle_code"])
def test_bad_model_files_are_one_line_errors(tmp_path, monkeypatch, capsys, problem):
    register_tiny(monkeypatch)
    image = _save_png(tmp_path / "a.png", _photo())
    if problem == "wrong_shape":
        model = save_tiny_safetensors(tmp_path, width=8)
        sidecar = model.with_suffix(".json")
        meta = json.loads(sidecar.read_text())
        meta["overrides"] = {"width": 4}  # file has width-8 convolutions
        sidecar.write_text(json.dumps(meta))
        expect = "do not fit model"
    elif problem == "truncated":
        model = save_tiny_safetensors(tmp_path)
        model.write_bytes(model.read_bytes()[:100])
        expect = "not a readable safetensors"
    elif problem == "no_sidecar":
        model = save_tiny_safetensors(tmp_path)
        model.with_suffix(".json").unlink()
        from safetensors.torch import save_file

        save_file(tiny_state(), str(model))  # no header record either
        expect = "no sidecar"
    else:
        model = tmp_path / "evil.pt"
        torch.save({"model": TinyConv(), "config": {}}, model)  # a pickled module, not tensors
        expect = "refused"
    code = _enhance(image, "--out", tmp_path / "out", "--model", model)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and expect in err[0] and str(model.name) in err[0]
    assert not (tmp_path / "out" / "a.png").exists()


def test_missing_default_model_says_so(tmp_path, monkeypatch, capsys):
    import lumicap.inference.loading as loading

    monkeypatch.setattr(loading, "ASSETS_DIR", tmp_path / "assets")  # a copy of lumicap without its assets
    image = _save_png(tmp_path / "a.png", _photo())
    assert _enhance(image, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "default model is not installed" in err[0]
    assert _enhance(image, "--out", tmp_path / "out", "--model", "retinexformer-lumicap") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shipped model 'retinexformer-lumicap' is not installed" in err[0]


def test_name_without_weights_and_unknown_name(tmp_path, monkeypatch, capsys):
    register_tiny(monkeypatch)
    image = _save_png(tmp_path / "a.png", _photo())
    assert _enhance(image, "--out", tmp_path / "o", "--model", TINY_NAME) == 2
    assert "needs weights" in capsys.readouterr().err
    assert _enhance(image, "--out", tmp_path / "o", "--model", "no_such_net") == 2
    assert "unknown model 'no_such_net'" in capsys.readouterr().err


def test_caption_writes_input_and_output_captions_the_report_shows(tmp_path, tiny_model, capsys):
    from lumicap.teacher import ClipCapTeacher, save_tiny_teacher

    teacher_dir = save_tiny_teacher(tmp_path / "teacher")
    src = tmp_path / "in"
    _save_png(src / "a.png", _photo(seed=0))  # one image: a tiny teacher still decodes 67 tokens per caption
    out = tmp_path / "out"
    assert _enhance(src, "--out", out, "--model", tiny_model, "--caption", "--teacher", teacher_dir) == 0

    captions = json.loads((out / "captions.json").read_text())
    assert sorted(captions) == ["a"]
    teacher = ClipCapTeacher.from_pretrained(teacher_dir)
    enhanced = torch.from_numpy(np.asarray(Image.open(out / "a.png")).astype(np.float32) / 255).permute(2, 0, 1)
    assert captions["a"]["enhanced"] == teacher.caption(enhanced[None])[0].strip()
    low = torch.from_numpy(_photo(seed=0).astype(np.float32) / 255).permute(2, 0, 1)
    assert captions["a"]["input"] == teacher.caption(low[None])[0].strip()

    assert main(["report", str(out), "--low", str(src), "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert "captions" in page and ">input</b>" in page


def test_caption_with_an_unavailable_teacher_is_one_line_error(tmp_path, tiny_model, capsys):
    image = _save_png(tmp_path / "a.png", _photo())
    code = _enhance(image, "--out", tmp_path / "out", "--model", tiny_model, "--caption", "--teacher", tmp_path / "none")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "teacher" in err[0]
