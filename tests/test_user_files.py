"""Files and folders a user names that are not what a command expects (issue 25, items 7, 8, 10, 11): FIFOs and
devices are refused in one line instead of blocking forever or being called missing; every --out refuses to
replace a file without --overwrite; outputs that cannot be written are one line naming the folder (not a
traceback, not the hidden temporary file, not once per image); a model file and its sidecar are written both
or neither."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from _reliability_support import assert_one_line_error, tiny_train_config
from reliability.fuzzrun import run_cli, save_random_model

UNWRITABLE = Path("/proc/lumicap-test-out")  # refuses every write, even root's (tests run as root in CI)
needs_proc = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc as a folder nobody can write")
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")


def _photo(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 90, size=(16, 20, 3), dtype=np.uint8)).save(path)
    return path


def _without_blocking(argv: list[str], fifos: list[Path], seconds: float = 20.0):
    """``run_cli(argv)`` in a thread; if it is still blocked after ``seconds`` (reading a FIFO), the FIFOs get a
    writer so the thread ends, and the test fails."""
    result = {}
    thread = threading.Thread(target=lambda: result.update(answer=run_cli(argv)), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for fifo in fifos:  # give the blocked reader its end of file
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
        pytest.fail(f"lumicap {' '.join(argv[:2])} blocked on a FIFO for {seconds} s")
    return result["answer"]


# ------------------------------------------------------------------------------------- FIFOs and devices


@needs_fifo
def test_config_check_of_a_fifo_says_so_instead_of_blocking(tmp_path):
    fifo = tmp_path / "f.yaml"
    os.mkfifo(fifo)
    rc, out, err, tb = _without_blocking(["config", "check", str(fifo)], [fifo])
    assert tb is None and rc == 1, (out, err)
    assert "f.yaml" in out and "FIFO" in out and "not a regular file" in out


@needs_fifo
def test_config_check_of_a_folder_holding_a_fifo(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    config = tiny_train_config(tmp_path)
    (folder / "good.yaml").write_text(config.read_text())
    os.mkfifo(folder / "pipe.yaml")
    rc, out, err, tb = _without_blocking(["config", "check", str(folder)], [folder / "pipe.yaml"])
    assert tb is None and rc == 1, (out, err)
    assert "pipe.yaml: a FIFO (named pipe), not a regular file" in out
    assert "2 config file(s) checked: 1 ok, 1 with problems" in out


@needs_fifo
@pytest.mark.parametrize("source", ["/dev/zero", "fifo"])
def test_convert_of_a_device_or_fifo_is_not_called_missing(tmp_path, source):
    if source == "fifo":
        source = str(tmp_path / "weights.pt")
        os.mkfifo(source)
    rc, out, err, tb = _without_blocking(["convert", "iat", source, "--out", str(tmp_path / "m.safetensors")],
                                         [Path(source)] if "weights" in source else [])
    line = assert_one_line_error(rc, out, err, tb, "not a regular file")
    assert "no such file" not in line  # before: "/dev/zero: no such file"


@needs_fifo
def test_a_json_file_that_is_a_fifo_is_refused(tmp_path):
    """Every JSON file lumicap reads goes through one reader (captions here): a FIFO is refused, not waited on."""
    _photo(tmp_path / "pred" / "a.png")
    captions = tmp_path / "captions.json"
    os.mkfifo(captions)
    rc, out, err, tb = _without_blocking(["report", str(tmp_path / "pred"), "--captions", str(captions),
                                          "--out", str(tmp_path / "rep")], [captions])
    assert_one_line_error(rc, out, err, tb, "captions.json", "not a regular file")


# ----------------------------------------------------------------------------------- --out and overwrite


def test_config_schema_out_refuses_to_replace_a_file(tmp_path):
    mine = tmp_path / "mine.json"
    mine.write_text("my notes")
    assert_one_line_error(*run_cli(["config", "schema", "--out", str(mine)]), "already exists", "--overwrite")
    assert mine.read_text() == "my notes"  # before: replaced
    rc, _, err, tb = run_cli(["config", "schema", "--out", str(mine), "--overwrite"])
    assert tb is None and rc == 0, err
    assert mine.read_text().startswith("{") and not list(tmp_path.glob(".*part"))


@needs_proc
@pytest.mark.parametrize("command", ["export", "convert", "eval", "compare", "schema", "enhance", "report"])
def test_an_out_that_cannot_be_written_is_one_line(tmp_path, command):
    model = save_random_model(tmp_path / "model")
    photo = _photo(tmp_path / "pred" / "a.png")
    _photo(tmp_path / "gt" / "a.png", seed=1)
    argv = {
        "export": ["export", str(model), "--format", "onnx", "--out", str(UNWRITABLE / "m.onnx")],
        "convert": ["convert", "iat", str(model), "--out", str(UNWRITABLE / "m.safetensors")],
        "eval": ["eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(UNWRITABLE)],
        "compare": ["compare", str(tmp_path), "--out", str(UNWRITABLE)],
        "schema": ["config", "schema", "--out", str(UNWRITABLE / "s.json")],
        "enhance": ["enhance", str(photo), "--model", str(model), "--out", str(UNWRITABLE), "--no-progress"],
        "report": ["report", str(tmp_path / "pred"), "--out", str(UNWRITABLE)],
    }[command]
    if command == "export":
        pytest.importorskip("onnx")
    line = assert_one_line_error(*run_cli(argv), str(UNWRITABLE))
    assert ".part" not in line


def test_an_out_that_is_an_existing_file_is_said_once_before_any_work(tmp_path):
    model = save_random_model(tmp_path / "model")
    photos = [_photo(tmp_path / "in" / f"p{i}.png", seed=i) for i in range(3)]
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")
    rc, out, err, tb = run_cli(["enhance", str(tmp_path / "in"), "--model", str(model), "--out", str(taken), "--no-progress"])
    assert_one_line_error(rc, out, err, tb, "taken", "is a file, not a folder")  # before: [Errno 17] per image
    assert "model:" not in out and taken.read_text() == "a file, not a folder" and len(photos) == 3


def test_an_unwritable_folder_is_named_not_the_hidden_temporary(tmp_path, monkeypatch):
    """The writer's error names the folder the user chose (before: ``/ro/.a.lumicap-123-x.part``)."""
    import torch

    from lumicap import files
    from lumicap.data.io import write_image
    from lumicap.errors import LumicapError

    real_open = os.open

    def refused(path, flags, *args, **kwargs):  # a read-only folder (root is not refused by a chmod)
        if flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied", str(path))  # names the hidden temporary, as the OS does
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(files.os, "open", refused)
    with pytest.raises(LumicapError) as info:
        write_image(tmp_path / "ro" / "a.png", torch.zeros(3, 4, 4))
    assert f"cannot write into the folder {tmp_path / 'ro'} (Permission denied)" in str(info.value)
    assert ".part" not in str(info.value)


