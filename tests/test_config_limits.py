"""Size limits of a config (issue 13, item 3): a small file can never expand into something huge, errors
show values briefly, and nothing large reaches a run folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from lumicap.cli import main
from lumicap.config import load_config, parse_value
from lumicap.config.problems import brief
from lumicap.config.yamlio import MAX_ALIASES, MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES
from lumicap.errors import ConfigError

VALID = """\
model: {name: iat}
data: {root: /data/LOL-v1, layout: lol-v1}
stages:
  - {name: main, iterations: 10, batch_size: 2, patch_size: 16, losses: {l1: 1.0}}
"""


def laughs(levels: int, fanout: int = 9, indent: str = "") -> str:
    """The "billion laughs" document: each level lists the previous one ``fanout`` times (fanout**levels leaves)."""
    lines = [f'{indent}l0: &l0 "lol"']
    for level in range(1, levels + 1):
        lines.append(f"{indent}l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * fanout) + "]")
    return "\n".join(lines) + "\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def _one_problem(path: Path, *must: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (line,) = info.value.problems
    assert len(line) < 300, line
    for text in must:
        assert text in line, line
    return line


def test_billion_laughs_file_is_refused_at_once(tmp_path):
    text = "model:\n  name: iat\n  overrides:\n" + laughs(9, indent="    ") + VALID.split("\n", 1)[1]
    assert len(text) < 1200  # 9**9 = 387 million leaves once expanded
    _one_problem(_write(tmp_path, text), "exp.yaml", "too large for a config", f"more than {MAX_VALUES} values")


def test_a_million_leaves_never_reach_a_run_folder(tmp_path, capsys):
    text = laughs(5, 16).replace('"lol"', "1") + (  # 16**5 = 1,048,576 milestones once expanded
        "model: {name: iat}\n"
        f"data: {{root: {tmp_path}, layout: folders}}\n"
        "stages:\n  - {name: main, iterations: 10, batch_size: 2, patch_size: 16, losses: {l1: 1.0},\n"
        "     scheduler: {name: multistep, gamma: 0.5, milestones: *l5}}\n"
        f"output_dir: {tmp_path / 'runs'}\n"
    )
    assert main(["train", str(_write(tmp_path, text)), "--no-progress"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "too large for a config" in err[0], err
    assert not (tmp_path / "runs").exists()


def test_nesting_depth_is_bounded_in_files_and_overrides(tmp_path):
    _one_problem(_write(tmp_path, "model: " + "[" * 100_000 + "]" * 100_000 + "\n"), f"deeper than {MAX_DEPTH} levels")
    _one_problem(_write(tmp_path, "model: " + "{a: " * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1) + "\n"), "deeper")
    with pytest.raises(ConfigError, match="deeper than"):
        parse_value("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match="deeper than"):
        load_config(_write(tmp_path, VALID), [".".join(["model"] * 100_000) + "=1"])


def test_aliases_nested_through_each_other_count_as_depth(tmp_path):
    chain = ["a0: &a0 [1]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, MAX_DEPTH + 2)]
    _one_problem(_write(tmp_path, "\n".join(chain) + "\n"), "through aliases", "deeper")


def test_alias_count_file_size_and_self_reference(tmp_path):
    many = "a: &a 1\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n"
    _one_problem(_write(tmp_path, many), f"more than {MAX_ALIASES} aliases")
    _one_problem(_write(tmp_path, "a: &a [*a]\n"), "refers to the collection that contains it")
    _one_problem(_write(tmp_path, "# " + "x" * MAX_FILE_BYTES + "\n"), "too large for a config")


def test_integer_of_thousands_of_digits_is_one_line(tmp_path):
    line = _one_problem(_write(tmp_path, VALID + "train: {seed: " + "9" * 5000 + "}\n"), "exp.yaml")
    assert "digits" in line or "integer" in line


def test_huge_values_are_shown_briefly_in_errors(tmp_path):
    text = VALID + "train: {seed: [" + ", ".join(str(i) for i in range(2000)) + "]}\n"
    line = _one_problem(_write(tmp_path, text), "train.seed: got [0, 1, 2, 3,", "...; allowed: an integer in 0..")
    shown = line.split("got ", 1)[1].split("; allowed")[0]
    assert len(shown) == 80


def test_every_problem_of_a_file_is_reported_together(tmp_path):
    text = VALID.replace("patch_size: 16", "patch_size: 4") + (
        "train: {seed: -1, amp: fp8, lerning_rate: 0.1}\nmfr: {weights: [1, 1]}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    keys = sorted(line.split(": ")[1] for line in info.value.problems)
    assert keys == ["mfr.weights", "stages.0.patch_size", "train.amp", "train.lerning_rate", "train.seed"]


def test_brief_costs_only_what_it_shows():
    nested: list = ["x"]
    for _ in range(30):  # 2**30 leaves if walked in full
        nested = [nested, nested]
    assert len(brief(nested)) == 80
    assert brief("y" * 10**7).endswith("...") and len(brief("y" * 10**7)) == 80
    assert brief(10**5000).startswith("<an integer of")
    assert brief({"a": 1.5, "b": None}) == "{'a': 1.5, 'b': None}"


def test_stored_config_stays_small(tmp_path):
    """Lists in the schema are bounded, so what a run folder records stays a readable record."""
    milestones = list(range(1, 1002))
    with pytest.raises(ConfigError, match="milestones: got \\[1, 2, 3"):
        load_config(_write(tmp_path, VALID), [f"stages.0.scheduler={{name: multistep, gamma: 0.5, milestones: {milestones}}}"])


def test_long_alias_chains_of_deep_lists_stop_at_the_depth_limit(tmp_path):
    deep = "[" * 30 + "{}" + "]" * 30
    chain = [f"a0: &a0 {deep}"] + [f"a{i}: &a{i} " + "[" * 30 + f"*a{i - 1}" + "]" * 30 for i in range(1, 200)]
    _one_problem(_write(tmp_path, "\n".join(chain) + "\n"), "deeper than")
