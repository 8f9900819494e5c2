"""`lumicap config show|check|schema`, and the JSON Schema agreeing with the pydantic schema on real files."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from lumicap.cli import main
from lumicap.config import load_config, to_dict

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))

TINY = """\
model: {name: iat}
data: {root: /nowhere/LOL-v1, layout: lol-v1}
stages:
  - {name: main, iterations: 10, batch_size: 2, patch_size: 16, losses: {l1: 1.0}}
"""


def test_show_prints_the_resolved_config_with_defaults(tmp_path, capsys):
    base = tmp_path / "exp.yaml"
    base.write_text(TINY)
    child = tmp_path / "child.yaml"
    child.write_text("base: exp.yaml\ntrain: {amp: bf16}\n")
    assert main(["config", "show", str(child), "stages.main.optimizer.lr=1e-4", "train.seed=7"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["train"]["amp"] == "bf16" and shown["train"]["seed"] == 7  # the base chain, then overrides
    assert shown["stages"][0]["optimizer"]["lr"] == pytest.approx(1e-4)
    assert shown["data"]["mixup_alpha"] == 1.2 and shown["eval"]["val_images"] == 3  # defaults filled in
    assert shown == to_dict(load_config(child, ["stages.0.optimizer.lr=0.0001", "train.seed=7"]))


def test_show_of_a_bad_config_is_the_usual_one_line_per_problem(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text(TINY)
    assert main(["config", "show", str(path), "train.amp=fp8", "train.seed=-1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith(f"lumicap: error: {path}: train.") for line in err), err


def test_check_every_shipped_config(capsys):
    assert main(["config", "check", str(REPO / "configs")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{len(CONFIGS)} config file(s) checked: {len(CONFIGS)} ok, 0 with problems"]
    assert len([p for p in CONFIGS if p.stem.endswith(("-baseline", "-mfr"))]) == 48  # 8 models x 3 datasets x 2


def test_check_reports_every_problem_of_every_file_and_exits_1(tmp_path, capsys):
    good, bad, broken = tmp_path / "good.yaml", tmp_path / "bad.yaml", tmp_path / "broken.yaml"
    good.write_text(TINY)
    bad.write_text(TINY.replace("patch_size: 16", "patch_size: 4") + "train: {seed: 18446744073709551616}\n")
    broken.write_text("model: [\n")
    assert main(["config", "check", str(good), str(bad), str(broken)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[1] for line in out if line.startswith(str(bad))] == ["stages.0.patch_size", "train.seed"]
    assert any(line.startswith(f"{broken}: not valid YAML") for line in out)
    assert out[-1] == "3 config file(s) checked: 1 ok, 2 with problems"


def test_check_full_looks_at_the_machine(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text(TINY)
    assert main(["config", "check", str(path)]) == 0
    capsys.readouterr()
    assert main(["config", "check", "--full", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"{path}: data.root: no such folder: /nowhere/LOL-v1 "
                      "(set it on the command line: data.root=/path/to/LOL-v1)")


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("schema") / "lumicap.schema.json"
    assert main(["config", "schema", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_schema_on_stdout_is_the_written_file(schema, capsys):
    assert main(["config", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == schema


@pytest.mark.parametrize("path", CONFIGS[:6] + [REPO / "tests/fixtures/run-0.1.0/tiny.yaml"], ids=lambda p: p.name)
def test_schema_accepts_real_files(schema, path):
    from lumicap.config.yamlio import read_yaml  # YAML 1.2 numbers (1e-4), as editors read them

    jsonschema.validate(read_yaml(path), schema)


@pytest.mark.parametrize(
    "edit",
    [
        {"train": {"seed": -1}},
        {"train": {"amp": "fp8"}},
        {"train": {"lerning_rate": 1}},
        {"model": {"name": "iat", "overrides": {"variant": "evil"}}},
        {"model": {"name": "iat", "overrides": {"in_dm": 3}}},
        {"model": {"name": "no_such_net"}},
        {"stages": [{"name": "main", "iterations": 1, "batch_size": 1, "patch_size": 16, "losses": {"l1": 1},
                     "optimizer": {"eps": -1}}]},
        {"mfr": {"weights": [1, 2]}},
    ],
    ids=lambda edit: json.dumps(edit)[:40],
)
def test_schema_flags_what_the_config_loader_refuses(schema, tmp_path, edit):
    """An editor's inline errors agree with lumicap's: each edit fails both the JSON Schema and load_config."""
    data = yaml.safe_load(TINY)
    data.update(edit)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(Exception, match=str(path)):
        load_config(path)


def test_schema_allows_a_file_that_only_extends_its_base(schema):
    jsonschema.validate({"base": "iat-lol-v1-baseline.yaml", "mfr": {"enabled": True}}, schema)