def test_an_os_error_reaching_the_command_line_is_one_line(monkeypatch):
    """The last net: a refusal no command worded itself still names its file (or the folder of a temporary)."""
    from lumicap.commands import models

    def refuses(args):
        raise PermissionError(13, "Permission denied", "/data/out/.table.md.x1y2.part")

    monkeypatch.setattr(models, "run", refuses)  # the parser is built per call, with the module's run
    rc, out, err, tb = run_cli(["models"])
    assert_one_line_error(rc, out, err, tb, "cannot write into the folder /data/out (Permission denied)")


def test_convert_writes_the_model_and_its_sidecar_both_or_neither(tmp_path):
    model = save_random_model(tmp_path / "model")
    target = tmp_path / "X.safetensors"
    (tmp_path / "X.json").mkdir()  # the sidecar's name is taken by a folder
    assert_one_line_error(*run_cli(["convert", "iat", str(model), "--out", str(target), "--overwrite"]), "X.json")
    assert not target.exists()  # before: X.safetensors written, then a traceback, no sidecar

    from lumicap.errors import LumicapError
    from lumicap.inference import save_inference_model

    state = {"w": __import__("torch").zeros(2)}
    with pytest.raises(LumicapError, match="not a file"):
        save_inference_model(target, "iat", state, overwrite=True)
    assert not target.exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


@pytest.mark.parametrize("fmt", ["onnx", "safetensors"])
def test_export_of_an_onnx_file_is_one_line(tmp_path, fmt):
    """Before: an AttributeError traceback (the ONNX runner has no PyTorch network to export)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    dims = ["batch", 3, "height", "width"]
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["enhanced"])], "identity",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("enhanced", TensorProto.FLOAT, dims)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "m.onnx"))
    out = tmp_path / f"x.{fmt}"
    assert_one_line_error(*run_cli(["export", str(tmp_path / "m.onnx"), "--format", fmt, "--out", str(out)]),
                          "already an ONNX file")
    assert not out.exists()


# --------------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("model, override, expected", [
    ("rctnet", "encoder_widths=[1]", "needs at least 4 widths"),
    ("retinexformer", "num_blocks=[1]", "num_blocks needs 3 counts"),
    ("retinexformer", "num_blocks=[]", "num_blocks needs 3 counts"),
])
def test_network_arguments_that_do_not_fit_are_explained(tmp_path, model, override, expected):
    """Before: 'list index out of range' (and for RCTNet a traceback in the first training step)."""
    config = tiny_train_config(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["model"] = {"name": model}
    config.write_text(yaml.safe_dump(data))
    rc, out, err, tb = run_cli(["train", str(config), f"model.overrides.{override}", "--max-iters", "1", "--no-progress"])
    line = assert_one_line_error(rc, out, err, tb, expected)
    assert "index out of range" not in line
    assert not (tmp_path / "runs").exists()
