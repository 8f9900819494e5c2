"""The command line as a whole: every subcommand is listed and its help renders."""

import pytest

from lumicap.cli import COMMAND_MODULES, main


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in COMMAND_MODULES:
        assert f"    {name} " in out, f"'{name}' missing from lumicap --help"


@pytest.mark.parametrize("name", COMMAND_MODULES)
def test_subcommand_help_renders(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert f"lumicap {name}" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["brighten"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
