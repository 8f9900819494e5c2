"""`lumicap caption` end to end on LOL eval15 photos with a tiny teacher (skips without the shared data)."""

from __future__ import annotations

import pytest
import torch

from lumicap.cli import main
from lumicap.data.io import read_image
from lumicap.teacher import ClipCapTeacher, save_tiny_teacher


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return save_tiny_teacher(tmp_path_factory.mktemp("caption-cli"), "mlp", seed=5)


@pytest.fixture
def lol_images(shared_data):
    files = sorted((shared_data / "lol-v1" / "eval15" / "low").glob("*.png"))[:2]
    assert len(files) == 2
    return files


def run_cli(capsys, *argv):
    code = main(["caption", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_captions_each_image_like_the_api(capsys, teacher_dir, lol_images):
    code, lines, _ = run_cli(capsys, *lol_images, "--teacher", teacher_dir, "--max-tokens", "8", "--device", "cpu")
    assert code == 0 and len(lines) == 2
    teacher = ClipCapTeacher.from_pretrained(teacher_dir)
    for line, path in zip(lines, lol_images):
        name, caption = line.split("\t")
        assert name == str(path)
        assert caption == teacher.caption(read_image(path).unsqueeze(0), max_tokens=8)[0]


def test_folder_input_and_beam_search(capsys, teacher_dir, shared_data):
    folder = shared_data / "lol-v1" / "eval15" / "high"
    code, lines, _ = run_cli(capsys, folder, "--teacher", teacher_dir, "--beam", "--max-tokens", "4", "--device", "cpu")
    assert code == 0 and len(lines) == len(list(folder.glob("*.png")))
    assert all(len(line.split("\t")) == 2 for line in lines)


def test_enhance_shows_input_and_enhanced_captions(capsys, teacher_dir, lol_images, tmp_path):
    from lumicap.inference.loading import save_inference_model
    from lumicap.models import build_model

    from PIL import Image

    torch.manual_seed(0)
    model_path, _ = save_inference_model(tmp_path / "iat.safetensors", "iat", build_model("iat").state_dict())
    small = tmp_path / "small.png"  # a quarter-size crop keeps the CPU enhancement pass short
    Image.open(lol_images[0]).crop((200, 100, 350, 200)).save(small)
    code, lines, _ = run_cli(
        capsys, small, "--teacher", teacher_dir, "--enhance", model_path, "--max-tokens", "6", "--device", "cpu"
    )
    assert code == 0 and len(lines) == 1
    name, before, after = lines[0].split("\t")
    teacher = ClipCapTeacher.from_pretrained(teacher_dir)
    assert before == teacher.caption(read_image(small).unsqueeze(0), max_tokens=6)[0]
    assert isinstance(after, str)


def test_errors_are_one_line(capsys, teacher_dir, tmp_path):
    code, lines, err = run_cli(capsys, tmp_path / "missing.png", "--teacher", teacher_dir)
    assert code == 2 and lines == [] and err.count("\n") == 1 and "missing.png" in err
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (20, 12), (40, 30, 20)).save(image)
    code, lines, err = run_cli(capsys, image, "--teacher", tmp_path / "no-teacher")
    assert code == 2 and err.startswith("lumicap: error:") and err.count("\n") == 1 and "no-teacher" in err
