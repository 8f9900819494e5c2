"""Every path that loads a weight file refuses pickles that would run code, and reports truncated or
wrong-architecture files in one line: training resume, model.init_weights, `lumicap enhance --model`, the
teacher's ClipCap, OpenAI CLIP and Hugging Face files, LPIPS/AlexNet weights and VGG weights (the weights
cache: test_no_overwrite)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from _reliability_support import (
    assert_one_line_error,
    copy_run,
    shared_stopped_run,
    truncate,
    write_code_pickle,
    write_code_torchscript,
)
from lumicap.errors import WeightsError
from reliability.fuzzrun import run_cli


def test_the_crafted_files_do_run_code_when_loaded_unsafely(tmp_path):
    """Guards the tests below: without weights_only these files really create their marker."""
    import pickle
    import zipfile

    marker = tmp_path / "ran"
    torch.load(write_code_pickle(tmp_path / "a.pt", marker), weights_only=False)
    assert marker.exists()
    marker.unlink()
    torch.load(write_code_pickle(tmp_path / "b.pt", marker, legacy=True), weights_only=False)
    assert marker.exists()
    marker.unlink()
    with zipfile.ZipFile(write_code_torchscript(tmp_path / "c.pt", marker)) as archive:
        pickle.loads(archive.read("ViT-B-32/data.pkl"))
    assert marker.exists()


# ------------------------------------------------------------------------------------- training resume
@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> Path:
    return shared_stopped_run(tmp_path_factory)


@pytest.mark.parametrize("damage", ["code-pickle", "legacy-code-pickle", "truncated", "wrong-architecture", "not-a-checkpoint"])
def test_resume_refuses_bad_last_checkpoint(stopped_run, tmp_path, damage):
    run = copy_run(stopped_run, tmp_path / "run")
    last = run / "checkpoints" / "last.pt"
    marker = tmp_path / "ran"
    expected = str(last)
    if damage == "code-pickle":
        write_code_pickle(last, marker)
    elif damage == "legacy-code-pickle":
        write_code_pickle(last, marker, legacy=True)
    elif damage == "truncated":
        truncate(last, 0.6)
    elif damage == "wrong-architecture":
        state = torch.load(last, weights_only=True)
        key = next(iter(state["model"]))
        state["model"][key] = torch.zeros(3, 1, 7)  # same config, weights of another shape
        torch.save(state, last)
        expected = key
    else:
        torch.save({"weight": torch.zeros(2)}, last)
    before = last.read_bytes()

    line = assert_one_line_error(*run_cli(["train", "--resume", str(run), "--no-progress"]), expected)

    assert not marker.exists(), line
    assert last.read_bytes() == before  # the evidence is left as it was, not overwritten


@pytest.mark.parametrize("damage", ["code-pickle", "truncated", "wrong-architecture"])
def test_training_init_weights_refused(stopped_run, tmp_path, damage):
    """model.init_weights (fine-tuning start) loads through the same safe path."""
    from _reliability_support import tiny_train_config

    weights, marker = tmp_path / "init.pt", tmp_path / "ran"
    if damage == "code-pickle":
        write_code_pickle(weights, marker)
    else:
        state = torch.load(stopped_run / "checkpoints" / "best.pt", weights_only=True)["model"]
        if damage == "wrong-architecture":
            state.pop(sorted(state)[0])
        torch.save(state, weights)
        if damage == "truncated":
            truncate(weights, 0.5)
    config = tiny_train_config(tmp_path)
    argv = ["train", str(config), f"model.init_weights={weights}", "--no-progress"]
    assert_one_line_error(*run_cli(argv), str(weights))
    assert not marker.exists()


# ----------------------------------------------------------------------------- enhance --model CHECKPOINT
def _photo_dir(tmp_path: Path) -> Path:
    import numpy as np
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.full((16, 16, 3), 20, np.uint8)).save(folder / "dark.png")
    return folder


@pytest.mark.parametrize("damage", ["code-pickle", "legacy-code-pickle", "truncated", "wrong-architecture"])
def test_enhance_model_checkpoint_refused(stopped_run, tmp_path, damage):
    photos, out, marker = _photo_dir(tmp_path), tmp_path / "out", tmp_path / "ran"
    checkpoint = tmp_path / "model.pt"
    shutil.copy(stopped_run / "checkpoints" / "best.pt", checkpoint)
    if damage == "code-pickle":
        write_code_pickle(checkpoint, marker)
    elif damage == "legacy-code-pickle":
        write_code_pickle(checkpoint, marker, legacy=True)
    elif damage == "truncated":
        truncate(checkpoint, 0.5)
    else:
        state = torch.load(checkpoint, weights_only=True)
        state["config"]["model"]["overrides"] = {"type": "exposure"}  # the checkpoint now names another IAT
        torch.save(state, checkpoint)

    argv = ["enhance", str(photos), "--out", str(out), "--model", str(checkpoint), "--device", "cpu", "--no-progress"]
    assert_one_line_error(*run_cli(argv), str(checkpoint))

    assert not marker.exists()
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("damage", ["code-pickle", "truncated", "wrong-architecture"])
def test_enhance_name_with_weights_refused(tmp_path, damage):
    photos, marker = _photo_dir(tmp_path), tmp_path / "ran"
    weights = tmp_path / "weights.pth"
    if damage == "code-pickle":
        write_code_pickle(weights, marker)
    else:
        from lumicap.models import build_model

        torch.save(build_model("iat").state_dict(), weights)
        if damage == "truncated":
            truncate(weights, 0.5)
    model = "retinexformer" if damage == "wrong-architecture" else "iat"
    argv = ["enhance", str(photos), "--out", str(tmp_path / "out"), "--model", model, "--weights", str(weights),
            "--device", "cpu", "--no-progress"]

    assert_one_line_error(*run_cli(argv), str(weights))
    assert not marker.exists()


def test_enhance_truncated_safetensors_refused(tmp_path):
    from lumicap.inference import save_inference_model
    from lumicap.models import build_model

    path, _ = save_inference_model(tmp_path / "m.safetensors", "iat", build_model("iat").state_dict())
    truncate(path, 0.5)
    argv = ["enhance", str(_photo_dir(tmp_path)), "--out", str(tmp_path / "out"), "--model", str(path), "--no-progress"]
    assert_one_line_error(*run_cli(argv), str(path))


# ------------------------------------------------------------------------------------------- teacher
@pytest.fixture(scope="module")
def teachers(tmp_path_factory) -> dict[str, Path]:
    from lumicap.teacher import save_tiny_teacher

    root = tmp_path_factory.mktemp("teachers")
    return {
        "hf": save_tiny_teacher(root / "hf"),
        "openai": save_tiny_teacher(root / "openai", clip_format="openai"),
    }


def _load_teacher_error(folder: Path) -> str:
    from lumicap.teacher import MultimodalFeatureLoss

    with pytest.raises(WeightsError) as info:
        MultimodalFeatureLoss.from_pretrained(str(folder))
    message = str(info.value)
    assert "\n" not in message
    return message


def _damage_clipcap(path: Path, damage: str, marker: Path) -> None:
    if damage == "code-pickle":
        write_code_pickle(path, marker)
    elif damage == "truncated":
        truncate(path, 0.5)
    else:
        state = torch.load(path, weights_only=True)
        weight = state["clip_project.model.0.weight"]
        state["clip_project.model.0.weight"] = torch.zeros(weight.shape[0], weight.shape[1] + 5)
        torch.save(state, path)


@pytest.mark.parametrize("damage", ["code-pickle", "truncated", "wrong-architecture"])
def test_teacher_clipcap_file_refused(teachers, tmp_path, damage):
    folder = shutil.copytree(teachers["hf"], tmp_path / "teacher")
    marker = tmp_path / "ran"
    _damage_clipcap(folder / "clipcap.pt", damage, marker)
    message = _load_teacher_error(folder)
    assert "clipcap.pt" in message
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["code-pickle", "code-torchscript", "truncated", "wrong-architecture"])
def test_teacher_openai_clip_file_refused(teachers, tmp_path, damage):
    folder = shutil.copytree(teachers["openai"], tmp_path / "teacher")
    clip, marker = folder / "clip_visual.pt", tmp_path / "ran"
    if damage == "code-pickle":
        write_code_pickle(clip, marker)
    elif damage == "code-torchscript":
        write_code_torchscript(clip, marker)
    elif damage == "truncated":
        truncate(clip, 0.5)
    else:
        state = torch.load(clip, weights_only=True)
        state["visual.proj"] = torch.zeros(5, 3, dtype=state["visual.proj"].dtype)
        torch.save(state, clip)
    message = _load_teacher_error(folder)
    assert "clip_visual.pt" in message
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["code-pickle", "truncated", "wrong-architecture"])
def test_teacher_hugging_face_folder_refused(teachers, tmp_path, damage):
    folder = shutil.copytree(teachers["hf"], tmp_path / "teacher")
    marker = tmp_path / "ran"
    safetensors = folder / "clip" / "model.safetensors"
    if damage == "code-pickle":
        safetensors.unlink()  # the folder now offers only a torch pickle, as old HF checkpoints do
        write_code_pickle(folder / "clip" / "pytorch_model.bin", marker)
        name = "pytorch_model.bin"
    elif damage == "truncated":
        truncate(safetensors, 0.5)
        name = "model.safetensors"
    else:
        from safetensors.torch import load_file, save_file

        state = load_file(str(safetensors))
        key = next(k for k in state if k.startswith("vision_model.encoder.layers.0.mlp.fc2.weight"))
        state[key] = torch.zeros(3, 3)
        save_file(state, str(safetensors))
        name = "model.safetensors"
    message = _load_teacher_error(folder)
    assert name in message
    assert not marker.exists()


def test_training_with_a_code_pickle_teacher_stops_in_one_line(teachers, tmp_path):
    from _reliability_support import tiny_train_config

    folder = shutil.copytree(teachers["hf"], tmp_path / "teacher")
    marker = tmp_path / "ran"
    write_code_pickle(folder / "clipcap.pt", marker)
    config = tiny_train_config(tmp_path)
    argv = ["train", str(config), "mfr.enabled=true", f"mfr.teacher={folder}", "--no-progress"]
    assert_one_line_error(*run_cli(argv), "clipcap.pt")
    assert not marker.exists()


# --------------------------------------------------------------------------------------- LPIPS / AlexNet
@pytest.mark.parametrize("which", ["alex", "heads"])
@pytest.mark.parametrize("damage", ["code-pickle", "truncated", "wrong-architecture"])
def test_lpips_weights_refused(tmp_path, which, damage):
    from lumicap.metrics.lpips import load_lpips
    from reliability.fuzzrun import save_random_lpips

    alex, heads = save_random_lpips(tmp_path / "lpips")
    target, marker = (alex if which == "alex" else heads), tmp_path / "ran"
    if damage == "code-pickle":
        write_code_pickle(target, marker)
    elif damage == "truncated":
        truncate(target, 0.5)
    else:
        state = torch.load(target, weights_only=True)
        key = sorted(state)[0]
        state[key] = torch.zeros(2, 2)
        torch.save(state, target)

    with pytest.raises(WeightsError) as info:
        load_lpips(alex, heads, download=False)
    assert str(target) in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


def test_eval_with_code_pickle_lpips_weights_reports_unavailable(tmp_path):
    """`lumicap eval --lpips` with a refused file measures PSNR/SSIM and says why LPIPS is missing, in one line."""
    import json

    import numpy as np
    from PIL import Image

    from reliability.fuzzrun import save_random_lpips

    alex, heads = save_random_lpips(tmp_path / "lpips")
    marker = tmp_path / "ran"
    write_code_pickle(alex, marker)
    for side in ("pred", "gt"):
        (tmp_path / side).mkdir()
        Image.fromarray(np.full((40, 40, 3), 90 if side == "gt" else 60, np.uint8)).save(tmp_path / side / "a.png")
    rc, out, err, tb = run_cli([
        "eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(tmp_path / "res"),
        "--lpips", "--alex-weights", str(alex), "--lpips-weights", str(heads), "--no-download", "--device", "cpu",
    ])
    assert tb is None and rc == 0 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("LPIPS unavailable:") and str(alex) in lines[0]
    assert json.loads((tmp_path / "res" / "summary.json").read_text())["protocol"]["lpips"].startswith("unavailable")
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------- VGG
@pytest.mark.parametrize("damage", ["code-pickle", "truncated", "wrong-architecture"])
def test_vgg_weights_refused(tmp_path, damage):
    from lumicap.vgg import VGGFeatures, require_vgg

    path, marker = tmp_path / "vgg19.pth", tmp_path / "ran"
    if damage == "code-pickle":
        write_code_pickle(path, marker)
    elif damage == "truncated":
        torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64)}, path)
        truncate(path, 0.5)
    else:
        torch.save({"features.0.weight": torch.zeros(64, 1, 3, 3), "features.0.bias": torch.zeros(64)}, path)

    for load in (lambda: require_vgg("vgg19", path), lambda: VGGFeatures("vgg19").load_checkpoint(path)):
        with pytest.raises(WeightsError) as info:
            load()
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


def test_training_with_code_pickle_vgg_weights_stops_in_one_line(tmp_path):
    from _reliability_support import tiny_train_config

    weights, marker = tmp_path / "vgg19.pth", tmp_path / "ran"
    write_code_pickle(weights, marker)
    config = tiny_train_config(tmp_path)
    argv = ["train", str(config), "stages.main.losses={l1: 1.0, vgg19: 0.1}", f"train.perceptual_weights={weights}", "--no-progress"]
    assert_one_line_error(*run_cli(argv), str(weights))
    assert not marker.exists()
