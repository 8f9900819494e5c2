"""Broken training configs stop `lumicap train` with exit 2 and one stderr line naming the key, before any
run folder is created (a typo must not leave half-made runs behind)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from _reliability_support import assert_one_line_error, tiny_train_config
from reliability.fuzzrun import run_cli


@pytest.fixture(scope="module")
def valid_config(tmp_path_factory) -> Path:
    return tiny_train_config(tmp_path_factory.mktemp("config"))


def _variant(valid: Path, tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(valid.read_text())
    data["output_dir"] = str(tmp_path / "runs")
    edit(data)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _no_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert not runs.exists() or not list(runs.rglob("run.json")), "a run folder was created for a broken config"


BROKEN_FILES = {
    "unknown top-level key": (lambda d: d.update(modle={"name": "iat"}), ["modle: unknown key"]),
    "unknown nested key": (lambda d: d["train"].update(sed=1), ["train.sed"]),
    "unknown stage key": (lambda d: d["stages"][0].update(patchsize=16), ["stages.0.patchsize"]),
    "wrong type": (lambda d: d["train"].update(seed="zero"), ["train.seed", "int"]),
    "wrong type in a list": (lambda d: d["stages"][0].update(batch_size=[2]), ["stages.0.batch_size"]),
    "value outside a choice": (lambda d: d["train"].update(amp="fp8"), ["train.amp", "bf16"]),
    "negative iterations": (lambda d: d["stages"][0].update(iterations=-5), ["stages.0.iterations", "-5"]),
    "zero batch size": (lambda d: d["stages"][0].update(batch_size=0), ["stages.0.batch_size"]),
    "negative learning rate": (lambda d: d["stages"][0].setdefault("optimizer", {}).update(lr=-1e-4), ["stages.0.optimizer.lr"]),
    "negative max_iters": (lambda d: d["train"].update(max_iters=-3), ["train.max_iters"]),
    "bad model name": (lambda d: d["model"].update(name="retinexformerr"), ["model.name", "retinexformerr"]),
    "missing required key": (lambda d: d.pop("stages"), ["stages"]),
    "unknown loss": (lambda d: d["stages"][0].update(losses={"l3": 1.0}), ["stages.0.losses.l3"]),
    "missing data root": (lambda d: d["data"].update(root="/no/such/dataset"), ["data.root", "/no/such/dataset"]),
    "missing teacher": (lambda d: d.update(mfr={"enabled": True, "teacher": "/no/such/teacher"}), ["mfr.teacher"]),
    "missing base file": (lambda d: d.update(base="nowhere.yaml"), ["nowhere.yaml"]),
}


@pytest.mark.parametrize("case", list(BROKEN_FILES))
def test_broken_config_file(valid_config, tmp_path, case):
    edit, expected = BROKEN_FILES[case]
    path = _variant(valid_config, tmp_path, edit)
    assert_one_line_error(*run_cli(["train", str(path), "--no-progress"]), *expected)
    _no_runs(tmp_path)


BROKEN_OVERRIDES = {
    "unknown key": (["train.sed=1"], ["train.sed"]),
    "wrong type": (["stages.main.batch_size=two"], ["stages.0.batch_size"]),
    "negative iterations": (["stages.0.iterations=-1"], ["stages.0.iterations"]),
    "no equals sign": (["train.seed"], ["train.seed", "key=value"]),
    "unknown stage": (["stages.warmup.iterations=3"], ["stages.warmup"]),
    "bad model name": (["model.name=nope"], ["model.name", "nope"]),
}


@pytest.mark.parametrize("case", list(BROKEN_OVERRIDES))
def test_broken_override(valid_config, tmp_path, case):
    overrides, expected = BROKEN_OVERRIDES[case]
    argv = ["train", str(valid_config), *overrides, f"output_dir={tmp_path / 'runs'}", "--no-progress"]
    assert_one_line_error(*run_cli(argv), *expected)
    _no_runs(tmp_path)


def test_missing_config_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert_one_line_error(*run_cli(["train", str(missing)]), str(missing), "not found")


@pytest.mark.parametrize("what", ["folder", "binary"])
def test_unreadable_config_path(tmp_path, what):
    path = tmp_path / "config.yaml"
    if what == "folder":
        path.mkdir()
    else:
        path.write_bytes(bytes(range(256)))
    assert_one_line_error(*run_cli(["train", str(path)]), str(path), "cannot read the config file")


def test_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: {name: iat\nstages: [\n")
    assert_one_line_error(*run_cli(["train", str(path)]), str(path), "YAML")


def test_negative_max_iters_flag(valid_config):
    assert_one_line_error(*run_cli(["train", str(valid_config), "--max-iters", "-2"]), "--max-iters")
