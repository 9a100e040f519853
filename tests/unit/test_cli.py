"""The ``chaosmesh-sec`` command group: version, help text everywhere, the lab group mounted."""

import click
import pytest
from click.testing import CliRunner

import chaosmesh_sec

cli = pytest.importorskip("chaosmesh_sec.cli", reason="chaosmesh_sec.lab.cli not importable yet")


def test_version() -> None:
    result = CliRunner().invoke(cli.main, ["--version"])
    assert result.exit_code == 0, result.output
    assert chaosmesh_sec.__version__ in result.output


def test_lab_group_is_mounted() -> None:
    assert "lab" in cli.main.commands
    result = CliRunner().invoke(cli.main, ["--help"])
    assert result.exit_code == 0
    assert "lab" in result.output


def _walk(command: click.Command, path: str) -> list[tuple[str, click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found.extend(_walk(sub, f"{path} {name}"))
    return found


def test_every_command_and_option_has_help() -> None:
    for path, command in _walk(cli.main, "chaosmesh-sec"):
        assert command.help, f"`{path}` has no help text"
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"`{path}` option {param.opts} has no help text"
